"""Applying remote changes: validation, merge into item states, relay into the log, conflicts.

A batch of remote transactions ``(origin, seq, txn)`` is decoded and checked whole *before*
the write transaction begins (untrusted input: :func:`engine.codec.decode_txn`), then merged in
one LMDB write transaction: each item's state is merged with the change's delta
(:func:`engine.item.merge_change`), the transaction is appended to the log under its origin
and seq (so this node can relay it), the version vector advances and the clock observes the
change's HLC. Per origin the sequence must be contiguous; an origin stops at a gap, a clock
skew beyond the maximum offset, or if it was forgotten, and its later changes are *held*.

Conflicts (``conflicts`` database and meta record, :mod:`engine.layout`), one CBOR record
each::

    [table, [key values], attribute, [winner hlc, node], [loser hlc, node], losing value,
     winning value | null, local_lost]

They are local diagnostics, bounded to ``max_conflicts`` (oldest dropped), never replicated.
"""

from __future__ import annotations

import gc
import heapq
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from . import codec, index, schema, voids
from .changelog import append, key_dict, read_clock, version_vector, write_clock
from .changes import ApplyReport, Conflict, RawChange, TableDef, decode_table_def
from .checks import check_u64, is_node_id
from .clock import BOTTOM, Version, observe
from .conflictlog import append_conflicts
from .env import Env, Txn
from .errors import ChangeRefused, ClockSkewError, Error, ForgottenNodeError, ValidationError
from .item import (
    ABSENT,
    AttrConflict,
    ItemState,
    delete_delta,
    merge_change,
    put_delta,
    update_delta,
    visible,
)
from .keys import decode_key
from .layout import CONFLICTS, META_CONFLICTS, META_FORGOTTEN, U64

if TYPE_CHECKING:
    from .context import Context

__all__ = ["apply_change_lists", "apply_changes", "conflict_count", "conflicts", "forget_cuts",
           "forgotten_ids", "merge_table", "merge_ttl", "op_delta"]

log = logging.getLogger(__name__)

Decoded = tuple[int, int, bytes, int, list[codec.Op]]  # origin, seq, raw, hlc, ops


_PREREAD = 64  # from this many records on, look up what is already known before decoding


_gc_lock = threading.Lock()
_gc_pauses = 0  # decodes under way that paused the collector (several threads may decode)
_gc_was_enabled = False


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch of changes is decoded.

    Every decoded change stays alive until the batch is applied, so the collector's passes
    over them (a tenth of a large merge's time) find nothing: decoded CBOR holds no cycles, and
    reference counting still frees it all. The first of overlapping pauses (threads) records
    whether it was enabled and the last restores that: a collector the application had
    disabled stays so, and one it had enabled is never left off.
    """
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


def _decode_records(ctx: Context, records: Iterable[RawChange]) -> tuple[list[Decoded], int]:
    """Check and decode every record; raise ``ValidationError`` before anything is applied.

    Records this store already holds are only type-checked, never decoded (they will be
    skipped); their count is returned. The lookup is made for large batches (catch-up,
    imports, re-imports), not for the one-segment pushes of live replication.
    """
    if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Iterable):
        raise ValidationError(f"records must be an iterable of (origin, seq, txn), not {records!r}")
    records = list(records)
    known = version_vector(ctx) if len(records) >= _PREREAD else {}
    decoded: list[Decoded] = []
    skipped = 0
    with _gc_paused():
        for i, rec in enumerate(records):
            if not (isinstance(rec, tuple) and len(rec) == 3):
                raise ValidationError(f"record {i} is not (origin, seq, txn)")
            origin, seq, raw = rec
            if not is_node_id(origin) or not is_node_id(seq) or not isinstance(raw, bytes):
                raise ValidationError(f"record {i} has a bad origin, seq or payload type")
            if seq <= known.get(origin, 0):
                skipped += 1
                continue
            try:
                hlc, ops = codec.decode_txn(raw)
            except ValidationError as exc:
                raise ChangeRefused(f"change {origin:016x}/{seq}: {exc}", origin=origin,
                                    seq=seq) from None
            decoded.append((origin, seq, raw, hlc, ops))
    by_origin: dict[int, list[Decoded]] = {}
    for d in decoded:
        by_origin.setdefault(d[0], []).append(d)
    if len(by_origin) > 1:
        # Apply in HLC order across origins, each origin's records staying in their given
        # order. HLCs respect causality, so a change is merged after the changes its writer
        # had seen: conflict detection (one-sided, through ``seen``) needs that to have no
        # false positives, e.g. when a relay sends B's update of an item before A's put.
        decoded = list(heapq.merge(*by_origin.values(), key=lambda d: (d[3], d[0])))
    return decoded, skipped


def apply_changes(ctx: Context, records: Iterable[RawChange]) -> ApplyReport:
    """See :meth:`engine.Store.apply_changes`."""
    return _apply_decoded(ctx, [_decode_records(ctx, records)])[0]


def apply_change_lists(ctx: Context, lists: Iterable[Iterable[RawChange]],
                       ) -> list[ApplyReport | Error]:
    """See :meth:`engine.Store.apply_change_lists`."""
    decoded: list[tuple[list[Decoded], int] | Error] = []
    for records in lists:
        try:
            decoded.append(_decode_records(ctx, records))
        except ValidationError as exc:  # this list alone is refused, before any write
            decoded.append(exc)
    good = [d for d in decoded if not isinstance(d, Error)]
    try:
        reports = iter(_apply_decoded(ctx, good) if good else [])
    except Error:
        if len(good) < 2:
            raise
        # Something raised inside the shared transaction (nothing of it committed): apply
        # each list alone, so that the failure is its own list's outcome and no other's.
        out: list[ApplyReport | Error] = []
        for d in decoded:
            if isinstance(d, Error):
                out.append(d)
                continue
            try:
                out.append(_apply_decoded(ctx, [d])[0])
            except Error as exc:
                out.append(exc)
        return out
    return [d if isinstance(d, Error) else next(reports) for d in decoded]


def _apply_decoded(ctx: Context, lists: list[tuple[list[Decoded], int]]) -> list[ApplyReport]:
    """Merge decoded lists in one write transaction (one commit), each after the one before."""
    env = ctx.env

    def run(txn: Txn) -> tuple[list[ApplyReport], int, bool, bool]:
        reports, last, tables_changed, builds = [], 0, False, False
        for decoded, already_known in lists:
            report, pos, tables, build = _merge_records(ctx, env, txn, decoded, already_known)
            reports.append(report)
            last, tables_changed, builds = pos or last, tables_changed or tables, builds or build
        return reports, last, tables_changed, builds

    reports, pos, tables_changed, builds = env.write(run)
    if tables_changed:
        ctx.uncache_tables()
    if pos:
        ctx.notify(pos)
    if builds:  # an index definition arrived: fill (or clear) it here, as its creator did
        index.build_pending(ctx)
    return reports


def _merge_records(ctx: Context, env: Env, txn: Txn, decoded: list[Decoded],
                   already_known: int) -> tuple[ApplyReport, int, bool, bool]:
    """Merge one decoded list inside ``txn``: (report, new position or 0, tables changed,
    index builds pending)."""
    node_id = ctx.node_id
    report = ApplyReport(skipped=already_known)
    hlc_last, local_seq, pos = read_clock(txn, env)
    start_pos = pos
    vv: dict[int, int] = {}
    known: dict[int, int] = {}
    cuts = forget_cuts(txn, env)
    wall = ctx.wall()
    tables_changed = False
    builds = False
    tcache: dict[str, Any] = {}  # table -> (deleted?, incarnation) for schema.stale_op
    void_set = voids.load(txn, env)
    stopped: set[int] = set()  # origins whose next entry is one its writer relabeled
    for origin, seq, raw, hlc, ops in decoded:
        if origin in report.refused or origin in report.gaps or origin in stopped:
            report.held += 1
            continue
        if origin == node_id:
            if seq <= local_seq:
                report.skipped += 1
            else:
                report.refused[origin] = ValidationError(
                    f"received seq {seq} of this node's own id, which it never wrote: "
                    "is a copy of this store running elsewhere?"
                )
                report.held += 1
            continue
        have = vv.get(origin)
        if have is None:
            raw_have = txn.get(U64.pack(origin), db=env.vv)
            have = vv[origin] = known[origin] = U64.unpack(raw_have)[0] if raw_have else 0
        if seq <= have:
            report.skipped += 1
            continue
        if seq != have + 1:
            report.gaps[origin] = (have, seq)
            report.held += 1
            continue
        if origin in cuts and seq > cuts[origin]:
            report.refused[origin] = ForgottenNodeError(
                f"node {origin:016x} was forgotten after its seq {cuts[origin]}; it must "
                "rejoin from a snapshot"
            )
            report.held += 1
            continue
        if void_set and voids.is_void(void_set, origin, seq, hlc):
            stopped.add(origin)  # the world holds other entries there: they come instead
            report.held += 1
            continue
        try:
            hlc_last = observe(hlc_last, hlc, wall, ctx.max_offset_ms, origin=origin)
        except ClockSkewError as exc:
            report.refused[origin] = exc
            report.held += 1
            continue
        v = (hlc, origin)
        if ops[-1].kind == "V":
            old = ops[-1].attrs["origin"]
            lowered, void_set = voids.apply_void(txn, env, ops[-1], hlc, origin,
                                                 {op.key for op in ops if op.kind in "PUD"}, vv)
            if lowered:
                known[old] = -1  # written below
        images: list[Any] = []
        for op in ops:
            if op.kind == "V":
                images.append(None)
                continue
            if void_set and op.ext.observed:
                op = voids.split_observed(void_set, op)
            if op.kind in ("T", "L"):
                tables_changed = True
                tcache.pop(op.table, None)
            elif op.kind == "R":
                schema.merge_drop(txn, env, op, v)
                tables_changed = True
                tcache.pop(op.table, None)
                images.append(None)
                continue
            elif op.kind in _ITEM_OR_INDEX and schema.stale_op(tcache, txn, env, op.table, v,
                                                                    op.inc):
                images.append(None)  # a change of a deleted incarnation: dropped
                continue
            elif op.kind in ("I", "X"):
                builds |= _merge_index_def(txn, env, op, v)
                images.append(None)
                continue
            images.append(_merge_op(ctx, txn, env, op, v, report))
        pos = append(txn, env, origin, seq, raw, images, pos)
        vv[origin] = seq
        report.applied += 1
    if pos != start_pos:
        for origin, seq in vv.items():
            if seq != known[origin]:  # origins that only had gaps or refusals: no entry
                txn.put(U64.pack(origin), U64.pack(seq), db=env.vv)
        write_clock(txn, env, hlc_last, local_seq, pos)
    return report, pos if pos != start_pos else 0, tables_changed, builds


_ITEM_OR_INDEX = frozenset("PUDIX")  # operations dropped when their table incarnation is gone


def _merge_index_def(txn: Txn, env: Env, op: codec.Op, v: Version) -> bool:
    """Merge a replicated create (``I``) or drop (``X``) of an index; True if it needs a build."""
    name = op.attrs["name"]
    ix = None
    if op.kind == "I":
        ix = index.Index(name, op.attrs["partition_key"], op.attrs["sort_key"],
                         op.attrs["projection"])
    return index.merge_def(txn, env, op.table, ix, name, v)


def _merge_op(
    ctx: Context, txn: Txn, env: Env, op: codec.Op, v: Version, report: ApplyReport
) -> Any:
    """Merge one remote operation into its item; return the image for the log entry."""
    if op.kind == "T":
        merge_table(txn, env, op, v, ctx.max_conflicts)
        return None
    if op.kind == "L":
        merge_ttl(txn, env, op.table, op.attrs["ttl_attribute"], v)
        return None
    raw = txn.get(op.key, db=env.items)
    ix = index.active_defs(txn, env, op.table)
    if raw is None and op.kind == "P" and not op.ext:
        # A put into a missing item: the merged state is the put's delta itself, and with
        # nothing local there is nothing to conflict with.
        txn.put(op.key, codec.put_state_bytes(v, codec.dumps(op.attrs), op.seen), db=env.items)
        if ix:
            index.maintain(txn, env, ix, op.key, None, op.attrs or None)
        return True if op.attrs else None
    state = codec.decode_state(raw) if raw is not None else None
    delta = op_delta(op, v)
    new, lost = merge_change(state, delta, v, op.seen, codec.canonical)
    txn.put(op.key, codec.encode_state(new), db=env.items)
    if ix:  # merged: a value that is not a key type is left out of the index, not refused
        index.maintain(txn, env, ix, op.key, visible(state), visible(new))
    if lost:
        # Key attributes are the item's existence marker, written by every put and update;
        # their "loss" to a delete is already told by the other attributes' conflicts.
        traw = txn.get(op.table.encode(), db=env.tables)
        if traw is not None:
            tdef = decode_table_def(op.table, bytes(traw))
            lost = [c for c in lost if c.attribute not in (tdef.partition_key, tdef.sort_key)]
    if lost:
        report.conflicts += len(lost)
        _record_conflicts(txn, env, op, v, lost, ctx.max_conflicts)
    image = visible(new)
    return True if op.kind == "P" and image == op.attrs else image


def op_delta(op: codec.Op, v: Version) -> ItemState:
    """The item-state delta of one item operation at version ``v`` (merge, replay, checks)."""
    if op.kind == "P":
        return put_delta(op.attrs, v, op.seen, op.ext)
    if op.kind == "U":
        return update_delta(op.attrs, op.remove, v, op.seen, op.ext)
    return delete_delta(v, op.seen, op.ext)


def merge_table(txn: Txn, env: Env, op: codec.Op, v: Version,
                max_conflicts: int | None = None) -> None:
    """Merge a table definition: the larger version (incarnation) wins a schema disagreement,
    recorded as a conflict when ``max_conflicts`` is given (:mod:`engine.schema`); a deleted
    table comes back only as an incarnation newer than its deletion."""
    pk, sk = op.attrs["partition_key"], op.attrs["sort_key"]
    new = TableDef(op.table, pk, sk, v)
    raw = txn.get(op.table.encode(), db=env.tables)
    cur = None
    if raw is not None:
        cur = decode_table_def(op.table, raw)
        if cur.partition_key is None:  # a table tombstone
            if cur.version >= v:
                return  # the creation of an incarnation deleted since
        elif (cur.partition_key, cur.sort_key) == (pk, sk) or cur.version >= v:
            if (cur.partition_key, cur.sort_key) != (pk, sk) and max_conflicts is not None:
                schema.record_schema_conflict(txn, env, op.table, cur, new, False,
                                              max_conflicts)
            return
        elif max_conflicts is not None:
            schema.record_schema_conflict(txn, env, op.table, new, cur, True, max_conflicts)
    if cur is None or cur.partition_key is None:  # new, or a new incarnation of a deleted one
        ttl, ttl_v = _pending_ttl(txn, env, op.table)
    else:
        ttl, ttl_v = cur.ttl_attribute, cur.ttl_version
    txn.put(op.table.encode(), TableDef(op.table, pk, sk, v, ttl, ttl_v).stored(),
            db=env.tables)


def _pending_ttl(txn: Txn, env: Env, table: str) -> tuple[str | None, Version]:
    """A TTL that arrived before its table's definition (then deleted from meta)."""
    raw = txn.get(b"ttl-pending:" + table.encode(), db=env.meta)
    if raw is None:
        return None, BOTTOM
    txn.delete(b"ttl-pending:" + table.encode(), db=env.meta)
    attribute, hlc, node = codec.loads(raw)
    return attribute, (hlc, node)


def merge_ttl(txn: Txn, env: Env, table: str, attribute: str | None, v: Version) -> bool:
    """Merge a table's TTL attribute (a register: the larger version wins); ``True`` if it
    changed. A TTL for a table whose definition has not arrived yet waits in meta
    (``ttl-pending:<table>``) until it does."""
    raw = txn.get(table.encode(), db=env.tables)
    if raw is None:
        pending, pv = _pending_ttl(txn, env, table)
        if pv > v:
            attribute, v = pending, pv
        txn.put(b"ttl-pending:" + table.encode(), codec.dumps([attribute, v[0], v[1]]),
                db=env.meta)
        return False
    cur = decode_table_def(table, raw)
    if cur.partition_key is None or cur.ttl_version >= v:
        return False  # a deleted table's TTL, or an older one
    new = TableDef(table, cur.partition_key, cur.sort_key, cur.version, attribute, v)
    txn.put(table.encode(), new.stored(), db=env.tables)
    return True


def forget_cuts(txn: Txn, env: Env) -> dict[int, int]:
    """Forgotten node id -> its cut (the last seq of it still accepted), as of this
    transaction. The record is a CBOR map; stores written before cuts hold a list (cut 0)."""
    raw = txn.get(META_FORGOTTEN, db=env.meta)
    if not raw:
        return {}
    value = codec.loads(raw)
    return {int(n): 0 for n in value} if isinstance(value, list) else \
        {int(n): int(c) for n, c in value.items()}


def forgotten_ids(txn: Txn, env: Env) -> set[int]:
    """Node ids this store has forgotten, as of this transaction."""
    return set(forget_cuts(txn, env))


# -- conflicts ------------------------------------------------------------------------------


def _record_conflicts(
    txn: Txn, env: Env, op: codec.Op, v: Version, lost: list[AttrConflict], bound: int
) -> None:
    _, values = decode_key(op.key)
    append_conflicts(txn, env, (
        [op.table, list(values), c.attribute, list(c.winner), list(c.loser), c.value,
         None if c.winner_value is ABSENT else c.winner_value, c.local_lost]
        for c in lost), bound)


def conflicts(ctx: Context, since: int) -> Iterator[Conflict]:
    """Recorded conflicts with id above ``since`` (argument checked before the first ``next``)."""
    check_u64(since, "since (a conflict id)")
    return _conflicts(ctx, ctx.env, since)


def _conflicts(ctx: Context, env: Env, since: int) -> Iterator[Conflict]:
    def run(txn: Txn) -> list[tuple[int, bytes]]:
        cur = txn.cursor(db=env.conflicts)
        rows = []
        ok = cur.set_range(U64.pack(since + 1))
        while ok:
            rows.append((U64.unpack(cur.key())[0], bytes(cur.value())))
            ok = cur.next()
        return rows

    for cid, raw in env.read(run):
        table, values, attr, winner, loser, value, winner_value, local_lost = codec.loads(raw)
        keyd = key_dict(ctx, table, tuple(values))
        yield Conflict(cid, table, keyd, attr, tuple(winner), tuple(loser), loser[1], value,
                       winner_value, local_lost)


def conflict_count(ctx: Context) -> int:
    """How many conflicts were ever recorded (including those trimmed)."""
    env = ctx.env
    raw = env.read(lambda txn: txn.get(META_CONFLICTS, db=env.meta))
    return CONFLICTS.unpack(raw)[2] if raw else 0
