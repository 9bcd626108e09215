"""``regiondb`` commands for secondary indexes and store checks: ``create-index``,
``drop-index``, ``indexes`` and ``check``. (``query --index`` lives with ``query``.)"""

from __future__ import annotations

import argparse
import time

import engine

from .args import UsageError, open_store
from .output import emit, write_line
from .progress import Progress, progress_enabled


def _projection(args: argparse.Namespace) -> str | list[str]:
    """``--projection ALL|KEYS_ONLY|a,b,c`` as ``engine.Index`` takes it."""
    text = args.projection
    if text in ("ALL", "KEYS_ONLY"):
        return str(text)
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise UsageError(f"--projection must be ALL, KEYS_ONLY or attribute names a,b,c; "
                         f"not {text!r}")
    return names


def _index_dict(table: str, ix: engine.Index) -> dict[str, object]:
    proj = ix.projection if isinstance(ix.projection, str) else list(ix.projection)
    return {"table": table, "index": ix.name, "partition_key": ix.partition_key,
            "sort_key": ix.sort_key, "projection": proj}


def cmd_create_index(args: argparse.Namespace) -> int:
    """``create-index DIR TABLE NAME``: add an index and fill it, with a progress bar."""
    ix = engine.Index(args.name, args.partition_key, args.sort_key, _projection(args))
    progress = Progress(f"index {args.table}.{args.name}", enabled=progress_enabled(args),
                        unit="item")
    start = time.monotonic()
    with open_store(args) as store:
        existed = ix in store.table(args.table).indexes()
        try:
            store.create_index(args.table, ix, progress=progress)
        finally:
            progress.close()
    elapsed = time.monotonic() - start
    if args.json:
        emit({**_index_dict(args.table, ix), "created": not existed,
              "items_read": progress.done, "seconds": round(elapsed, 3)})
    else:
        state = "exists" if existed and not progress.done else "created"
        write_line(f"index {args.table}.{args.name} {state}: {progress.done:,} items read "
                   f"in {elapsed:.1f} s")
    return 0


def cmd_drop_index(args: argparse.Namespace) -> int:
    """``drop-index DIR TABLE NAME``: remove an index and its entries (replicates)."""
    with open_store(args) as store:
        store.drop_index(args.table, args.name)
    if args.json:
        emit({"table": args.table, "index": args.name, "dropped": True})
    else:
        write_line(f"index {args.table}.{args.name} dropped")
    return 0


def cmd_indexes(args: argparse.Namespace) -> int:
    """``indexes DIR TABLE``: the table's secondary indexes."""
    with open_store(args) as store:
        found = store.table(args.table).indexes()
    for ix in found:
        d = _index_dict(args.table, ix)
        if args.json:
            emit(d)
        else:
            sk = f"\t{ix.sort_key}" if ix.sort_key else "\t-"
            write_line(f"{ix.name}\t{ix.partition_key}{sk}\t{d['projection']}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """``check DIR``: verify index == items and log == items; exit status 2 on a problem."""
    with open_store(args) as store:
        report = store.integrity_check()
    if args.json:
        emit(report.as_dict())
    else:
        replay = "log replayed" if report.replayed else "log truncated: not replayed"
        write_line(f"{'ok' if report.ok else 'PROBLEMS'}: {report.items:,} items, "
                   f"{report.log_entries:,} log entries ({replay}), {report.indexes} indexes "
                   f"with {report.index_entries:,} entries")
        for p in report.problems:
            write_line(f"  {p}")
    return 0 if report.ok else 2
