"""Replication through files: export to and import from segment files.

:func:`export_changes` writes what a store holds beyond a vv as segment files;
:func:`import_changes` verifies and applies them. The shared-folder protocol built on these,
``sync_dir``, is :mod:`replication.mailbox`.

Invariants owned here:

- Every file is written with :func:`~replication.atomic.write_atomic`, so a reader sees whole
  files or none; a file that is still short anyway (a half-finished copy onto a stick) fails
  verification and is reported.
- Every segment is verified whole (``decode_segment``) before any of it is applied, then
  applied in one transaction (:func:`~replication.exchange.apply_segment`).
- Importing a directory never raises for its files; it reports them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import Error, ForgottenNodeError, SegmentError, ValidationError

from . import exchange
from . import vv as vvmod
from .atomic import is_temp_name, read_file_bounded, write_atomic
from .exchange import ApplyTotals, GapError, SegmentReport
from .segment import (
    DEFAULT_LIMITS,
    SegmentLimits,
    decode_segment,
    parse_segment_filename,
    peek_record_count,
    segment_filename,
)

if TYPE_CHECKING:
    from engine import Store

__all__ = ["FileOutcome", "ImportReport", "export_changes", "import_changes"]

log = logging.getLogger(__name__)

Progress = Callable[[int, "int | None"], None]


# ------------------------------------------------------------------ reports


@dataclass(slots=True)
class FileOutcome:
    """One file's fate: ``applied`` (something new), ``known`` (nothing new), ``held`` (some
    changes refused for now, e.g. clock skew; retried later), ``waiting`` (a gap earlier
    changes must fill; sync_dir only) or ``rejected`` (``error`` says why)."""

    path: Path
    status: str
    report: SegmentReport | None = None
    error: Error | None = None

    def __str__(self) -> str:
        why = f": {getattr(self.error, 'reason', None) or self.error}" if self.error else ""
        return f"{self.path} {self.status}{why}"


@dataclass(slots=True)
class ImportReport(ApplyTotals):
    """What :func:`import_changes` did, per file and in total (:class:`ApplyTotals`)."""

    files: list[FileOutcome] = field(default_factory=list)
    rejected: list[FileOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        """How many files ended with ``status``."""
        return sum(1 for f in self.files if f.status == status)

    def __str__(self) -> str:
        return (f"{len(self.files)} files: {self.count('applied')} applied, "
                f"{self.count('known')} already known, {len(self.rejected)} rejected; "
                f"{self.applied} changes applied, {self.skipped} known, {self.held} held, "
                f"{self.items} snapshot items, {self.conflicts} conflicts")


# ------------------------------------------------------------------ export


def export_changes(
    store: Store,
    directory: str | os.PathLike[str],
    since: Mapping[int, int] | None = None,
    *,
    progress: Progress | None = None,
    max_bytes: int = exchange.DEFAULT_MAX_BYTES,
    max_records: int = exchange.DEFAULT_MAX_RECORDS,
    compress: bool | None = None,
) -> list[Path]:
    """Write everything ``store`` holds beyond ``since`` (a vv; ``None`` = everything) into
    ``directory`` as segment files, each written atomically; return their paths in order.

    Needs below the log's retention point are met with a snapshot (then changes after it).

    :param progress: called as ``progress(changes_written, total_changes)`` after each file
        (``total`` is ``None`` when a snapshot is involved).
    :raises ValidationError: for a malformed ``since``.
    :raises OSError: if the directory cannot be written (files already written stay).
    """
    out = Path(directory)
    since = vvmod.check_vv(since or {}, "since")
    vv, _, _ = exchange.local_state(store)
    ranges = vvmod.diff_ranges(since, vv).values()
    total: int | None = sum(last - first + 1 for first, last in ranges)
    floor = store.log_floor()
    if any(since.get(o, 0) < floor.get(o, 0) < vv.get(o, 0) for o in vv):
        total = None
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    done = 0
    for header, data in exchange.iter_segments(store, since, max_bytes=max_bytes,
                                               max_records=max_records, compress=compress):
        path = out / segment_filename(header)
        write_atomic(path, data)
        paths.append(path)
        done += header.record_count
        if progress is not None:
            progress(done, total)
    return paths


# ------------------------------------------------------------------ import


def _order(path: Path) -> tuple[int, int, int, str]:
    name = parse_segment_filename(path.name)
    if name is None:
        return (1, 0, 0, path.name)
    return (0, name.created_hlc, name.sender, path.name)


def _segment_files(directory: Path) -> list[Path]:
    """Segment files in a directory: ``*.seg``, no temp or hidden names, creation order."""
    out = []
    for entry in os.scandir(directory):
        name = entry.name
        if name.startswith(".") or is_temp_name(name) or not name.endswith(".seg"):
            continue
        if entry.is_file():
            out.append(Path(entry.path))
    return sorted(out, key=_order)


def _peek_count(path: Path) -> int:
    """The record count a segment's header claims (0 if unreadable): for progress only."""
    try:
        with open(path, "rb") as f:
            return peek_record_count(f)
    except OSError:
        return 0


def _import_one(store: Store, path: Path, limits: SegmentLimits) -> FileOutcome:
    try:
        data = read_file_bounded(path, limits.max_segment_bytes)
        segment = decode_segment(data, path=path, limits=limits)
        rep = exchange.apply_segment(store, segment)
    except GapError as exc:
        return FileOutcome(path, "waiting", error=SegmentError(exc.reason, path=path))
    except SegmentError as exc:
        err = exc if exc.path is not None else SegmentError(exc.reason, path=path)
        return FileOutcome(path, "rejected", error=err)
    except ForgottenNodeError as exc:
        return FileOutcome(path, "rejected", error=ForgottenNodeError(f"{path}: {exc}"))
    except OSError as exc:
        return FileOutcome(path, "rejected",
                           error=SegmentError(f"cannot read: {exc.strerror or exc}", path=path))
    if rep.new:
        status = "applied"
    elif rep.held or rep.gaps:
        status = "held"
    else:
        status = "known"
    return FileOutcome(path, status, report=rep)


def _import_files(
    store: Store, files: list[Path], progress: Progress | None, limits: SegmentLimits,
    *, final_gaps: str = "rejected",
) -> ImportReport:
    """Import files in creation order; files waiting on a gap are retried after the others as
    long as a round made progress (relays from several senders need not come in order)."""
    report = ImportReport()
    total = sum(_peek_count(p) for p in files) if progress is not None else 0
    done = 0
    pending = list(files)
    outcomes: dict[Path, FileOutcome] = {}
    while pending:
        retry: list[Path] = []
        progressed = False
        for path in pending:
            outcome = _import_one(store, path, limits)
            outcomes[path] = outcome
            if outcome.status == "waiting":
                retry.append(path)
                continue
            rep = outcome.report
            if rep is not None:
                progressed = progressed or rep.new
                done += rep.applied + rep.skipped + rep.held + rep.items
                if progress is not None:
                    progress(done, max(total, done))
        if not (retry and progressed):
            break
        pending = retry
    for path in files:
        outcome = outcomes[path]
        if outcome.status == "waiting" and final_gaps == "rejected":
            outcome.status = "rejected"
        report.files.append(outcome)
        if outcome.status == "rejected":
            report.rejected.append(outcome)
        if outcome.report is not None:
            report.add(outcome.report, source=path.name)
    return report


def import_changes(
    store: Store,
    path_or_directory: str | os.PathLike[str],
    *,
    progress: Progress | None = None,
    limits: SegmentLimits = DEFAULT_LIMITS,
) -> ImportReport:
    """Verify and apply one segment file, or every ``*.seg`` file of a directory.

    Each file is read (bounded), verified whole, then applied in one transaction; files apply
    in creation order (names sort by HLC), and a file waiting on a gap is retried after the
    others. Re-importing is a no-op (status ``known``). Temporary ``.*.tmp`` files are skipped.

    A directory never raises for its files: each bad one is reported (``report.rejected``, with
    the :class:`SegmentError` naming the file and the reason) and the rest still apply. A single
    file given by name is what the caller asked for, so a bad one raises.

    :param progress: called as ``progress(changes_done, total_changes)`` after each file.
    :raises SegmentError: for a single file that is corrupt, truncated, hostile, or has a gap
        this store cannot bridge; nothing is applied.
    :raises ForgottenNodeError: for a single file from a forgotten node.
    :raises ValidationError: if the path does not exist.
    """
    p = Path(path_or_directory)
    if p.is_dir():
        return _import_files(store, _segment_files(p), progress, limits)
    if not p.exists():
        raise ValidationError(f"{p} does not exist")
    report = _import_files(store, [p], progress, limits)
    if report.rejected and report.rejected[0].error is not None:
        raise report.rejected[0].error
    return report


def __getattr__(name: str) -> object:
    """``sync_dir``, ``SyncReport`` and ``read_state`` moved to :mod:`replication.mailbox`;
    importing them from here still works (lazily: the mailbox builds on this module)."""
    if name in ("sync_dir", "SyncReport", "read_state"):
        from . import mailbox

        return getattr(mailbox, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
