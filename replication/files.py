"""Replication through files: export, import, and the shared-folder ("mailbox") protocol.

Mailbox layout (any number of nodes; a USB stick, an NFS or rsync'd folder)::

    mailbox/
      <node id, 16 lowercase hex>/         written only by that node
        <created_hlc>-<sender>-<kind>.seg  its segments (segment.segment_filename)
        state.cbor                         its vv, ack table, forgotten set, region, file index
        .*.tmp                             writes in progress: ignored by every reader

Invariants owned here:

- Every file is written with :func:`~replication.atomic.write_atomic`, so a reader sees whole
  files or none; a file that is still short anyway (a half-finished copy onto a stick) fails
  verification, is reported, is *not* remembered as seen, and is retried on the next run.
- Every segment is verified whole (``decode_segment``) before any of it is applied, then
  applied in one transaction (:func:`~replication.exchange.apply_segment`).
- A node deletes its own segments only once every member has acknowledged all they carry
  (or, for a snapshot, once a newer snapshot replaced it).
- ``sync_dir`` never raises for another node's bad files or state; it reports them.

``state.cbor`` is ``[b"regiondb-state", 1, body, blake2b-256(body)]`` (CBOR), ``body`` the
canonical CBOR map ``{node, region, vv, acks, forgotten, files, updated_hlc}``; ``files``
indexes the node's own segments (name -> ``[kind, {origin: [first, last]}, vv]``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cbor2

from engine.bounded import loads_bounded
from engine.checks import check_node_id, is_node_id
from engine.errors import Error, ForgottenNodeError, SegmentError, ValidationError

from . import exchange
from . import vv as vvmod
from .atomic import is_temp_name, read_file_bounded, write_atomic
from .exchange import ApplyTotals, GapError, SegmentReport
from .segment import (
    DEFAULT_LIMITS,
    SegmentHeader,
    SegmentLimits,
    decode_segment,
    parse_segment_filename,
    peek_record_count,
    segment_filename,
)

if TYPE_CHECKING:
    from engine import Store

__all__ = ["FileOutcome", "ImportReport", "SyncReport", "export_changes", "import_changes",
           "read_state", "sync_dir"]

log = logging.getLogger(__name__)

Progress = Callable[[int, "int | None"], None]
STATE_FILE = "state.cbor"
STATE_MAGIC = b"regiondb-state"
STATE_MAX_BYTES = 16 << 20
_SEEN_META = "mailbox_seen"


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


@dataclass(slots=True)
class SyncReport(ApplyTotals):
    """What :func:`sync_dir` did: imported (totals in :class:`ApplyTotals`), exported files,
    deleted own files, garbage collected (``removed`` log entries, ``purged`` tombstones)."""

    node_id: int
    peers: list[int] = field(default_factory=list)
    imported: list[FileOutcome] = field(default_factory=list)
    rejected: list[FileOutcome] = field(default_factory=list)
    waiting: list[FileOutcome] = field(default_factory=list)
    exported: list[Path] = field(default_factory=list)
    deleted: list[Path] = field(default_factory=list)
    removed: int = 0
    purged: int = 0

    def __str__(self) -> str:
        return (f"{len(self.peers)} peers; imported {self.applied} changes, {self.items} "
                f"snapshot items ({len(self.rejected)} files rejected, {len(self.waiting)} "
                f"waiting); exported {len(self.exported)} segments, deleted {len(self.deleted)}; "
                f"gc removed {self.removed} log entries, purged {self.purged} tombstones")


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


# ------------------------------------------------------------------ state files


def _encode_state(body: Mapping[str, Any]) -> bytes:
    raw = cbor2.dumps(dict(body), canonical=True)
    return cbor2.dumps([STATE_MAGIC, 1, raw, hashlib.blake2b(raw, digest_size=32).digest()])


def read_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and verify a mailbox ``state.cbor``: ``{node, region, vv, acks, forgotten, files}``.

    :raises SegmentError: naming the file, if it is truncated, corrupt or malformed.
    """
    p = Path(path)
    try:
        data = read_file_bounded(p, STATE_MAX_BYTES)
        outer = loads_bounded(data, max_depth=2, max_bytes=STATE_MAX_BYTES)
        if not (isinstance(outer, list) and len(outer) == 4 and outer[0] == STATE_MAGIC):
            raise ValidationError("not a regiondb state file")
        if outer[1] != 1:
            raise ValidationError(f"state format {outer[1]!r} not supported (this build reads 1)")
        raw, digest = outer[2], outer[3]
        if not isinstance(raw, bytes) or hashlib.blake2b(raw, digest_size=32).digest() != digest:
            raise ValidationError("checksum mismatch (corrupt or truncated)")
        body = loads_bounded(raw, max_depth=8, max_bytes=len(raw))
        if not isinstance(body, dict):
            raise ValidationError("state body is not a map")
        node = check_node_id(body.get("node"), "state node id")
        region = body.get("region")
        if not isinstance(region, str):
            raise ValidationError("state has no region")
        acks = body.get("acks", {})
        if not isinstance(acks, dict) or not all(is_node_id(n) for n in acks):
            raise ValidationError("acks is not a map of node id -> version vector")
        forgotten = body.get("forgotten", [])
        if not isinstance(forgotten, list) or not all(is_node_id(n) for n in forgotten):
            raise ValidationError("forgotten is not a list of node ids")
        files = body.get("files", {})
        return {
            "node": node, "region": region, "vv": vvmod.check_vv(body.get("vv", {})),
            "acks": {n: vvmod.check_vv(r, "ack") for n, r in acks.items()},
            "forgotten": frozenset(forgotten), "files": files if isinstance(files, dict) else {},
        }
    except ValidationError as exc:
        raise SegmentError(f"bad state file: {exc}", path=p) from exc
    except OSError as exc:
        raise SegmentError(f"cannot read state file: {exc.strerror or exc}", path=p) from exc


# ------------------------------------------------------------------ the mailbox


def _hex(node: int) -> str:
    return f"{node:016x}"


_NODE_DIR = re.compile(r"[0-9a-f]{16}")


def _node_dirs(mailbox: Path) -> Iterator[tuple[int, Path]]:
    """Every node folder of the mailbox: exactly 16 lowercase hex digits, never node 0."""
    for entry in sorted(os.scandir(mailbox), key=lambda e: e.name):
        if _NODE_DIR.fullmatch(entry.name) and entry.is_dir() and int(entry.name, 16):
            yield int(entry.name, 16), Path(entry.path)


def _index_own(own: Path, old: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Our folder's segment index, reconciled with the disk (a copied folder may differ)."""
    index: dict[str, list[Any]] = {}
    for path in _segment_files(own):
        entry = old.get(path.name)
        if isinstance(entry, list) and len(entry) == 3:
            index[path.name] = entry
            continue
        try:  # a file we wrote but never indexed (crash before the state file was written)
            seg = decode_segment(read_file_bounded(path, DEFAULT_LIMITS.max_segment_bytes),
                                 path=path)
        except (SegmentError, OSError):
            continue
        h = seg.header
        index[path.name] = [h.kind, {o: list(r) for o, r in h.ranges.items()}, h.vv]
    return index


def _index_entry(h: SegmentHeader) -> list[Any]:
    return [h.kind, {o: [f, last] for o, (f, last) in h.ranges.items()}, dict(h.vv)]


def _coverage(index: Mapping[str, list[Any]]) -> dict[int, list[tuple[int, int]]]:
    """Per origin, the merged runs of seqs our changes files hold."""
    runs: dict[int, list[tuple[int, int]]] = {}
    for kind, ranges, _ in index.values():
        if kind == "changes":
            for o, (f, last) in ranges.items():
                runs.setdefault(o, []).append((f, last))
    out: dict[int, list[tuple[int, int]]] = {}
    for o, rs in runs.items():
        merged: list[tuple[int, int]] = []
        for f, last in sorted(rs):
            if merged and f <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], last))
            else:
                merged.append((f, last))
        out[o] = merged
    return out


def _base(start: Mapping[int, int], runs: Mapping[int, list[tuple[int, int]]]) -> dict[int, int]:
    """Where new changes files must start: past what our folder already holds from ``start``."""
    out = dict(start)
    for o, rs in runs.items():
        s = start.get(o, 0)
        for f, last in rs:
            if f <= s + 1 <= last + 1:
                out[o] = max(s, last)
    return out


def _snapshot_series(index: Mapping[str, list[Any]]) -> tuple[list[str], dict[int, int] | None]:
    """Our latest complete snapshot series in the folder: its file names and its vv."""
    names = sorted(n for n, e in index.items() if e[0] == "snapshot")
    series: list[str] = []
    best: tuple[list[str], dict[int, int] | None] = ([], None)
    for n in names:
        series.append(n)
        if index[n][2]:  # the last part carries the vv
            best = (series, dict(index[n][2]))
            series = []
    return best


def _settled(rep: SegmentReport) -> bool:
    """True if nothing of the segment is left to apply later: no gap, and no change held for a
    reason that may pass (clock skew). A file applied only in part must be read again: its
    sender never writes those changes again (its folder already holds them)."""
    return not rep.gaps and all(isinstance(e, ForgottenNodeError) for e in rep.refused.values())


def _needs_snapshot(
    have: Mapping[int, int], vv: Mapping[int, int], floor: Mapping[int, int]
) -> bool:
    return any(have.get(o, 0) < floor.get(o, 0) and have.get(o, 0) < s for o, s in vv.items())


def sync_dir(store: Store, mailbox: str | os.PathLike[str]) -> SyncReport:
    """Two-way offline sync through a shared folder (module docstring for the layout).

    1. Read every other node's state file: learn its vv, acks and forgotten set.
    2. Import the other nodes' segments not imported before (creation order, gaps retried).
    3. Export what the other nodes lack, starting past what our folder already holds; a node
       below our log's retention point gets a snapshot (one per need, reused until replaced).
    4. Garbage-collect what every member has acknowledged; delete our own files likewise.
    5. Write our state file last, so it never names files that are not there.

    Never raises for other nodes' files; they are reported. Nodes never need to run together.

    :raises OSError: if our own folder cannot be written.
    """
    box = Path(mailbox)
    me = store.node_id
    own = box / _hex(me)
    own.mkdir(parents=True, exist_ok=True)
    report = SyncReport(node_id=me)
    forgotten = store.forgotten()

    # 1. states
    states: dict[int, dict[str, Any]] = {}
    folders: dict[int, Path] = {}
    for node, folder in _node_dirs(box):
        if node == me:
            continue
        if node in forgotten:
            report.refused[node] = ForgottenNodeError(
                f"{folder}: node {node:016x} was forgotten; its folder is ignored")
            continue
        folders[node] = folder
        if not (folder / STATE_FILE).exists():
            continue
        try:
            st = read_state(folder / STATE_FILE)
            if st["node"] != node:
                raise SegmentError(f"state of node {st['node']:016x} in the folder of {node:016x}",
                                   path=folder / STATE_FILE)
            report.warnings += exchange.record_peer(store, node, st["vv"], st["acks"],
                                                    st["forgotten"])
            states[node] = st
        except (SegmentError, ValidationError) as exc:
            report.warnings.append(f"state of {node:016x} ignored: {exc}")
        except ForgottenNodeError as exc:
            report.refused[node] = exc
    report.peers = sorted(states)

    # 2. import
    forgotten = store.forgotten()
    seen_meta = store.get_meta(_SEEN_META) or {}
    seen: dict[int, list[str]] = {int(k): list(v) for k, v in seen_meta.items()}
    candidates: list[Path] = []
    present: dict[int, set[str]] = {}
    for node, folder in folders.items():
        if node in forgotten:
            continue
        names = {p.name: p for p in _segment_files(folder)}
        present[node] = set(names)
        done = set(seen.get(node, ()))
        candidates += [p for n, p in names.items() if n not in done]
    candidates.sort(key=_order)
    imported = _import_files(store, candidates, None, DEFAULT_LIMITS, final_gaps="waiting")
    completed: set[int] = set()
    for outcome in imported.files:
        sender = int(outcome.path.parent.name, 16)
        rep = outcome.report
        if rep is not None and rep.sender != sender:
            report.warnings.append(f"{outcome.path}: a segment of node {rep.sender:016x} in "
                                   f"the folder of {sender:016x}")
        if outcome.status in ("applied", "known") and rep is not None and rep.kind == "changes" \
                and _settled(rep):
            seen.setdefault(sender, []).append(outcome.path.name)
        if rep is not None and rep.snapshot_complete:
            completed.add(sender)
    for outcome in imported.files:  # snapshot parts count as seen once their series completed
        sender = int(outcome.path.parent.name, 16)
        if sender in completed and outcome.path.name.endswith("-snapshot.seg") \
                and outcome.status in ("applied", "known"):
            seen.setdefault(sender, []).append(outcome.path.name)
    store.set_meta(_SEEN_META, {n: sorted(set(v) & present.get(n, set()))
                                for n, v in seen.items() if n in present})
    report.imported = imported.files
    report.rejected = [f for f in imported.files if f.status == "rejected"]
    report.waiting = [f for f in imported.files if f.status == "waiting"]
    report.add(imported)

    # 3. export
    old_index: dict[str, Any] = {}
    if (own / STATE_FILE).exists():
        try:
            old_index = read_state(own / STATE_FILE)["files"]
        except SegmentError as exc:
            report.warnings.append(f"own state file unreadable, re-indexing: {exc}")
    index = _index_own(own, old_index)
    vv, acks, forgotten = exchange.local_state(store)
    floor = store.log_floor()
    others = [n for n in states if n not in forgotten]
    haves = {n: acks.get(n, {}) for n in others}
    _, snap_vv = _snapshot_series(index)
    needy = [n for n, h in haves.items() if _needs_snapshot(h, vv, floor)]
    if needy and (snap_vv is None or any(_needs_snapshot(vvmod.merge(haves[n], snap_vv), vv, floor)
                                         for n in needy)):
        old_snapshot = [n for n, e in index.items() if e[0] == "snapshot"]
        for header, data in exchange.snapshot_segments(store):
            path = own / segment_filename(header)
            write_atomic(path, data)
            index[path.name] = _index_entry(header)
            report.exported.append(path)
            snap_vv = dict(header.vv)
        for name in old_snapshot:  # superseded by the new series
            _unlink(own / name, report)
            index.pop(name, None)
    effective = [vvmod.merge(h, snap_vv) if n in needy and snap_vv else h for n, h in haves.items()]
    # Alone in the mailbox: publish what the log still holds, for whoever comes next.
    start = vvmod.minimum(effective) if effective else dict(floor)
    # Never below the floor: every other node is at or above it once the snapshot is counted.
    start = {o: max(start.get(o, 0), floor.get(o, 0)) for o in vv}
    base = _base(start, _coverage(index))
    for header, data in exchange.change_segments(store, base, vv):
        path = own / segment_filename(header)
        write_atomic(path, data)
        index[path.name] = _index_entry(header)
        report.exported.append(path)

    # 4. garbage: the log, then our own files every member has acknowledged
    # A node alone in the mailbox keeps everything: the folder is there for whoever comes
    # next, who would otherwise need a snapshot of everything.
    vv, acks, forgotten = exchange.local_state(store)
    mem = vvmod.members(me, vv, acks, forgotten)
    if mem != {me}:
        report.removed, report.purged = exchange.collect_garbage(store)
        vv, acks, forgotten = exchange.local_state(store)
    if mem != {me} and all(n in acks for n in mem):
        low = vvmod.minimum(acks[n] for n in mem)
        series, series_vv = _snapshot_series(index)
        for name, (kind, ranges, _) in sorted(index.items()):
            if kind == "changes":
                obsolete = all(low.get(int(o), 0) >= r[1] for o, r in ranges.items())
            else:  # an older or unfinished series, or one every member has caught up with
                obsolete = name not in series or vvmod.dominates(low, series_vv or {})
            if obsolete:
                _unlink(own / name, report)
                index.pop(name)

    # 5. our state, last
    body = {"node": me, "region": store.region, "vv": vv, "acks": acks,
            "forgotten": sorted(forgotten), "files": index, "updated_hlc": store.tick()}
    write_atomic(own / STATE_FILE, _encode_state(body))
    return report


def _unlink(path: Path, report: SyncReport) -> None:
    try:
        path.unlink()
        report.deleted.append(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        report.warnings.append(f"cannot delete {path}: {exc}")
