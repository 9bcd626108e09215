"""``regiondb`` commands that replicate through files: ``export``, ``import``, ``sync-dir``.

The work is :mod:`replication.files`; this module reads the arguments, reports progress, and
prints the reports. A rejected file makes the exit status 2, with one stderr line per file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import engine
from replication.atomic import write_atomic
from replication.files import ImportReport, export_changes, import_changes
from replication.mailbox import SyncReport, sync_dir

from .args import open_store
from .output import PROG, emit, report_dict, size_text, vv_json, write_line
from .progress import Progress, progress_enabled


def _read_since(path: Path) -> dict[int, int] | None:
    """The version vector a previous ``export --since-file`` recorded (``None``: no file)."""
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text())
        return {int(k, 16): int(v) for k, v in raw.items()}
    except (ValueError, TypeError, AttributeError) as exc:
        raise engine.ValidationError(
            f"{path}: not a since-file (JSON object of hex node id -> seq): {exc}"
        ) from None


def cmd_export(args: argparse.Namespace) -> int:
    """``export DIR OUTDIR``: the store's changes (beyond ``--since-file``) as segment files."""
    since_file = Path(args.since_file) if args.since_file else None
    since = _read_since(since_file) if since_file else None
    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    progress = Progress(f"export {args.dir}", enabled=progress_enabled(args))
    start = time.monotonic()
    with open_store(args) as store:
        vv = store.version_vector()  # taken first: a later export may repeat, never miss
        try:
            files = export_changes(store, out, since, progress=progress)
        finally:
            progress.close()
    elapsed = time.monotonic() - start
    if since_file is not None:
        write_atomic(since_file, json.dumps(vv_json(vv), indent=1).encode() + b"\n")
    nbytes = sum(f.stat().st_size for f in files)
    info = {"files": [str(f) for f in files], "segments": len(files), "bytes": nbytes,
            "changes": progress.done or None, "seconds": round(elapsed, 3), "vv": vv_json(vv)}
    if args.json:
        emit(info)
    else:
        what = f"{progress.done:,} changes in " if progress.done else ""
        write_line(f"exported {what}{len(files)} segment{'s' * (len(files) != 1)} "
                   f"({size_text(nbytes)}) to {out} in {elapsed:.2f} s")
    return 0


def _import_summary(r: ImportReport) -> str:
    files = len(r.files)
    text = (f"{r.applied:,} changes applied, {r.skipped:,} already known"
            + (f", {r.held:,} held" if r.held else "")
            + (f", {r.items:,} snapshot items" if r.items else "")
            + f", {r.conflicts:,} conflicts; {files} file{'s' * (files != 1)}")
    if r.rejected:
        text += f" ({len(r.rejected)} rejected)"
    return text


def _sync_dir_summary(r: SyncReport) -> str:
    text = (f"imported {r.applied:,} changes ({r.skipped:,} already known, "
            f"{r.conflicts:,} conflicts) from {len(r.imported)} files"
            + (f", {r.items:,} snapshot items" if r.items else "")
            + f"; exported {len(r.exported)} segments; {len(r.peers)} other nodes")
    if r.removed or r.purged:
        text += f"; gc: {r.removed:,} log entries, {r.purged:,} tombstones"
    if r.waiting:
        text += f"; {len(r.waiting)} files waiting for earlier changes"
    if r.rejected:
        text += f"; {len(r.rejected)} files rejected"
    if r.held:
        text += f"; {r.held:,} changes held (see --json)"
    return text


def _finish(command: str, report: ImportReport | SyncReport, summary: str,
            elapsed: float, as_json: bool) -> int:
    """Print a file report (JSON or ``summary``), then one stderr line per rejected file;
    the exit status is 2 if any file was rejected."""
    if as_json:
        emit({**report_dict(report), "seconds": round(elapsed, 3)})
    else:
        write_line(f"{summary} in {elapsed:.2f} s")
    for r in report.rejected:
        print(f"{PROG} {command}: rejected {r}", file=sys.stderr)
    return 2 if report.rejected else 0


def cmd_import(args: argparse.Namespace) -> int:
    """``import DIR PATH``: verify and apply a segment file or a directory of them."""
    path = Path(args.path)
    if not path.exists():
        raise engine.ValidationError(f"{path} does not exist")
    progress = Progress(f"import {path}", enabled=progress_enabled(args))
    start = time.monotonic()
    with open_store(args) as store:
        try:
            report = import_changes(store, path, progress=progress)
        finally:
            progress.close()
    return _finish("import", report, f"imported {path}: {_import_summary(report)}",
                   time.monotonic() - start, args.json)


def cmd_sync_dir(args: argparse.Namespace) -> int:
    """``sync-dir DIR MAILBOX``: two-way offline sync through a shared folder."""
    mailbox = Path(args.mailbox)
    start = time.monotonic()
    with open_store(args) as store:
        report = sync_dir(store, mailbox)
    return _finish("sync-dir", report,
                   f"synced {args.dir} with {mailbox}: {_sync_dir_summary(report)}",
                   time.monotonic() - start, args.json)
