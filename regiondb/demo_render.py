"""What ``regiondb demo`` shows: event lines above a live status table, and the summary.

Pure formatting over figures the demo measured (:mod:`regiondb.demo` owns the timeline and
the processes); only :class:`Screen` writes, to the stream it is given.
"""

from __future__ import annotations

import os
import statistics
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

__all__ = ["NodeTotals", "RegionRow", "Screen", "lag_text", "pct", "status_table",
           "summary_lines"]

# (to, from) region -> lag samples in ms: what one region applied of another's changes
LagSamples = Callable[[str, str], list[float]]


class Screen:
    """Event lines scrolling above a live table (redrawn in place on a terminal)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty() and os.environ.get("TERM") != "dumb"
        self._drawn = 0
        self._table: list[str] = []
        self._lock = threading.Lock()

    def _clear(self) -> None:
        if self.tty and self._drawn:
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def event(self, text: str) -> None:
        """Print ``text`` above the table (which a terminal then shows again below it)."""
        with self._lock:
            self._clear()
            self.stream.write(text + "\n")
            if self.tty and self._table:
                self.stream.write("\n".join(self._table) + "\n")
                self._drawn = len(self._table)
            self.stream.flush()

    def table(self, lines: list[str]) -> None:
        """Show the status table: in place of the last one on a terminal, appended otherwise."""
        with self._lock:
            self._table = lines
            self._clear()
            self.stream.write("\n".join(lines) + "\n")
            self._drawn = len(lines) if self.tty else 0
            self.stream.flush()

    def done(self) -> None:
        """Leave the last table on screen and stop redrawing it."""
        with self._lock:
            self._table, self._drawn = [], 0


def pct(samples: list[float], q: float) -> float | None:
    """The ``q``-th percentile (1-99) of ``samples``; ``None`` for no samples."""
    if not samples:
        return None
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[int(q) - 1]


def lag_text(samples: list[float]) -> str:
    """``p50/p99`` in ms, or ``-`` before the first sample."""
    if not samples:
        return "-"
    return f"{pct(samples, 50):.1f}/{pct(samples, 99):.1f}"


@dataclass(frozen=True, slots=True)
class RegionRow:
    """One region's line of the live table: order rate and count, and the total stock it
    sees (``None``: no figure, e.g. while it is down)."""

    region: str
    city: str
    down: bool
    rate: float
    orders: int
    stock: int | None


def status_table(elapsed: float, duration: float, phase: str, regions: Sequence[tuple[str, str]],
                 rows: Sequence[RegionRow], lags: LagSamples) -> list[str]:
    """The live table: per region its state, orders/s, orders, lag of each other region's
    changes into it (p50/p99 ms) and the stock it sees."""
    head = [f"t={min(elapsed, duration):5.1f}/{duration:.0f} s   {phase}",
            f"{'region':<20} {'':4} {'orders/s':>8} {'orders':>7}   "
            f"{'lag p50/p99 ms of changes from':^36}  {'stock seen':>10}",
            f"{'':<20} {'':4} {'':>8} {'':>7}   "
            + "".join(f"{city:>12}" for _, city in regions) + f"  {'(units)':>10}"]
    lines = []
    for r in rows:
        state = "DOWN" if r.down else "up"
        cells = "".join(f"{'·' if src == r.region else lag_text(lags(r.region, src)):>12}"
                        for src, _ in regions)
        stock = "-" if r.stock is None else f"{r.stock:,}"
        lines.append(f"{r.region:<11}{r.city:<9} {state:<4} {r.rate:8.1f} {r.orders:7,}   "
                     f"{cells}  {stock:>10}")
    return head + lines


@dataclass(frozen=True, slots=True)
class NodeTotals:
    """One node's line of the summary (``writes``: transactions it committed itself)."""

    label: str
    orders: int
    writes: int
    conflicts: int
    digest: str


def summary_lines(nodes: Sequence[NodeTotals], regions: Sequence[tuple[str, str]],
                  lags: LagSamples, catchup: dict[str, Any]) -> list[str]:
    """The closing summary: per-node totals and digests, the steady-state lag matrix, the
    restarted region's catch-up, and ``converged: N/M nodes, digest <hex>``."""
    out = ["", "Summary", "-------",
           f"{'node':<22}{'orders':>8}{'writes':>8}{'conflicts':>11}  digest"]
    for n in nodes:
        out.append(f"{n.label:<22}{n.orders:>8,}{n.writes:>8,}{n.conflicts:>11,}  {n.digest}")
    out.append("(writes = transactions committed by that node; conflicts = concurrent writes "
               "to one attribute that this node resolved by last-writer-wins, all recorded)")
    out.append("")
    out.append("Replication lag, p50 / p99 ms, steady state (row: applied in; column: from):")
    out.append(f"{'':<22}" + "".join(f"{city:>16}" for _, city in regions))
    for to, city in regions:
        cells = []
        for frm, _ in regions:
            s = lags(to, frm)
            cells.append("·" if to == frm else
                         f"{pct(s, 50):.1f} / {pct(s, 99):.1f}" if s else "-")
        out.append(f"{city:<22}" + "".join(f"{x:>16}" for x in cells))
    if catchup.get("seconds") is not None:
        out.append(f"Mumbai: SIGKILLed, down {catchup['down']:.1f} s, restarted; caught up "
                   f"{catchup['changes']:,} changes in {catchup['after_ready']:.2f} s once "
                   f"serving ({catchup['seconds']:.2f} s including process start).")
    elif catchup:
        out.append(f"Mumbai catch-up: {catchup.get('error')}")
    digests = [n.digest for n in nodes]
    agreeing = max(digests.count(d) for d in digests)
    shown = digests[0] if len(set(digests)) == 1 else "MISMATCH"
    out.append("")
    out.append(f"converged: {agreeing}/{len(digests)} nodes, digest {shown}")
    return out
