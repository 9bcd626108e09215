"""Progress of long exports and imports on stderr: a tqdm bar on a terminal (when tqdm is
installed, the ``progress`` extra), a plain line every few seconds otherwise."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from tqdm import tqdm


class Progress:
    """A progress callback for long exports and imports: a tqdm bar when installed and
    stderr is a terminal, a plain line every few seconds otherwise, silent if disabled.

    Callable as ``progress(done, total)`` (counts so far and overall, ``total`` may be
    ``None``); ``update(n)`` and ``close()`` also work, like tqdm's.
    """

    def __init__(self, desc: str, *, enabled: bool, unit: str = "change") -> None:
        self.desc = desc
        self.unit = unit
        self.enabled = enabled
        self.done = 0
        self.total: int | None = None
        self._bar: tqdm[NoReturn] | None = None
        self._last_line = time.monotonic()
        self._start = time.monotonic()
        if enabled and sys.stderr.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                pass
            else:
                self._bar = tqdm(desc=desc, unit=unit, unit_scale=True, leave=False,
                                 delay=0.5, file=sys.stderr, dynamic_ncols=True)

    def __call__(self, done: int, total: int | None = None, *_: object) -> None:
        if total is not None:
            self.total = total
        self._advance(done - self.done)

    def update(self, n: int = 1) -> None:
        """Count ``n`` more (tqdm's signature)."""
        self._advance(n)

    def _advance(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        if self._bar is not None:
            if self.total is not None and self._bar.total != self.total:
                self._bar.total = self.total
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._last_line >= 3.0:  # a plain line, rarely: logs stay readable
            self._last_line = now
            of = f"/{self.total:,}" if self.total else ""
            print(f"{self.desc}: {self.done:,}{of} {self.unit}s, {now - self._start:.0f} s",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        """Remove the bar, if any; plain lines need no closing."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def progress_enabled(args: argparse.Namespace) -> bool:
    """``--progress``/``--no-progress`` if given; otherwise on, unless ``--json``."""
    if args.progress is not None:
        return bool(args.progress)
    return not args.json
