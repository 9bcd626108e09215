"""What two nodes exchange, independent of the transport (files or sockets).

The whole protocol is: tell the other side your state (:func:`local_state`: vv, ack table,
forgotten set), take what it tells you (:func:`record_peer`), send it the segments it lacks
(:func:`segments_for`), apply what it sends (:func:`apply_segment`), and now and then drop
what every member has seen (:func:`collect_garbage`). Transports add framing and naming only.

Invariants owned here:

- :func:`segments_for` covers, per origin, everything the peer lacks up to our vv at the
  time of the call, in bounded segments; where that needs log entries below our retention
  point it sends a snapshot (see below) and then the changes after the snapshot's vv.
- :func:`apply_segment` takes a *verified* segment (``decode_segment`` checked it whole) and
  applies it in one LMDB transaction or not at all; a changes segment whose ranges start
  beyond what we hold (a gap nothing in it can bridge) is refused before anything is written.
  Clock-skew refusals are reported, never raised: the changes stay with the sender.
- Acks are recorded only after the data they describe is applied, and only ever grow.

Snapshots larger than one segment
---------------------------------
A snapshot is sent as one or more *parts*, all of kind ``snapshot``::

    part 0 : all table records ("T" …), then items in key order
    part i : a repeat of the last item of part i-1 (the *link*), then the next items
    last   : header vv = the snapshot's vv; every earlier part carries an empty header vv
    every  : the sender's own row in ``acks`` is the snapshot's vv (a vv it really held)

Merging items is always safe on its own (merge is idempotent and commutative), so every part
is merged as soon as it arrives. Only the vv is dangerous: advancing it claims every change
below it, so it is advanced only by the last part, and only if the receiver saw the whole
chain (``T`` records start a chain; each next part's first key equals the previous part's
last key; created HLCs ascend; every part's own ack row, the snapshot's vv, is the same: two
snapshots split at the same keys must not mix). A missing or reordered part leaves the vv
where it was, the peer still looks behind, and the next exchange sends a snapshot again:
nothing is lost. A one-part snapshot (the usual case) is simply part 0 and last at once.

Stale snapshots. A snapshot's items may lack tombstones its sender purged, and ours may have
been purged too: merging an *old* snapshot could resurrect what was deleted since. Everything we
purged lies at or below our log floor, and the floor never passes what every member
acknowledged; so a snapshot short of our floor at an origin where its sender is already known
to have held more is stale and skipped (the sender will send a newer one). A snapshot short of
our floor from a node *not* known to have had more (a node nobody knew of when we collected
garbage) is merged: refusing it would keep the two sides apart for ever.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.checks import check_node_id
from engine.errors import (
    ChangeRefused,
    ClockSkewError,
    Error,
    ForgottenNodeError,
    LogTruncated,
    SegmentError,
    ValidationError,
)
from engine.index import Index, IndexDef, snapshot_def

from . import lineage
from . import vv as vvmod
from .segment import (
    DEFAULT_LIMITS,
    ChangeRecord,
    IndexRecord,
    ItemRecord,
    Kind,
    Record,
    Segment,
    SegmentHeader,
    SegmentLimits,
    TableRecord,
    encode_segment,
)
from .stalls import record_stall

if TYPE_CHECKING:
    from engine import Snapshot, Store

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_RECORDS",
    "ApplyTotals",
    "GapError",
    "SegmentReport",
    "apply_segment",
    "change_segments",
    "collect_garbage",
    "iter_segments",
    "local_state",
    "record_peer",
    "segments_for",
    "snapshot_segments",
]

log = logging.getLogger(__name__)

#: Target payload size of one segment (before compression); one record may exceed it alone.
DEFAULT_MAX_BYTES = 4 << 20
#: Most records in one segment.
DEFAULT_MAX_RECORDS = 10_000
_RECORD_OVERHEAD = 24  # CBOR array head, origin, seq, blob head: a generous estimate
_LOG_CHUNK = 1_000  # log entries per read transaction
_CHAIN_META = "snapshot_chain"


class GapError(SegmentError):
    """A changes segment starts beyond what this store holds: earlier changes must come first.

    Not corruption: the same segment applies once the missing changes arrived (importers retry
    it after the other files)."""


@dataclass(slots=True, kw_only=True)
class ApplyTotals:
    """What applying one or more segments did, in total: the part every apply report shares.

    ``applied``/``skipped``/``held``/``conflicts``/``refused`` are those of
    :class:`engine.ApplyReport` (changes, counted in transactions); ``items`` counts the item
    states merged from snapshot parts; ``warnings`` are things worth a log line.
    """

    applied: int = 0
    skipped: int = 0
    held: int = 0
    conflicts: int = 0
    items: int = 0
    refused: dict[int, Error] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def add(self, other: ApplyTotals, *, source: str | None = None) -> None:
        """Fold ``other`` into these totals; its warnings are prefixed ``"<source>: "``."""
        self.applied += other.applied
        self.skipped += other.skipped
        self.held += other.held
        self.conflicts += other.conflicts
        self.items += other.items
        self.refused.update(other.refused)
        self.warnings += [f"{source}: {w}" if source else w for w in other.warnings]


@dataclass(slots=True)
class SegmentReport(ApplyTotals):
    """What :func:`apply_segment` did with one segment (totals in :class:`ApplyTotals`).

    ``gaps`` is that of :class:`engine.ApplyReport` (changes segments). For a snapshot part,
    ``snapshot_complete`` says whether it completed a snapshot (the vv advanced). ``new`` is
    true if this segment taught us anything.
    """

    sender: int
    kind: str
    created_hlc: int = 0
    snapshot_complete: bool | None = None
    new: bool = False
    gaps: dict[int, tuple[int, int]] = field(default_factory=dict)


# ------------------------------------------------------------------ state and acks


def local_state(store: Store) -> tuple[dict[int, int], dict[int, dict[int, int]], frozenset[int]]:
    """``(vv, acks, forgotten)`` to tell a peer; ``acks`` includes our own row (= ``vv``).

    Forgotten origins stay in ``vv``: their changes up to the cut still relay (we hold none
    beyond it)."""
    forgotten = store.forgotten()
    vv = store.version_vector()
    acks = {n: r for n, r in vvmod.load_acks(store).items() if n not in forgotten}
    acks[store.node_id] = vv
    return vv, acks, forgotten


def _adopt_forgotten(store: Store, forgotten: frozenset[int] | set[int], who: int,
                     cuts: Mapping[int, int] | None = None) -> list[str]:
    """Forget what ``who`` forgot, at the larger of its cut and ours (docs/replication.md)."""
    warnings = []
    mine = store.forget_cuts()
    cuts = cuts or {}
    for node in sorted(forgotten):
        if node == store.node_id:
            if node not in mine:
                warnings.append(f"node {who:016x} has forgotten this node ({node:016x}): its "
                                "changes will be refused there; rejoin as a new store from a "
                                "snapshot")
            continue
        if node in mine and cuts.get(node, 0) <= mine[node]:
            continue
        if node not in mine:
            log.info("node %016x forgot %016x: forgetting it too", who, node)
        store.forget(node, cut=cuts.get(node))
    return warnings


def record_peer(
    store: Store,
    node_id: int,
    vv: Mapping[int, int],
    acks: Mapping[int, Mapping[int, int]],
    forgotten: frozenset[int] | set[int],
    cuts: Mapping[int, int] | None = None,
) -> list[str]:
    """Take in what a peer said about itself: its vv, the ack table it knows, its forgotten set
    (with the cuts it named, where it said them).

    Adopts the peer's forgotten nodes (``store.forget``), then merges ``vv`` as the peer's own
    ack and ``acks`` into our ack table. Returns warnings (e.g. the peer forgot *us*).

    :raises ForgottenNodeError: if ``node_id`` is forgotten here; nothing is recorded.
    :raises ValidationError: for a malformed vv or ack table.
    """
    if node_id in store.forgotten():
        raise ForgottenNodeError(
            f"node {node_id:016x} was forgotten; it must rejoin as a new store from a snapshot"
        )
    own = vvmod.check_vv(vv, f"vv of node {node_id:016x}")
    if not isinstance(acks, Mapping):
        raise ValidationError(f"ack table of node {node_id:016x} must be a map")
    rows = {check_node_id(n, "ack table node id"): vvmod.check_vv(r, f"ack of node {n!r:.20}")
            for n, r in acks.items()}
    gone = frozenset(check_node_id(n, "forgotten node id") for n in forgotten)
    cut_map = vvmod.check_vv(cuts or {}, f"forget cuts of node {node_id:016x}")
    warnings = _adopt_forgotten(store, gone, node_id, cut_map)
    rows[node_id] = vvmod.merge(rows.get(node_id, {}), own)
    vvmod.update_acks(store, rows)
    return warnings


def collect_garbage(store: Store) -> tuple[int, int]:
    """Truncate the log and purge tombstones up to what is causally stable.

    Stability is :func:`replication.vv.plan_gc`; when it is blocked nothing at all is done
    this round. Returns ``(log entries removed, tombstones purged)``.
    """
    vv, acks, forgotten = local_state(store)
    plan = vvmod.plan_gc(store.node_id, vv, acks, forgotten)
    if plan.stable is None:
        log.debug("gc blocked on %016x: %s", store.node_id, plan.reason)
        return 0, 0
    if not plan.stable:
        return 0, 0
    # compact() purges the tombstones of exactly the entries it truncates: always both.
    return store.compact(plan.stable, purge_tombstones=True)


# ------------------------------------------------------------------ sending


def segments_for(
    store: Store,
    peer_vv: Mapping[int, int],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_records: int = DEFAULT_MAX_RECORDS,
    compress: bool | None = None,
) -> Iterator[bytes]:
    """Encoded segments covering everything we hold that a peer at ``peer_vv`` lacks.

    Changes segments when our log still has the entries; otherwise a snapshot (one or more
    parts, module docstring) followed by the changes after its vv. Lazily generated: each
    segment is read and encoded when the consumer asks for it.

    :param max_bytes: target payload size per segment (a single larger record goes alone).
    :param compress: ``None`` = zlib when it saves 10 %, ``True``/``False`` = always/never.
    :raises ValidationError: for a malformed ``peer_vv`` or bad limits.
    """
    for _, data in iter_segments(store, peer_vv, max_bytes=max_bytes, max_records=max_records,
                                 compress=compress):
        yield data


def iter_segments(
    store: Store,
    peer_vv: Mapping[int, int],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_records: int = DEFAULT_MAX_RECORDS,
    compress: bool | None = None,
    force_snapshot: bool = False,
    limits: SegmentLimits = DEFAULT_LIMITS,
) -> Iterator[tuple[SegmentHeader, bytes]]:
    """Like :func:`segments_for`, yielding ``(header, bytes)`` (file transports name files by
    the header). ``force_snapshot`` sends a snapshot even if the log would do."""
    peer = vvmod.check_vv(peer_vv, "peer vv")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValidationError(f"max_bytes must be a positive int, not {max_bytes!r}")
    if isinstance(max_records, bool) or not isinstance(max_records, int) \
            or not 2 <= max_records <= limits.max_records:
        raise ValidationError(
            f"max_records must be in [2, {limits.max_records}], not {max_records!r}")
    w = _Writer(store, max_bytes, max_records, compress, limits)
    vv, _, forgotten = local_state(store)
    floor = store.log_floor()
    need = vvmod.diff_ranges(peer, vv)
    if not need and not force_snapshot:
        return
    if force_snapshot or any(first <= floor.get(o, 0) for o, (first, _) in need.items()):
        yield from _snapshot_then_changes(w, peer)
        return
    try:
        yield from w.changes(peer, vv)
    except LogTruncated:
        # Garbage collection ran between reading the floor and the log; what was already
        # yielded stays valid, the rest comes as a snapshot (merging twice is harmless).
        log.info("log truncated while sending; falling back to a snapshot")
        yield from _snapshot_then_changes(w, vvmod.merge(peer, w.sent))


def snapshot_segments(
    store: Store,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_records: int = DEFAULT_MAX_RECORDS,
    compress: bool | None = None,
) -> Iterator[tuple[SegmentHeader, bytes]]:
    """A full snapshot of ``store`` as chained parts (module docstring); the last part's header
    vv is the snapshot's vv."""
    w = _Writer(store, max_bytes, max_records, compress, DEFAULT_LIMITS)
    yield from w.snapshot(store.snapshot())


def change_segments(
    store: Store,
    start: Mapping[int, int],
    target: Mapping[int, int] | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_records: int = DEFAULT_MAX_RECORDS,
    compress: bool | None = None,
) -> Iterator[tuple[SegmentHeader, bytes]]:
    """Changes segments holding, per origin, the log range ``(start[o], target[o]]``.

    ``target`` defaults to our vv (forgotten origins left out).

    :raises LogTruncated: if part of a range is below the log's retention point.
    """
    w = _Writer(store, max_bytes, max_records, compress, DEFAULT_LIMITS)
    if target is None:
        target, _, _ = local_state(store)
    yield from w.changes(start, target)


Encoded = tuple[SegmentHeader, bytes]


_SNAPSHOT_RETRIES = 8  # fresh snapshots after GC raced the tail, before giving up


def _snapshot_then_changes(w: _Writer, peer: Mapping[int, int]) -> Iterator[Encoded]:
    for _ in range(_SNAPSHOT_RETRIES):
        snap = w.store.snapshot()
        yield from w.snapshot(snap)
        # The items may already hold changes newer than snap.vv (merging them again is a
        # no-op); what the log gained since the snapshot's vv follows as ordinary changes.
        now, _, _ = local_state(w.store)
        try:
            yield from w.changes(vvmod.merge(peer, snap.vv, w.sent), now)
            return
        except LogTruncated:
            # GC truncated part of that tail while the snapshot was going out: the parts
            # already sent stay valid (merging is idempotent); a fresh snapshot covers the rest.
            log.info("log truncated while sending a snapshot's tail; sending a fresh snapshot")
            peer = vvmod.merge(peer, snap.vv, w.sent)
    raise LogTruncated(f"garbage collection kept truncating the log during "
                       f"{_SNAPSHOT_RETRIES} snapshots; try again")


class _Writer:
    """Accumulates records into bounded segments stamped with our state."""

    def __init__(self, store: Store, max_bytes: int, max_records: int, compress: bool | None,
                 limits: SegmentLimits) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.max_records = max_records
        self.compress = compress
        self.limits = limits
        self.sent: dict[int, int] = {}

    def _encode(self, kind: Kind, records: Sequence[Record], vv: Mapping[int, int],
                own_row: Mapping[int, int] | None = None,
                covers: Mapping[int, int] | None = None) -> tuple[SegmentHeader, bytes]:
        _, acks, forgotten = local_state(self.store)
        header_vv = dict(vv)
        if own_row is not None:  # a snapshot part: our row is the snapshot's vv (we held it)
            acks[self.store.node_id] = dict(own_row)
        cuts = {n: c for n, c in self.store.forget_cuts().items() if c}
        bases, voids = None, None
        if kind == "snapshot":
            voids = self.store.voids()
        else:  # our tips and the entries before each range: fork checks
            now, tips = self.store.vv_hlcs()
            covers = {o: h for o, h in tips.items() if header_vv.get(o) == now[o]}
            firsts: dict[int, tuple[int, int]] = {}
            for rec in records:
                o, seq = rec[0], rec[1]
                if isinstance(o, int) and isinstance(seq, int):
                    firsts.setdefault(o, (seq, seq))
            bases = lineage.bases_for(self.store, firsts)
        return encode_segment(
            kind=kind, cuts=cuts, bases=bases, voids=voids,
            sender=self.store.node_id, region=self.store.region, records=records,
            vv=header_vv, acks=acks, forgotten=forgotten, created_hlc=self.store.tick(),
            compress=self.compress, limits=self.limits, covers=covers,
        )

    def changes(self, start: Mapping[int, int], target: Mapping[int, int]) -> Iterator[Encoded]:
        batch: list[ChangeRecord] = []
        size = 0
        for origin in sorted(target):
            after, end = start.get(origin, 0), target[origin]
            while after < end:
                rows = self.store.log_range(origin, after, limit=min(_LOG_CHUNK, end - after))
                if not rows:
                    raise LogTruncated(f"log of node {origin:016x} ends before seq {end}")
                for rec in rows:
                    cost = len(rec[2]) + _RECORD_OVERHEAD
                    if batch and (size + cost > self.max_bytes or len(batch) >= self.max_records):
                        yield self._flush(batch, target)
                        batch, size = [], 0
                    batch.append(rec)
                    size += cost
                    after = rec[1]
        if batch:
            yield self._flush(batch, target)

    def _flush(self, batch: list[ChangeRecord],
               target: Mapping[int, int]) -> tuple[SegmentHeader, bytes]:
        out = self._encode("changes", batch, target)
        for rec in batch:  # what a consumer has been handed, for the truncation fallback
            self.sent[rec[0]] = max(self.sent.get(rec[0], 0), rec[1])
        return out

    def snapshot(self, snap: Snapshot) -> Iterator[tuple[SegmentHeader, bytes]]:
        tables: list[TableRecord] = [
            ("T", t.name, t.partition_key, t.sort_key, t.version[0], t.version[1])
            if t.ttl_version == (0, 0) else
            ("T", t.name, t.partition_key, t.sort_key, t.version[0], t.version[1],
             t.ttl_attribute, t.ttl_version[0], t.ttl_version[1])
            for t in snap.tables
        ]
        indexes: list[IndexRecord] = [_index_record(d) for d in snap.indexes]
        records: list[TableRecord | ItemRecord | IndexRecord] = [*tables, *indexes]
        size = sum(len(t[1]) + 64 for t in tables) + 300 * len(indexes)
        fresh = 0  # items in this part that are not the link
        last: ItemRecord | None = None
        for key, state in snap.items():
            rec: ItemRecord = ("I", key, state)
            cost = len(key) + len(state) + _RECORD_OVERHEAD
            if fresh and (size + cost > self.max_bytes or len(records) >= self.max_records):
                # not last: no header vv
                yield self._encode("snapshot", records, {}, snap.vv, snap.covers)
                assert last is not None
                records, size, fresh = [last], len(last[1]) + len(last[2]), 0
            records.append(rec)
            size += cost
            fresh += 1
            last = rec
        yield self._encode("snapshot", records, snap.vv, snap.vv, snap.covers)


def _index_record(d: IndexDef) -> IndexRecord:
    """A snapshot's record of one index definition (entries never travel)."""
    ix = d.index
    if d.dropped:
        return ("X", d.table, ix.name, None, None, None, d.version[0], d.version[1], True)
    proj = ix.projection if isinstance(ix.projection, str) else list(ix.projection)
    return ("X", d.table, ix.name, ix.partition_key, ix.sort_key, proj, d.version[0],
            d.version[1], False)


# ------------------------------------------------------------------ receiving


def apply_segment(store: Store, segment: Segment) -> SegmentReport:
    """Apply one verified segment; record what its sender told us; return what happened.

    Changes go through ``store.apply_changes`` (one transaction), snapshot parts through
    ``store.merge_snapshot`` (one transaction each, module docstring). Then the sender's vv
    and ack table are merged into ours and its forgotten set adopted.

    :raises ForgottenNodeError: if the sender is forgotten here (nothing applied).
    :raises SegmentError: if a changes range starts beyond what we hold (a gap this segment
        cannot bridge) or a record is malformed; nothing is applied.
    """
    h = segment.header
    me = store.node_id
    if h.sender in store.forgotten():
        raise ForgottenNodeError(
            f"segment from node {h.sender:016x}, which was forgotten: it must rejoin as a new "
            "store from a snapshot"
        )
    if lineage.check_peer(store, h.sender, h.vv, h.covers):
        me = store.node_id  # re-identified: the segment's changes of our old id apply normally
    report = SegmentReport(sender=h.sender, kind=h.kind, created_hlc=h.created_hlc)
    before = store.version_vector()
    if h.kind == "changes":
        skip = store.forgotten() | h.forgotten | {me}
        for origin, (have, first) in vvmod.range_gaps(before, h.ranges, skip).items():
            raise GapError(
                f"gap: changes of node {origin:016x} start at seq {first} but this store "
                f"holds only up to {have}; seqs {have + 1}..{first - 1} must come first"
            )
    report.warnings += _adopt_forgotten(store, h.forgotten, h.sender, h.cuts)
    if h.kind == "changes":
        forked = lineage.forked_origins(store, h)
        records = [r for r in segment.change_records() if r[0] not in forked]
        try:
            r = store.apply_changes(records)
        except ChangeRefused as exc:
            record_stall(store, h.sender, exc)
            raise SegmentError(f"bad change record: {exc}") from exc
        except ValidationError as exc:
            raise SegmentError(f"bad change record: {exc}") from exc
        report.applied, report.skipped = r.applied, r.skipped
        report.held = r.held + len(segment.records) - len(records)
        report.conflicts, report.refused, report.gaps = r.conflicts, r.refused, r.gaps
        report.new = r.applied > 0
    else:
        _apply_snapshot(store, segment, report)
        report.new = report.new or not vvmod.dominates(before, store.version_vector())
    rows = {n: r for n, r in h.acks.items()}
    rows[h.sender] = vvmod.merge(rows.get(h.sender, {}), h.vv)
    vvmod.update_acks(store, rows)
    lineage.reissue_pending(store)
    return report


def _apply_snapshot(store: Store, segment: Segment, report: SegmentReport) -> None:
    from engine import TableDef

    h = segment.header
    tables = [TableDef(r[1], r[2], r[3], (r[4], r[5]),
                       *((r[6], (r[7], r[8])) if len(r) == 9 else ()))  # type: ignore[misc]
              for r in segment.records if r[0] == "T"]
    items: list[tuple[bytes, bytes]] = [(r[1], r[2])
                                        for r in segment.records if r[0] == "I"]
    indexes = [snapshot_def(r[1], r[2], None if r[8] else Index(r[2], r[3] or "", r[4], r[5]),
                            (r[6], r[7])) for r in segment.records if r[0] == "X"]
    snap_vv = h.vv or h.acks.get(h.sender, {})
    floor = store.log_floor()
    short = {o: f for o, f in floor.items() if snap_vv.get(o, 0) < f}
    if short:
        known = vvmod.load_acks(store).get(h.sender, {})
        if any(known.get(o, 0) >= f for o, f in short.items()):
            report.snapshot_complete = False
            report.warnings.append(
                "stale snapshot skipped: its sender is known to have held more than it carries, "
                "and it covers less than this store garbage-collected; merging it could "
                "resurrect deletes"
            )
            return
        report.warnings.append(
            "snapshot below this store's garbage-collection point from a node not known to "
            "have acknowledged it: merged so that replicas converge (see docs/replication.md, "
            "'Nodes nobody knew of')"
        )
    chains: dict[int, Any] = dict(store.get_meta(_CHAIN_META) or {})
    link = chains.get(h.sender)
    # Every part names its snapshot's vv (the sender's own ack row; the last part's header vv
    # too): parts of two snapshots split at the same keys must not pass for one chain.
    ident = sorted([o, s] for o, s in h.acks.get(h.sender, {}).items())
    # (a snapshot of an empty vv — a sender that re-identified before any change arrived —
    # has no last part to tell apart: each part claims nothing, so each counts as the last)
    last = bool(h.vv) or not segment.records or not any(s for _, s in ident)
    if tables or not segment.records:
        in_chain = True  # part 0 starts a chain (an empty snapshot is complete by itself)
    else:
        in_chain = (isinstance(link, list) and len(link) == 3 and bool(items)
                    and items[0][0] == link[1] and h.created_hlc > link[0] and link[2] == ident
                    and (not last or ident == sorted([o, s] for o, s in h.vv.items())))
    # What this part lists completely: part 0 (it holds the tables) from the first key, the
    # last part up to the last; in between, from its link to its last item.
    span = (None if tables or not items else items[0][0], None if last else items[-1][0])
    covers = h.covers
    if h.voids:  # before the items: ours must be renamed as the sender's were
        store.adopt_voids(h.voids)
    try:
        if last and in_chain:
            report.items = store.merge_snapshot(h.vv, tables, items, indexes, covers=covers,
                                                span=span)
            report.snapshot_complete = True
            chains.pop(h.sender, None)
        else:
            report.items = store.merge_snapshot({}, tables, items, indexes, covers=covers,
                                                span=span)
            report.snapshot_complete = False
            report.new = True
            if in_chain:
                chains[h.sender] = [h.created_hlc, items[-1][0], ident]
            else:
                chains.pop(h.sender, None)
                report.warnings.append(
                    "snapshot part out of sequence (a part is missing or came out of order): "
                    "its items were merged but the version vector was not advanced"
                )
    except ValidationError as exc:
        raise SegmentError(f"bad snapshot record: {exc}") from exc
    except ClockSkewError as exc:
        # Reported, not raised: nothing of this part was merged and the chain is broken, so the
        # vv stays put and the sender sends a snapshot again once clocks are within bounds.
        exc.origin = exc.origin if exc.origin is not None else h.sender
        report.refused[h.sender] = exc
        report.held = len(segment.records)
        report.snapshot_complete = False
        report.new = False
        chains.pop(h.sender, None)
    store.set_meta(_CHAIN_META, chains)
