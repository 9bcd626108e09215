"""Store: one node's replica in one LMDB environment — identity, the write path, the change log.

Layout (named LMDB databases, all written only inside one write transaction per change):

=========  ==========================================  =========================================
database   key                                          value
=========  ==========================================  =========================================
meta       ``ident`` / ``clock`` / ``conflicts`` / …    identity, ``(hlc, local seq, position)``
items      ``enc(table) enc(pk) [enc(sk)]``             item state (:mod:`engine.codec`)
log        position (u64 BE, local apply order)         ``origin seq len txn images``
index      origin (u64 BE) + seq (u64 BE)               position
vv         origin                                       highest seq applied (remote origins)
floors     origin                                       seqs at or below are not in the log
tables     table name                                   ``[pk, sk, hlc, node]``
conflicts  id (u64 BE)                                  conflict record
=========  ==========================================  =========================================

A local write takes two gets (clock, item) and four puts (item, log, index, clock) in one
transaction; the log entry is the exact bytes that travel to peers, so relays are free.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import os
import re
import secrets
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import codec
from .changes import ApplyReport, Change, Conflict, RawChange
from .clock import BOTTOM, DEFAULT_MAX_OFFSET_MS, Version, observe, system_wall_ms, tick
from .env import DEFAULT_MAP_SIZE, Env, Txn, acquire, release
from .errors import (
    ClockSkewError,
    ConditionFailed,
    ForgottenNodeError,
    LogTruncated,
    SchemaError,
    StoreClosed,
    TableNotFound,
    ValidationError,
)
from .item import (
    ABSENT,
    ItemState,
    delete_delta,
    max_version,
    merge,
    merge_change,
    purge,
    put_delta,
    update_delta,
    visible,
)
from .keys import decode_key, encode_value

if TYPE_CHECKING:
    from .table import Batch, Table

__all__ = ["DEFAULT_MAX_CONFLICTS", "Snapshot", "Store", "TableDef", "open"]

log = logging.getLogger(__name__)

FORMAT = b"1"
DEFAULT_MAX_CONFLICTS = 10_000
CHUNK = 256  # items per read transaction when iterating: no transaction outlives a chunk

_U64 = struct.Struct(">Q")
_U64x2 = struct.Struct(">QQ")
_CLOCK = struct.Struct(">QQQ")      # last hlc, local seq, last position
_LOGHDR = struct.Struct(">QQI")     # origin, seq, len(txn)
_REGION = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_MAX_KEY = 511  # LMDB's key size limit


@dataclass(frozen=True, slots=True)
class TableDef:
    """A table's key schema and the version that created it."""

    name: str
    partition_key: str
    sort_key: str | None
    version: Version = BOTTOM

    def key_dict(self, values: Sequence[Any]) -> dict[str, Any]:
        names = (self.partition_key, self.sort_key)
        return {names[i] or f"#{i}": v for i, v in enumerate(values)}


@dataclass(slots=True)
class Snapshot:
    """A full-state export: table definitions, item states and the vv they cover.

    ``items`` is chunked (no long read transaction) and may include changes newer than
    ``vv`` — which is safe, since merging them again later is a no-op.
    """

    vv: dict[int, int]
    tables: list[TableDef]
    forgotten: frozenset[int]
    items: Callable[[], Iterator[tuple[bytes, bytes]]]


def _decode_table(name: str, raw: bytes) -> TableDef:
    pk, sk, hlc, node = codec.loads(raw)
    return TableDef(name, pk, sk, (hlc, node))


def _check_item_size(size: int, op: Any) -> None:
    if size > codec.MAX_ITEM_BYTES:
        raise ValidationError(
            f"item {op.tdef.name} {op.key_values} would be {size} bytes stored; "
            f"the limit is {codec.MAX_ITEM_BYTES}"
        )


class Store:
    """A node's replica: open with :func:`engine.open`, use as a context manager.

    Thread-safe; several processes may open the same directory (LMDB's own locking; the
    clock and sequences live in the transaction, not in Python memory).
    """

    def __init__(
        self,
        env: Env,
        *,
        node_id: int,
        region: str,
        max_offset_ms: int,
        max_conflicts: int,
        wall_clock: Callable[[], int],
    ) -> None:
        self._env: Env | None = env
        self.path = env.path
        self.node_id = node_id
        self.region = region
        self.durable = env.durable
        self.max_offset_ms = max_offset_ms
        self.max_conflicts = max_conflicts
        self._wall = wall_clock
        self._tables: dict[str, TableDef] = {}
        self._listeners: list[Callable[[int], None]] = []
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the store; further use raises ``StoreClosed``. Closing twice is allowed."""
        with self._lock:
            env, self._env = self._env, None
        if env is not None:
            release(env)

    @property
    def closed(self) -> bool:
        return self._env is None

    def _e(self) -> Env:
        env = self._env
        if env is None:
            raise StoreClosed(f"store {self.path} is closed")
        return env

    def __repr__(self) -> str:
        state = "closed" if self._env is None else ("durable" if self.durable else "non-durable")
        return f"<Store {str(self.path)!r} region={self.region!r} node={self.node_id:016x} {state}>"

    # -- tables ------------------------------------------------------------------------

    def create_table(self, name: str, partition_key: str, sort_key: str | None = None) -> Table:
        """Create a table (a replicated change); idempotent for the same schema.

        :raises SchemaError: if the table exists with a different key schema.
        """
        from .table import Table

        codec.check_table_name(name)
        codec.check_attr_name(partition_key, f"table {name!r} partition_key")
        if sort_key is not None:
            codec.check_attr_name(sort_key, f"table {name!r} sort_key")
            if sort_key == partition_key:
                raise ValidationError(f"table {name!r}: sort key must differ from partition key")
        env = self._e()

        def run(txn: Txn) -> tuple[TableDef, int | None]:
            raw = txn.get(name.encode(), db=env.tables)
            if raw is not None:
                existing = _decode_table(name, raw)
                if (existing.partition_key, existing.sort_key) != (partition_key, sort_key):
                    raise SchemaError(
                        f"table {name!r} exists with key ({existing.partition_key!r}, "
                        f"{existing.sort_key!r}), not ({partition_key!r}, {sort_key!r})"
                    )
                return existing, None
            hlc, seq, pos = self._clock(txn)
            hlc = tick(hlc, self._wall())
            tdef = TableDef(name, partition_key, sort_key, (hlc, self.node_id))
            txn.put(name.encode(), codec.dumps([partition_key, sort_key, hlc, self.node_id]),
                    db=env.tables)
            wire = [["T", name, partition_key, sort_key]]
            pos = self._append(txn, env, self.node_id, seq + 1, codec.encode_txn(hlc, wire),
                               [None], pos)
            txn.put(b"clock", _CLOCK.pack(hlc, seq + 1, pos), db=env.meta)
            return tdef, pos

        tdef, pos = env.write(run)
        self._tables[name] = tdef
        if pos is not None:
            self._notify(pos)
        return Table(self, tdef)

    def _table_def(self, name: str) -> TableDef:
        tdef = self._tables.get(name)
        if tdef is None:
            if not isinstance(name, str):
                raise ValidationError(f"table name must be a string, not {name!r}")
            env = self._e()
            raw = env.read(lambda txn: txn.get(name.encode(), db=env.tables))
            if raw is None:
                raise TableNotFound(f"table {name!r} does not exist in {self.path}")
            tdef = self._tables[name] = _decode_table(name, raw)
        return tdef

    def table(self, name: str) -> Table:
        """The table called ``name``. :raises TableNotFound: if there is none."""
        from .table import Table

        self._e()
        return Table(self, self._table_def(name))

    def tables(self) -> list[str]:
        """Names of all tables, sorted."""
        env = self._e()

        def run(txn: Txn) -> list[str]:
            return [bytes(k).decode() for k in txn.cursor(db=env.tables).iternext(values=False)]

        return env.read(run)

    def table_defs(self) -> list[TableDef]:
        """All table definitions with their versions."""
        env = self._e()

        def run(txn: Txn) -> list[TableDef]:
            cur = txn.cursor(db=env.tables)
            return [_decode_table(bytes(k).decode(), bytes(v)) for k, v in cur]

        return env.read(run)

    def batch(self) -> Batch:
        """A batch of writes applied atomically, with one version, as one log entry."""
        from .table import Batch

        self._e()
        return Batch(self)

    # -- the local write path ----------------------------------------------------------

    def _clock(self, txn: Txn) -> tuple[int, int, int]:
        hlc, seq, pos = _CLOCK.unpack(txn.get(b"clock", db=self._e().meta))
        return hlc, seq, pos

    def _append(
        self, txn: Txn, env: Env, origin: int, seq: int, txn_bytes: bytes,
        images: list[Any], pos: int,
    ) -> int:
        """Append one transaction to the log and its (origin, seq) index; return its position."""
        pos += 1
        pkey = _U64.pack(pos)
        value = _LOGHDR.pack(origin, seq, len(txn_bytes)) + txn_bytes + codec.dumps(images)
        txn.put(pkey, value, db=env.log, append=True)
        txn.put(_U64x2.pack(origin, seq), pkey, db=env.index)
        return pos

    def _commit_local(self, ops: Sequence[Any]) -> list[dict[str, Any] | None]:
        """Apply pending item operations (from Table or Batch) as one transaction.

        Each op has ``kind`` (P/U/D), ``tdef``, ``key``, ``attrs``, ``remove``, ``condition``.
        Returns each op's new visible item.
        """
        env = self._e()
        node = self.node_id
        order = codec.canonical

        def run(txn: Txn) -> tuple[list[dict[str, Any] | None], int]:
            hlc, seq, pos = self._clock(txn)
            hlc = tick(hlc, self._wall())
            v = (hlc, node)
            wire: list[bytes] = []
            images: list[Any] = []
            results: list[dict[str, Any] | None] = []
            items_db = env.items
            for op in ops:
                raw = txn.get(op.key, db=items_db)
                state = None
                if op.kind == "P" and op.condition is None:
                    # a blind put needs only the largest version held, not the whole state
                    seen = BOTTOM if raw is None else codec.max_version_raw(raw)
                else:
                    state = codec.decode_state(raw) if raw is not None else None
                    if op.condition is not None and not op.condition(visible(state)):
                        raise ConditionFailed(
                            f"condition failed for {op.tdef.name} {op.key_values}; nothing written"
                        )
                    seen = max_version(state)
                table = op.tdef.name
                # v is above every version held (the clock observes all it applies), so a put
                # or delete replaces the state outright; only an update merges.
                if op.kind == "P" and seen < v:
                    attrs_cbor = codec.dumps(op.attrs)  # encoded once, spliced twice
                    _check_item_size(len(attrs_cbor), op)
                    txn.put(op.key, codec.put_state_bytes(v, attrs_cbor, seen), db=items_db)
                    wire.append(codec.put_op_bytes(table, op.key, attrs_cbor, seen))
                    results.append(op.attrs)
                    images.append(True)
                    continue
                if state is None and raw is not None:
                    state = codec.decode_state(raw)
                if op.kind == "P":
                    delta = put_delta(op.attrs, v, seen)
                    wire.append(codec.dumps(["P", table, op.key, op.attrs, seen[0], seen[1]]))
                elif op.kind == "U":
                    delta = update_delta(op.attrs, op.remove, v, seen)
                    wire.append(codec.dumps(
                        ["U", table, op.key, op.attrs, list(op.remove), seen[0], seen[1]]))
                else:
                    delta = delete_delta(v, seen)
                    wire.append(codec.dumps(["D", table, op.key, seen[0], seen[1]]))
                if state is None or (op.kind == "D" and seen < v):
                    new = delta
                else:
                    new = merge(state, delta, order)
                encoded = codec.encode_state(new)
                _check_item_size(len(encoded), op)
                txn.put(op.key, encoded, db=items_db)
                image = visible(new)
                results.append(image)
                images.append(True if op.kind == "P" and image == op.attrs else image)
            txn_bytes = codec.encode_txn_parts(hlc, wire)
            if len(txn_bytes) > codec.MAX_TXN_BYTES:
                raise ValidationError(
                    f"transaction of {len(txn_bytes)} bytes is over the {codec.MAX_TXN_BYTES} a "
                    "log entry may hold (it could never replicate): split the batch"
                )
            pos = self._append(txn, env, node, seq + 1, txn_bytes, images, pos)
            txn.put(b"clock", _CLOCK.pack(hlc, seq + 1, pos), db=env.meta)
            return results, pos

        results, pos = env.write(run)
        self._notify(pos)
        return results

    def _get_raw(self, key: bytes) -> bytes | None:
        env = self._e()
        return env.get(key, env.items)

    def _range(
        self, start: bytes, stop: bytes, *, reverse: bool, limit: int | None,
        start_inclusive: bool = True, stop_inclusive: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Visible items with keys in the range, in key order, a chunk per read transaction."""
        env = self._e()
        produced = 0
        lo, lo_incl, hi, hi_incl = start, start_inclusive, stop, stop_inclusive
        while True:
            want = CHUNK if limit is None else min(CHUNK, limit - produced)
            if want <= 0:
                return

            def run(txn: Txn) -> list[tuple[bytes, bytes]]:
                cur = txn.cursor(db=env.items)
                out: list[tuple[bytes, bytes]] = []
                if not reverse:
                    ok = cur.set_range(lo)
                    while ok:
                        k = cur.key()
                        if k > hi or (k == hi and not hi_incl):
                            break
                        if k != lo or lo_incl:
                            out.append((bytes(k), bytes(cur.value())))
                            if len(out) >= want * 2:
                                break
                        ok = cur.next()
                else:
                    ok = cur.set_range(hi)
                    if not ok:
                        ok = cur.last()
                    while ok:
                        k = cur.key()
                        if k < lo or (k == lo and not lo_incl):
                            break
                        if k < hi or (k == hi and hi_incl):
                            out.append((bytes(k), bytes(cur.value())))
                            if len(out) >= want * 2:
                                break
                        ok = cur.prev()
                return out

            rows = env.read(run)
            if self._env is None:
                raise StoreClosed(f"store {self.path} was closed during iteration")
            for k, raw in rows:
                item = codec.visible_from_raw(raw)
                if reverse:
                    hi, hi_incl = k, False
                else:
                    lo, lo_incl = k, False
                if item is not None:
                    yield item
                    produced += 1
                    if limit is not None and produced >= limit:
                        return
            if len(rows) < want * 2:
                return

    # -- change log, feed and version vector -------------------------------------------

    def version_vector(self) -> dict[int, int]:
        """``{origin node id: highest seq applied}``, this node included."""
        env = self._e()

        def run(txn: Txn) -> dict[int, int]:
            vv = {_U64.unpack(k)[0]: _U64.unpack(v)[0] for k, v in txn.cursor(db=env.vv)}
            _, seq, _ = self._clock(txn)
            if seq:
                vv[self.node_id] = seq
            return vv

        return env.read(run)

    def log_floor(self) -> dict[int, int]:
        """Per origin, the seq at or below which entries may be missing from the log."""
        env = self._e()
        return env.read(lambda txn: {
            _U64.unpack(k)[0]: _U64.unpack(v)[0] for k, v in txn.cursor(db=env.floors)
        })

    def log_range(self, origin: int, after: int, limit: int | None = None) -> list[RawChange]:
        """Log entries of ``origin`` with seq above ``after``, ascending, contiguous.

        :raises LogTruncated: if entries right after ``after`` were truncated (send a snapshot).
        """
        _check_node(origin, "origin")
        _check_u64_arg(after, "after", "a sequence number")
        _check_limit(limit)
        env = self._e()

        def run(txn: Txn) -> list[RawChange]:
            floor_raw = txn.get(_U64.pack(origin), db=env.floors)
            if floor_raw is not None and after < _U64.unpack(floor_raw)[0]:
                raise LogTruncated(
                    f"log of node {origin:016x} is truncated up to seq "
                    f"{_U64.unpack(floor_raw)[0]}; seq {after + 1} onwards needs a snapshot"
                )
            cur = txn.cursor(db=env.index)
            out: list[RawChange] = []
            ok = cur.set_range(_U64x2.pack(origin, after + 1))
            expect = after + 1
            while ok and (limit is None or len(out) < limit):
                o, s = _U64x2.unpack(cur.key())
                if o != origin:
                    break
                if s != expect:
                    raise LogTruncated(f"log of node {origin:016x} has no seq {expect}")
                value = txn.get(cur.value(), db=env.log)
                n = _LOGHDR.unpack_from(value)[2]
                out.append((origin, s, bytes(value[_LOGHDR.size:_LOGHDR.size + n])))
                expect += 1
                ok = cur.next()
            return out

        return env.read(run)

    def changes(self, since: int = 0, *, limit: int | None = None) -> Iterator[Change]:
        """The change feed: every applied operation after position ``since``, in apply order.

        Local writes and merged remote changes alike; snapshot merges and truncated entries
        are not in it. Resume by passing the last ``Change.position`` seen.
        """
        _check_u64_arg(since, "since", "a position")
        _check_limit(limit)
        env = self._e()
        return self._changes(env, since, limit)

    def _changes(self, env: Env, since: int, limit: int | None) -> Iterator[Change]:
        pos = since
        produced = 0
        while True:
            def run(txn: Txn) -> list[tuple[int, bytes]]:
                cur = txn.cursor(db=env.log)
                rows: list[tuple[int, bytes]] = []
                ok = cur.set_range(_U64.pack(pos + 1))
                while ok and len(rows) < CHUNK:
                    rows.append((_U64.unpack(cur.key())[0], bytes(cur.value())))
                    ok = cur.next()
                return rows

            rows = env.read(run)
            for position, value in rows:
                for change in self._expand(position, value):
                    yield change
                    produced += 1
                    if limit is not None and produced >= limit:
                        return
                pos = position
            if len(rows) < CHUNK:
                return

    def _expand(self, position: int, value: bytes) -> Iterator[Change]:
        origin, seq, n = _LOGHDR.unpack_from(value)
        hlc, ops = codec.decode_txn(value[_LOGHDR.size:_LOGHDR.size + n], trusted=True)
        images = codec.loads(value[_LOGHDR.size + n:])
        for op, image in zip(ops, images):
            if op.kind == "T":
                yield Change(position, op.table, {}, "create_table", (hlc, origin), origin, seq,
                             dict(op.attrs), None)
                continue
            table, values = decode_key(op.key)
            try:
                keyd = self._table_def(table).key_dict(values)
            except TableNotFound:
                keyd = TableDef(table, "", None).key_dict(values)
            if op.kind == "P":
                kind, delta = "put", {"item": op.attrs}
            elif op.kind == "U":
                kind, delta = "update", {"set": op.attrs, "remove": list(op.remove)}
            else:
                kind, delta = "delete", {}
            yield Change(position, table, keyd, kind, (hlc, origin), origin, seq, delta,
                         op.attrs if image is True else image)

    def position(self) -> int:
        """The position of the last applied transaction (0 for an empty log)."""
        env = self._e()
        return env.read(lambda txn: self._clock(txn)[2])

    def tick(self) -> int:
        """Issue (and persist) a fresh HLC of this node, e.g. to stamp a segment it creates."""
        env = self._e()

        def run(txn: Txn) -> int:
            hlc, seq, pos = self._clock(txn)
            hlc = tick(hlc, self._wall())
            txn.put(b"clock", _CLOCK.pack(hlc, seq, pos), db=env.meta)
            return hlc

        return env.write(run)

    def add_listener(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(position)`` after each commit made through this process's store."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[int], None]) -> None:
        """Stop calling a listener added with :meth:`add_listener`."""
        try:
            self._listeners.remove(callback)
        except ValueError:
            pass

    def _notify(self, position: int) -> None:
        for cb in list(self._listeners):
            try:
                cb(position)
            except Exception:  # a listener must never fail a committed write
                log.exception("change listener %r failed", cb)

    # -- applying remote changes -------------------------------------------------------

    def apply_changes(self, records: Iterable[RawChange]) -> ApplyReport:
        """Merge remote transactions ``(origin, seq, txn)`` atomically, in one LMDB transaction.

        Already-known entries are skipped; an origin stops at a gap in its sequence, at a
        change beyond the clock offset (``ClockSkewError`` in ``report.refused``) or if it was
        forgotten; other origins still apply. Transactions are never applied in part.

        :raises ValidationError: for a malformed record; nothing is applied.
        """
        env = self._e()
        decoded = []
        if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Iterable):
            raise ValidationError(f"records must be an iterable of (origin, seq, txn), not {records!r}")
        for i, rec in enumerate(records):
            if not (isinstance(rec, tuple) and len(rec) == 3):
                raise ValidationError(f"record {i} is not (origin, seq, txn)")
            origin, seq, raw = rec
            if (isinstance(origin, bool) or not isinstance(origin, int) or not 0 < origin < 2**64
                    or isinstance(seq, bool) or not isinstance(seq, int) or not 0 < seq < 2**64
                    or not isinstance(raw, bytes)):
                raise ValidationError(f"record {i} has a bad origin, seq or payload type")
            try:
                hlc, ops = codec.decode_txn(raw)
            except ValidationError as exc:
                raise ValidationError(f"change {origin:016x}/{seq}: {exc}") from None
            decoded.append((origin, seq, raw, hlc, ops))
        by_origin: dict[int, list[Any]] = {}
        for d in decoded:
            by_origin.setdefault(d[0], []).append(d)
        if len(by_origin) > 1:
            # Apply in HLC order across origins, each origin's records staying in their given
            # order. HLCs respect causality, so a change is merged after the changes its writer
            # had seen: conflict detection (one-sided, through ``seen``) needs that to have no
            # false positives, e.g. when a relay sends B's update of an item before A's put.
            decoded = list(heapq.merge(*by_origin.values(), key=lambda d: (d[3], d[0])))

        def run(txn: Txn) -> tuple[ApplyReport, int, bool]:
            report = ApplyReport()
            hlc_last, local_seq, pos = self._clock(txn)
            start_pos = pos
            vv: dict[int, int] = {}
            known: dict[int, int] = {}
            forgotten = self._forgotten(txn)
            wall = self._wall()
            tables_changed = False
            for origin, seq, raw, hlc, ops in decoded:
                if origin in report.refused or origin in report.gaps:
                    report.held += 1
                    continue
                if origin == self.node_id:
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
                    raw_have = txn.get(_U64.pack(origin), db=env.vv)
                    have = vv[origin] = known[origin] = _U64.unpack(raw_have)[0] if raw_have else 0
                if seq <= have:
                    report.skipped += 1
                    continue
                if seq != have + 1:
                    report.gaps[origin] = (have, seq)
                    report.held += 1
                    continue
                if origin in forgotten:
                    report.refused[origin] = ForgottenNodeError(
                        f"node {origin:016x} was forgotten; it must rejoin from a snapshot"
                    )
                    report.held += 1
                    continue
                try:
                    hlc_last = observe(hlc_last, hlc, wall, self.max_offset_ms, origin=origin)
                except ClockSkewError as exc:
                    report.refused[origin] = exc
                    report.held += 1
                    continue
                images = [self._merge_op(txn, env, op, (hlc, origin), report) for op in ops]
                tables_changed = tables_changed or any(op.kind == "T" for op in ops)
                pos = self._append(txn, env, origin, seq, raw, images, pos)
                vv[origin] = seq
                report.applied += 1
            if pos != start_pos:
                for origin, seq in vv.items():
                    if seq != known[origin]:  # origins that only had gaps or refusals: no entry
                        txn.put(_U64.pack(origin), _U64.pack(seq), db=env.vv)
                txn.put(b"clock", _CLOCK.pack(hlc_last, local_seq, pos), db=env.meta)
            return report, pos if pos != start_pos else 0, tables_changed

        report, pos, tables_changed = env.write(run)
        if tables_changed:
            self._tables.clear()
        if pos:
            self._notify(pos)
        return report

    def _merge_op(self, txn: Txn, env: Env, op: codec.Op, v: Version, report: ApplyReport) -> Any:
        if op.kind == "T":
            self._merge_table(txn, env, op, v)
            return None
        raw = txn.get(op.key, db=env.items)
        state = codec.decode_state(raw) if raw is not None else None
        if op.kind == "P":
            delta = put_delta(op.attrs, v, op.seen)
        elif op.kind == "U":
            delta = update_delta(op.attrs, op.remove, v, op.seen)
        else:
            delta = delete_delta(v, op.seen)
        new, lost = merge_change(state, delta, v, op.seen, codec.canonical)
        txn.put(op.key, codec.encode_state(new), db=env.items)
        if lost:
            # Key attributes are the item's existence marker, written by every put and update;
            # their "loss" to a delete is already told by the other attributes' conflicts.
            traw = txn.get(op.table.encode(), db=env.tables)
            if traw is not None:
                tdef = _decode_table(op.table, bytes(traw))
                lost = [c for c in lost if c.attribute not in (tdef.partition_key, tdef.sort_key)]
        if lost:
            report.conflicts += len(lost)
            self._record_conflicts(txn, env, op, v, lost)
        image = visible(new)
        return True if op.kind == "P" and image == op.attrs else image

    def _merge_table(self, txn: Txn, env: Env, op: codec.Op, v: Version) -> None:
        pk, sk = op.attrs["partition_key"], op.attrs["sort_key"]
        raw = txn.get(op.table.encode(), db=env.tables)
        if raw is not None:
            cur = _decode_table(op.table, raw)
            if (cur.partition_key, cur.sort_key) == (pk, sk) or cur.version >= v:
                if (cur.partition_key, cur.sort_key) != (pk, sk):
                    log.warning("table %r: schema (%s, %s) from %016x lost to (%s, %s)",
                                op.table, pk, sk, v[1], cur.partition_key, cur.sort_key)
                return
            log.warning("table %r: schema (%s, %s) replaced by (%s, %s) from %016x",
                        op.table, cur.partition_key, cur.sort_key, pk, sk, v[1])
        txn.put(op.table.encode(), codec.dumps([pk, sk, v[0], v[1]]), db=env.tables)

    # -- conflicts ---------------------------------------------------------------------

    def _record_conflicts(
        self, txn: Txn, env: Env, op: codec.Op, v: Version, lost: list[Any]
    ) -> None:
        raw = txn.get(b"conflicts", db=env.meta)
        first, nxt, total = struct.unpack(">QQQ", raw) if raw else (1, 1, 0)
        _, values = decode_key(op.key)
        for c in lost:
            record = [op.table, list(values), c.attribute, list(c.winner), list(c.loser),
                      c.value, None if c.winner_value is ABSENT else c.winner_value,
                      c.local_lost]
            txn.put(_U64.pack(nxt), codec.dumps(record), db=env.conflicts, append=True)
            nxt += 1
            total += 1
        while nxt - first > self.max_conflicts:
            txn.delete(_U64.pack(first), db=env.conflicts)
            first += 1
        txn.put(b"conflicts", struct.pack(">QQQ", first, nxt, total), db=env.meta)

    def conflicts(self, since: int = 0) -> Iterator[Conflict]:
        """Recorded conflicts with id above ``since``, oldest first (bounded; never replicated)."""
        _check_u64_arg(since, "since", "a conflict id")
        env = self._e()
        return self._conflicts(env, since)

    def _conflicts(self, env: Env, since: int) -> Iterator[Conflict]:
        def run(txn: Txn) -> list[tuple[int, bytes]]:
            cur = txn.cursor(db=env.conflicts)
            rows = []
            ok = cur.set_range(_U64.pack(since + 1))
            while ok:
                rows.append((_U64.unpack(cur.key())[0], bytes(cur.value())))
                ok = cur.next()
            return rows

        for cid, raw in env.read(run):
            table, values, attr, winner, loser, value, winner_value, local_lost = codec.loads(raw)
            try:
                keyd = self._table_def(table).key_dict(values)
            except TableNotFound:
                keyd = TableDef(table, "", None).key_dict(values)
            yield Conflict(cid, table, keyd, attr, tuple(winner), tuple(loser), loser[1], value,
                           winner_value, local_lost)  # type: ignore[arg-type]

    def conflict_count(self) -> int:
        """How many conflicts were ever recorded here (including those trimmed)."""
        env = self._e()
        raw = env.read(lambda txn: txn.get(b"conflicts", db=env.meta))
        return struct.unpack(">QQQ", raw)[2] if raw else 0

    # -- snapshots, retention, tombstones ----------------------------------------------

    def snapshot(self) -> Snapshot:
        """A full-state export for a peer whose needs lie below the log's retention point."""
        env = self._e()
        vv = self.version_vector()
        tables = self.table_defs()
        forgotten = frozenset(env.read(self._forgotten))

        def items() -> Iterator[tuple[bytes, bytes]]:
            after: bytes | None = None
            while True:
                def run(txn: Txn) -> list[tuple[bytes, bytes]]:
                    cur = txn.cursor(db=env.items)
                    ok = cur.first() if after is None else cur.set_range(after)
                    if ok and after is not None and cur.key() == after:
                        ok = cur.next()
                    rows = []
                    while ok and len(rows) < CHUNK * 4:
                        rows.append((bytes(cur.key()), bytes(cur.value())))
                        ok = cur.next()
                    return rows

                rows = self._e().read(run)
                yield from rows
                if len(rows) < CHUNK * 4:
                    return
                after = rows[-1][0]

        return Snapshot(vv, tables, forgotten, items)

    def merge_snapshot(
        self, vv: Mapping[int, int], tables: Iterable[TableDef],
        items: Iterable[tuple[bytes, bytes]],
    ) -> int:
        """Merge a peer's full state atomically; return how many item states were merged.

        Entries we now cover without holding them in our log raise the log floor of their
        origin, so peers needing them from us get a snapshot too.

        :raises ValidationError: for a malformed table, key or state; nothing is applied.
        """
        env = self._e()
        if not isinstance(vv, Mapping):
            raise ValidationError(f"snapshot vv must be a mapping of node id to seq, not {vv!r}")
        for o, s in vv.items():
            _check_node(o, "snapshot vv node id")
            _check_u64_arg(s, f"snapshot vv seq of {o:016x}", "a sequence number")
        if isinstance(tables, (str, bytes, Mapping)) or not isinstance(tables, Iterable):
            raise ValidationError(f"snapshot tables must be an iterable of TableDef, not {tables!r}")
        tdefs = list(tables)
        top = 0
        for t in tdefs:
            _check_table_def(t)
            top = max(top, t.version[0])
        states: list[tuple[bytes, ItemState]] = []
        if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
            raise ValidationError(f"snapshot items must be an iterable of (key, state), not {items!r}")
        for i, pair in enumerate(items):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ValidationError(f"snapshot item {i} is not a (key, state) pair")
            key, raw = pair
            if not isinstance(key, bytes) or not 0 < len(key) <= _MAX_KEY:
                raise ValidationError(f"snapshot item {i}: key is not bytes of a valid length")
            if not isinstance(raw, bytes):
                raise ValidationError(f"snapshot item {i}: state is not bytes")
            codec.check_table_name(decode_key(key)[0])
            st = codec.decode_state_untrusted(raw, f"snapshot item {key[:32]!r}")
            states.append((key, st))
            top = max(top, max_version(st)[0])
        # a snapshot is remote data too: a peer clock far ahead must not capture LWW through it
        skew = (top >> 16) - self._wall()
        if skew > self.max_offset_ms:
            raise ClockSkewError(
                f"snapshot holds versions {skew} ms ahead of the local clock (maximum offset "
                f"{self.max_offset_ms} ms); nothing merged", skew_ms=skew)
        order = codec.canonical

        def run(txn: Txn) -> None:
            hlc, seq, pos = self._clock(txn)
            for t in tdefs:
                self._merge_table(txn, env, codec.Op("T", t.name, b"", {
                    "partition_key": t.partition_key, "sort_key": t.sort_key}, (), BOTTOM),
                    t.version)
            for key, st in states:
                raw = txn.get(key, db=env.items)
                new = st if raw is None else merge(codec.decode_state(raw), st, order)
                txn.put(key, codec.encode_state(new), db=env.items)
            for origin, s in vv.items():
                if origin == self.node_id:
                    continue
                raw = txn.get(_U64.pack(origin), db=env.vv)
                have = _U64.unpack(raw)[0] if raw else 0
                if s > have:
                    txn.put(_U64.pack(origin), _U64.pack(s), db=env.vv)
                    floor_raw = txn.get(_U64.pack(origin), db=env.floors)
                    if floor_raw is None or _U64.unpack(floor_raw)[0] < s:
                        txn.put(_U64.pack(origin), _U64.pack(s), db=env.floors)
            txn.put(b"clock", _CLOCK.pack(max(hlc, top), seq, pos), db=env.meta)

        env.write(run)
        self._tables.clear()
        return len(states)

    def compact(self, stable: Mapping[int, int], *, purge_tombstones: bool = True) -> tuple[int, int]:
        """Truncate the log up to ``stable[origin]`` per origin and drop stable tombstones.

        The caller (replication) decides what is stable: acknowledged by every known peer.
        Returns ``(log entries removed, tombstones purged)``.
        """
        if not isinstance(stable, Mapping):
            raise ValidationError(f"stable must be a mapping of node id to seq, not {stable!r}")
        for origin, upto in stable.items():
            _check_node(origin, "stable node id")
            _check_u64_arg(upto, f"stable seq of {origin:016x}", "a sequence number")
        if not isinstance(purge_tombstones, bool):
            raise ValidationError(f"purge_tombstones must be a bool, not {purge_tombstones!r}")
        env = self._e()

        def run(txn: Txn) -> tuple[int, int]:
            removed = purged = 0
            for origin, upto in stable.items():
                cur = txn.cursor(db=env.index)
                ok = cur.set_range(_U64x2.pack(origin, 0))
                last = None
                while ok:
                    o, s = _U64x2.unpack(cur.key())
                    if o != origin or s > upto:
                        break
                    pkey = bytes(cur.value())
                    value = txn.get(pkey, db=env.log)
                    if purge_tombstones and value is not None:
                        purged += self._purge_txn(txn, env, origin, bytes(value))
                    txn.delete(pkey, db=env.log)
                    # delete() moves to the next entry; past the last one the cursor is
                    # unpositioned and key() is empty.
                    ok = cur.delete() and bool(cur.key())
                    removed += 1
                    last = s
                if last is not None:
                    floor_raw = txn.get(_U64.pack(origin), db=env.floors)
                    if floor_raw is None or _U64.unpack(floor_raw)[0] < last:
                        txn.put(_U64.pack(origin), _U64.pack(last), db=env.floors)
            return removed, purged

        return env.write(run)

    def _purge_txn(self, txn: Txn, env: Env, origin: int, value: bytes) -> int:
        n = _LOGHDR.unpack_from(value)[2]
        hlc, ops = codec.decode_txn(value[_LOGHDR.size:_LOGHDR.size + n], trusted=True)
        purged = 0
        for op in ops:
            if op.kind in ("P", "T") or (op.kind == "U" and not op.remove):
                continue
            raw = txn.get(op.key, db=env.items)
            if raw is None:
                continue
            state = codec.decode_state(raw)
            after = purge(state, (hlc, origin))
            if after is None:
                txn.delete(op.key, db=env.items)
                purged += 1
            elif after is not state:
                txn.put(op.key, codec.encode_state(after), db=env.items)
                purged += 1
        return purged

    def _forgotten(self, txn: Txn) -> set[int]:
        raw = txn.get(b"forgotten", db=self._e().meta)
        return set(codec.loads(raw)) if raw else set()

    def forget(self, node_id: int) -> None:
        """Remove a dead node for good: its changes are refused from now on.

        A forgotten node that comes back must rejoin as a new node from a snapshot.
        """
        if isinstance(node_id, bool) or not isinstance(node_id, int) or not 0 < node_id < 2**64:
            raise ValidationError(f"node id must be a 64-bit integer, not {node_id!r}")
        if node_id == self.node_id:
            raise ValidationError("a node cannot forget itself")
        env = self._e()

        def run(txn: Txn) -> None:
            ids = self._forgotten(txn) | {node_id}
            txn.put(b"forgotten", codec.dumps(sorted(ids)), db=env.meta)

        env.write(run)

    def forgotten(self) -> frozenset[int]:
        """Node ids this store has forgotten."""
        env = self._e()
        return frozenset(env.read(self._forgotten))

    # -- state summaries ---------------------------------------------------------------

    def digest(self) -> str:
        """SHA-256 of the visible state (tables and items); equal on converged replicas."""
        env = self._e()

        def run(txn: Txn) -> str:
            h = hashlib.sha256()
            for k, v in txn.cursor(db=env.tables):
                pk, sk, _, _ = codec.loads(v)
                h.update(codec.canonical(["T", bytes(k), pk, sk]))
            for k, v in txn.cursor(db=env.items):
                item = codec.visible_from_raw(bytes(v))
                if item is not None:
                    h.update(codec.canonical([bytes(k), item]))
            return h.hexdigest()

        return env.read(run)

    def get_meta(self, name: str) -> Any:
        """A value stored by :meth:`set_meta` (for replication's bookkeeping), or ``None``."""
        _check_meta_name(name)
        env = self._e()
        raw = env.read(lambda txn: txn.get(b"x:" + name.encode(), db=env.meta))
        return None if raw is None else codec.loads(raw)

    def set_meta(self, name: str, value: Any) -> None:
        """Store a small CBOR-encodable value under ``name`` (not replicated)."""
        _check_meta_name(name)
        env = self._e()
        data = codec.dumps_checked(value, f"meta value {name!r}")
        env.write(lambda txn: txn.put(b"x:" + name.encode(), data, db=env.meta))

    def stats(self) -> dict[str, Any]:
        """Sizes and counters, for ``regiondb status``."""
        env = self._e()

        def run(txn: Txn) -> dict[str, Any]:
            hlc, seq, pos = self._clock(txn)
            return {
                "items": txn.stat(env.items)["entries"],
                "log_entries": txn.stat(env.log)["entries"],
                "conflicts_stored": txn.stat(env.conflicts)["entries"],
                "hlc": hlc,
                "local_seq": seq,
                "position": pos,
            }

        out = env.read(run)
        info = env.lmdb.info()
        out.update({
            "node_id": self.node_id, "region": self.region, "path": str(self.path),
            "durable": self.durable, "map_size": info["map_size"],
            "file_bytes": os.path.getsize(self.path / "data.mdb"),
            "conflicts_total": self.conflict_count(),
        })
        return out


def _check_u64_arg(value: object, name: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
        raise ValidationError(f"{name} must be {what} (an int >= 0), not {value!r}")
    return value


def _check_node(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**64:
        raise ValidationError(f"{name} must be a 64-bit node id, not {value!r}")
    return value


def _check_limit(limit: object) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValidationError(f"limit must be a positive int or None, not {limit!r}")


def _check_table_def(t: object) -> None:
    if not isinstance(t, TableDef):
        raise ValidationError(f"snapshot table is not a TableDef: {t!r}")
    codec.check_table_name(t.name)
    codec.check_attr_name(t.partition_key, f"table {t.name!r} partition_key")
    if t.sort_key is not None:
        codec.check_attr_name(t.sort_key, f"table {t.name!r} sort_key")
        if t.sort_key == t.partition_key:
            raise ValidationError(f"table {t.name!r}: sort key equals partition key")
    v = t.version
    if not (isinstance(v, tuple) and len(v) == 2
            and all(not isinstance(x, bool) and isinstance(x, int) and 0 <= x < 2**64 for x in v)):
        raise ValidationError(f"table {t.name!r}: version {v!r} is not an (hlc, node) pair")


def _check_meta_name(name: object) -> None:
    if not isinstance(name, str) or not 0 < len(name.encode("utf-8", "surrogatepass")) <= 200:
        raise ValidationError(f"meta name must be a non-empty str of at most 200 bytes, not {name!r}")


def _ident_of(path: Path) -> tuple[int, int]:
    st = os.stat(path / "data.mdb")
    return st.st_dev, st.st_ino


def open(  # noqa: A001 - the contract's name, like io.open
    path: str | os.PathLike[str],
    *,
    region: str | None = None,
    durable: bool = True,
    max_clock_offset: float = DEFAULT_MAX_OFFSET_MS / 1000,
    map_size: int = DEFAULT_MAP_SIZE,
    max_conflicts: int = DEFAULT_MAX_CONFLICTS,
    wall_clock: Callable[[], int] | None = None,
    create: bool = True,
) -> Store:
    """Open the store in directory ``path``, creating it (``region`` required) if missing.

    :param durable: sync every commit (default); ``False`` may lose the last commits on
        power loss, never consistency.
    :param max_clock_offset: seconds a remote change may be ahead of our clock.
    :param map_size: initial LMDB map size in bytes; the map grows by itself when full.
    :param wall_clock: milliseconds since the epoch (tests inject :class:`ManualClock`).
    :raises ValidationError: for bad arguments, or a region that differs from the store's.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ValidationError(f"path must be a str or os.PathLike, not {type(path).__name__}")
    if region is not None and (not isinstance(region, str) or not _REGION.fullmatch(region)):
        raise ValidationError(f"region must be 1-64 characters of A-Z a-z 0-9 _ . -, not {region!r}")
    if isinstance(max_clock_offset, bool) or not isinstance(max_clock_offset, (int, float)) \
            or not 0 <= max_clock_offset <= 86_400:
        raise ValidationError(f"max_clock_offset must be seconds in [0, 86400], not {max_clock_offset!r}")
    if isinstance(map_size, bool) or not isinstance(map_size, int) or map_size < 1 << 16:
        raise ValidationError(f"map_size must be an int of at least 65536 bytes, not {map_size!r}")
    if isinstance(max_conflicts, bool) or not isinstance(max_conflicts, int) or max_conflicts < 0:
        raise ValidationError(f"max_conflicts must be an int >= 0, not {max_conflicts!r}")
    if not isinstance(durable, bool) or not isinstance(create, bool):
        raise ValidationError(f"durable and create must be bools, not {durable!r}, {create!r}")
    if wall_clock is not None and not callable(wall_clock):
        raise ValidationError(f"wall_clock must be a callable returning ms, not {wall_clock!r}")
    p = Path(path)
    if not (p / "data.mdb").exists():
        if not create:
            raise ValidationError(f"{p} is not a regiondb store (no data.mdb)")
        if region is None:
            raise ValidationError(f"{p} does not exist yet: give region= to create it")
    if p.exists() and not p.is_dir():
        raise ValidationError(f"{p} exists and is not a directory")
    p.mkdir(parents=True, exist_ok=True)
    env = acquire(p, map_size=map_size, durable=durable)
    try:
        node_id, stored_region = env.write(lambda txn: _identify(txn, env, p, region))
    except BaseException:
        release(env)
        raise
    if region is not None and region != stored_region:
        release(env)
        raise ValidationError(f"{p} belongs to region {stored_region!r}, not {region!r}")
    return Store(env, node_id=node_id, region=stored_region,
                 max_offset_ms=round(max_clock_offset * 1000), max_conflicts=max_conflicts,
                 wall_clock=wall_clock or system_wall_ms)


def _identify(txn: Txn, env: Env, path: Path, region: str | None) -> tuple[int, str]:
    """Create the identity of a new store, or re-identify a copied one."""
    dev, ino = _ident_of(path)
    raw = txn.get(b"ident", db=env.meta)
    if raw is None:
        node_id = secrets.randbits(64) or 1
        assert region is not None
        txn.put(b"format", FORMAT, db=env.meta)
        txn.put(b"ident", codec.dumps([node_id, region, dev, ino]), db=env.meta)
        txn.put(b"clock", _CLOCK.pack(0, 0, 0), db=env.meta)
        log.info("created store %s: region %s, node %016x", path, region, node_id)
        return node_id, region
    fmt = txn.get(b"format", db=env.meta)
    if fmt != FORMAT:
        raise ValidationError(f"{path}: store format {fmt!r} is not supported (this build reads 1)")
    node_id, stored_region, s_dev, s_ino = codec.loads(raw)
    if (s_dev, s_ino) != (dev, ino):
        # A copied (or restored) directory must not act as the node it was copied from:
        # it keeps the data and the old node's log, under a fresh identity.
        old = node_id
        node_id = secrets.randbits(64) or 1
        hlc, seq, pos = _CLOCK.unpack(txn.get(b"clock", db=env.meta))
        if seq:
            txn.put(_U64.pack(old), _U64.pack(seq), db=env.vv)
        txn.put(b"clock", _CLOCK.pack(hlc, 0, pos), db=env.meta)
        txn.put(b"ident", codec.dumps([node_id, stored_region, dev, ino]), db=env.meta)
        log.warning("store %s was copied from node %016x: it is now node %016x", path, old, node_id)
    return node_id, stored_region
