"""The shared-folder ("mailbox") protocol: :func:`sync_dir`.

Mailbox layout (any number of nodes; a USB stick, an NFS or rsync'd folder)::

    mailbox/
      <node id, 16 lowercase hex>/         written only by that node
        <created_hlc>-<sender>-<kind>.seg  its segments (segment.segment_filename)
        state.cbor                         its vv, ack table, forgotten set, region, file index
        .*.tmp                             writes in progress: ignored by every reader

One run of :func:`sync_dir` is five steps, each a function here: read the other nodes' state
files (:func:`_read_states`), import their segments not imported before
(:func:`_import_new`), collect garbage and export what others lack (:func:`_export`), delete
our own files every member has (:func:`_delete_obsolete`), and write our state file last.

Invariants owned here:

- A node writes only into its own folder; a reader sees whole files or none
  (:func:`~replication.atomic.write_atomic`). Temp files a crash left in our own folder are
  removed once they are older than :data:`STALE_TEMP_SECONDS`.
- A node deletes its own segments only once every member has acknowledged all they carry (or,
  for a snapshot, once a newer snapshot replaced it) — and, while its log is truncated, keeps
  one snapshot series and the changes files after it, so that a node that is new to the folder
  finds its snapshot at once (no round trip through a state file first).
- ``sync_dir`` never raises for another node's bad files or state; it reports them.
- What we imported is remembered per node id: a copied store (which takes a new id) starts
  afresh and so takes the snapshots its state may need.

``state.cbor`` is ``[b"regiondb-state", 1, body, blake2b-256(body)]`` (CBOR), ``body`` the
canonical CBOR map ``{node, region, vv, acks, forgotten, files, updated_hlc}``; ``files``
indexes the node's own segments (name -> ``[kind, {origin: [first, last]}, vv]``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cbor2

from engine.bounded import loads_bounded
from engine.checks import check_node_id, is_node_id, is_u64
from engine.errors import ForgottenNodeError, SegmentError, ValidationError

from . import exchange, lineage
from . import vv as vvmod
from .atomic import is_temp_name, read_file_bounded, write_atomic
from .exchange import ApplyTotals, SegmentReport
from .files import FileOutcome, _import_files, _order, _segment_files
from .segment import DEFAULT_LIMITS, SegmentHeader, decode_segment, segment_filename

if TYPE_CHECKING:
    from engine import Store

__all__ = ["STALE_TEMP_SECONDS", "SyncReport", "read_state", "sync_dir"]

log = logging.getLogger(__name__)

STATE_FILE = "state.cbor"
STATE_MAGIC = b"regiondb-state"
STATE_MAX_BYTES = 16 << 20
#: A temp file in our own folder older than this is what a crash mid-write left: removed.
STALE_TEMP_SECONDS = 15 * 60
_SEEN_META = "mailbox_seen"
#: A standing snapshot series is rewritten once the changes files kept after it hold more
#: records than this and the store has items (a snapshot is then the smaller thing to read).
_STANDING_MIN_RECORDS = 1_000


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
        tips = body.get("tips", {})  # absent in state files of older builds
        return {
            "tips": {n: t for n, t in tips.items() if is_node_id(n) and is_u64(t)}
            if isinstance(tips, dict) else {},
            "node": node, "region": region, "vv": vvmod.check_vv(body.get("vv", {})),
            "acks": {n: vvmod.check_vv(r, "ack") for n, r in acks.items()},
            "forgotten": frozenset(forgotten), "files": files if isinstance(files, dict) else {},
            "cuts": vvmod.check_vv(body.get("cuts", {}), "forget cuts"),
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
    3. Garbage-collect what every member has acknowledged; export what the other nodes lack,
       starting past what our folder already holds; a node below our log's retention point
       (or one new to the folder) gets a snapshot series, reused while it still serves.
    4. Delete our own files every member has (keeping what a newcomer would need).
    5. Write our state file last, so it never names files that are not there.

    Never raises for other nodes' files; they are reported. Nodes never need to run together.

    :raises OSError: if our own folder cannot be written.
    """
    box = Path(mailbox)
    _check_lineage(store, box)  # a restored store re-identifies before it reads or writes
    me = store.node_id
    own = box / _hex(me)
    own.mkdir(parents=True, exist_ok=True)
    report = SyncReport(node_id=me)
    _clean_temp(own, report)
    states, folders = _read_states(store, box, report)
    _import_new(store, folders, states, report)
    index = _own_index(own, report)
    _export(store, own, states, index, report)
    _delete_obsolete(store, own, index, report)
    lineage.reissue_pending(store)
    vv, acks, forgotten = exchange.local_state(store)
    body = {"node": me, "region": store.region, "vv": vv, "acks": acks,
            "tips": lineage.tips(store),
            "forgotten": sorted(forgotten), "files": index, "updated_hlc": store.tick(),
            "cuts": {n: c for n, c in store.forget_cuts().items() if c}}
    write_atomic(own / STATE_FILE, _encode_state(body))
    return report


def _check_lineage(store: Store, box: Path) -> None:
    """Compare every state file in the mailbox — our own folder's included, which may be newer
    than a restored store — with our log; re-identify on a fork (:mod:`replication.lineage`)."""
    if not box.is_dir():
        return
    for node, folder in _node_dirs(box):
        try:
            st = read_state(folder / STATE_FILE)
        except SegmentError:
            continue  # missing or bad: reported by the sync itself
        if st["node"] == node and lineage.check_peer(store, node, st["vv"], st["tips"]):
            return


def _clean_temp(own: Path, report: SyncReport) -> None:
    """Remove temp files a crash mid-write left in our own folder (old enough to be no
    write still in progress)."""
    cutoff = time.time() - STALE_TEMP_SECONDS
    for entry in os.scandir(own):
        try:
            if is_temp_name(entry.name) and entry.is_file() \
                    and entry.stat().st_mtime < cutoff:
                _unlink(Path(entry.path), report)
        except OSError as exc:
            report.warnings.append(f"cannot inspect {entry.path}: {exc}")


def _read_states(store: Store, box: Path, report: SyncReport
                 ) -> tuple[dict[int, dict[str, Any]], dict[int, Path]]:
    """Step 1: every other node's state file, recorded (``record_peer``); its folders."""
    me = store.node_id
    forgotten = store.forgotten()
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
                                                    st["forgotten"], st["cuts"])
            states[node] = st
        except (SegmentError, ValidationError) as exc:
            report.warnings.append(f"state of {node:016x} ignored: {exc}")
        except ForgottenNodeError as exc:
            report.refused[node] = exc
    report.peers = sorted(states)
    return states, folders


def _load_seen(store: Store) -> dict[int, list[str]]:
    """The files imported before, if this store (this node id) imported them."""
    raw = store.get_meta(_SEEN_META) or {}
    if isinstance(raw, dict) and "node" in raw:
        if raw["node"] != store.node_id:
            return {}  # a copied store under a new id: what it holds may need snapshots
        raw = raw.get("seen") or {}
    return {int(k): list(v) for k, v in raw.items()}


def _superseded_snapshots(st: dict[str, Any] | None, vv: Mapping[int, int]) -> set[str]:
    """Snapshot files a sender's index lists whose latest series we already dominate."""
    if st is None:
        return set()
    files = st["files"]
    _, series_vv = _snapshot_series(files)
    if series_vv is None or not vvmod.dominates(vv, series_vv):
        return set()
    return {n for n, e in files.items() if isinstance(e, list) and e and e[0] == "snapshot"}


def _import_new(store: Store, folders: Mapping[int, Path], states: Mapping[int, dict[str, Any]],
                report: SyncReport) -> None:
    """Step 2: import the other nodes' segments not imported before; remember what settled."""
    forgotten = store.forgotten()
    seen = _load_seen(store)
    vv = store.version_vector()
    candidates: list[Path] = []
    present: dict[int, set[str]] = {}
    for node, folder in folders.items():
        if node in forgotten:
            continue
        names = {p.name: p for p in _segment_files(folder)}
        present[node] = set(names)
        skip = set(seen.get(node, ())) | _superseded_snapshots(states.get(node), vv)
        candidates += [p for n, p in names.items() if n not in skip]
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
    store.set_meta(_SEEN_META, {"node": store.node_id, "seen": {
        n: sorted(set(v) & present.get(n, set())) for n, v in seen.items() if n in present}})
    report.imported = imported.files
    report.rejected = [f for f in imported.files if f.status == "rejected"]
    report.waiting = [f for f in imported.files if f.status == "waiting"]
    report.add(imported)


def _own_index(own: Path, report: SyncReport) -> dict[str, list[Any]]:
    old_index: dict[str, Any] = {}
    if (own / STATE_FILE).exists():
        try:
            old_index = read_state(own / STATE_FILE)["files"]
        except SegmentError as exc:
            report.warnings.append(f"own state file unreadable, re-indexing: {exc}")
    return _index_own(own, old_index)


def _truncated(vv: Mapping[int, int], floor: Mapping[int, int]) -> bool:
    """True if a node new to the folder (holding nothing) would need a snapshot from us."""
    return _needs_snapshot({}, vv, floor)


def _kept_after(index: Mapping[str, list[Any]], snap_vv: Mapping[int, int]) -> int:
    """Change records our folder holds beyond ``snap_vv`` (what a newcomer reads after it)."""
    total = 0
    for kind, ranges, _ in index.values():
        if kind == "changes":
            for o, (f, last) in ranges.items():
                total += max(0, last - max(f - 1, snap_vv.get(int(o), 0)))
    return total


def _series_needed(store: Store, index: Mapping[str, list[Any]], needy: list[dict[int, int]],
                   vv: Mapping[int, int], floor: Mapping[int, int]) -> bool:
    """Whether a new snapshot series must be written for the nodes below our floor."""
    if not needy:
        return False
    _, snap_vv = _snapshot_series(index)
    if snap_vv is None:
        return True
    runs = _coverage(index)
    if any(_needs_snapshot(_base(vvmod.merge(h, snap_vv), runs), vv, floor) for h in needy):
        return True  # the series no longer bridges to our log, even with our changes files
    kept = _kept_after(index, snap_vv)
    return kept > _STANDING_MIN_RECORDS and kept > int(store.stats()["items"])


def _export(store: Store, own: Path, states: Mapping[int, dict[str, Any]],
            index: dict[str, list[Any]], report: SyncReport) -> None:
    """Step 3: collect garbage, then write what the other nodes (and a newcomer) lack."""
    vv, acks, forgotten = exchange.local_state(store)
    if vvmod.members(store.node_id, vv, acks, forgotten) != {store.node_id}:
        # A node alone in the mailbox keeps everything: the folder is there for whoever
        # comes next, who would otherwise need a snapshot of everything.
        report.removed, report.purged = exchange.collect_garbage(store)
    vv, acks, forgotten = exchange.local_state(store)
    floor = store.log_floor()
    haves = [acks.get(n, {}) for n in states if n not in forgotten]
    needy = [h for h in haves if _needs_snapshot(h, vv, floor)]
    if _truncated(vv, floor):
        needy.append({})  # whoever joins next finds its snapshot here at once
    if _series_needed(store, index, needy, vv, floor):
        old_snapshot = [n for n, e in index.items() if e[0] == "snapshot"]
        for header, data in exchange.snapshot_segments(store):
            _write_own(own, header, data, index, report)
        for name in old_snapshot:  # superseded by the new series
            _unlink(own / name, report)
            index.pop(name, None)
    _, snap_vv = _snapshot_series(index)
    effective = [vvmod.merge(h, snap_vv) if snap_vv and _needs_snapshot(h, vv, floor) else h
                 for h in haves]
    if _truncated(vv, floor) and snap_vv:
        effective.append(snap_vv)
    # Alone in the mailbox: publish what the log still holds, for whoever comes next.
    start = vvmod.minimum(effective) if effective else dict(floor)
    # Never below the floor: every other node is at or above it once the snapshot is counted.
    start = {o: max(start.get(o, 0), floor.get(o, 0)) for o in vv}
    base = _base(start, _coverage(index))
    for header, data in exchange.change_segments(store, base, vv):
        _write_own(own, header, data, index, report)


def _write_own(own: Path, header: SegmentHeader, data: bytes, index: dict[str, list[Any]],
               report: SyncReport) -> None:
    path = own / segment_filename(header)
    write_atomic(path, data)
    index[path.name] = _index_entry(header)
    report.exported.append(path)


def _delete_obsolete(store: Store, own: Path, index: dict[str, list[Any]],
                     report: SyncReport) -> None:
    """Step 4: delete our own files every member has acknowledged all of; while our log is
    truncated, keep the latest snapshot series and the changes files after it (newcomers)."""
    me = store.node_id
    vv, acks, forgotten = exchange.local_state(store)
    mem = vvmod.members(me, vv, acks, forgotten)
    if mem == {me} or not all(n in acks for n in mem):
        return
    low = vvmod.minimum(acks[n] for n in mem)
    series, series_vv = _snapshot_series(index)
    standing = _truncated(vv, store.log_floor()) and series_vv is not None
    keep_from = vvmod.minimum([low, series_vv or {}]) if standing else low
    for name, (kind, ranges, _) in sorted(index.items()):
        if kind == "changes":
            obsolete = all(keep_from.get(int(o), 0) >= r[1] for o, r in ranges.items())
        else:  # an older or unfinished series, or one every member has caught up with
            obsolete = name not in series or (
                not standing and vvmod.dominates(low, series_vv or {}))
        if obsolete:
            _unlink(own / name, report)
            index.pop(name)


def _unlink(path: Path, report: SyncReport) -> None:
    try:
        path.unlink()
        report.deleted.append(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        report.warnings.append(f"cannot delete {path}: {exc}")
