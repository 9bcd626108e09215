"""The ``regiondb`` command: every store operation, offline and live replication, the demo.

A store directory comes first, items are JSON (see :mod:`regiondb.jsonvalues` for numbers,
bytes and sets). Data commands (``get``, ``query``, ``scan``, ``changes``, ``conflicts``,
``status --json``) print JSON lines; the others print a human summary, or one JSON object with
``--json``. Exit codes: 0 ok, 1 usage error (bad flags, bad JSON on the command line), 2 a
regiondb error (missing store or table, failed condition, bad segment, refused peer, I/O
error) reported as one line on stderr, 70 an internal error (a bug: the traceback is logged
to stderr, then one line), 130 interrupted. ``--debug`` re-raises instead.

``regiondb serve`` writes ``DIR/serve-status.json`` while it runs (pid, address, peers, lag),
so that ``regiondb status DIR`` run beside it can show live replication figures.

Layout: :mod:`.parser` builds the command line; the commands live in :mod:`.local` (one
store), :mod:`.offline` (segment files), :mod:`.live` (sockets) and :mod:`.status`; they share
:mod:`.args`, :mod:`.output` and :mod:`.progress`. This module only dispatches and maps
exceptions to exit codes.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

import engine

from ..jsonvalues import JSONValueError
from .args import UsageError
from .output import PROG
from .parser import build_parser

__all__ = ["EXIT_INTERNAL", "UsageError", "build_parser", "main"]

log = logging.getLogger(__name__)
#: Exit status of an unexpected exception (a bug): BSD sysexits' EX_SOFTWARE.
EXIT_INTERNAL = 70


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``regiondb`` with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else 1
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S",
                        stream=sys.stderr)
    where = f"{PROG} {args.command}"
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"{where}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{where}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`| head`): not an error; keep Python from complaining at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (engine.Error, OSError, JSONValueError) as exc:
        if args.debug:
            raise
        print(f"{where}: {_one_line(exc)}", file=sys.stderr)
        return 2
    except ImportError as exc:
        if args.debug:
            raise
        print(f"{where}: not available in this build ({_one_line(exc)})", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug, not the user's mistake: its own exit code, traceback
        if args.debug:
            raise
        log.error("%s: internal error", where, exc_info=exc)
        print(f"{where}: internal error: {type(exc).__name__}: {_one_line(exc)} "
              "(a bug in regiondb: please report it with the traceback above)", file=sys.stderr)
        return EXIT_INTERNAL


def _one_line(exc: BaseException) -> str:
    """An error as one stderr line: its class for regiondb errors, file and reason for I/O."""
    msg = str(exc) or type(exc).__name__
    if isinstance(exc, engine.Error):
        msg = f"{type(exc).__name__}: {msg}"
    elif isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        msg = f"{exc.filename}: {exc.strerror}"
    return " ".join(msg.split())

