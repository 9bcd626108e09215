"""Retention: full-state snapshots, log truncation, tombstone purge and forgetting dead nodes.

The log cannot grow for ever. Replication decides what is *stable* (acknowledged by every known
peer) and calls :func:`compact`, which deletes those entries from ``log`` and ``index``, raises
the origin's ``floors`` entry (``log_range`` below it raises ``LogTruncated``) and purges the
tombstones those entries wrote (:func:`engine.item.purge`). A peer that needs entries below a
floor gets a :func:`snapshot` instead — every item state, with versions and tombstones, and
the vv it covers — which :func:`merge_snapshot` merges with the same CRDT merge.

A forgotten node (the ``forgotten`` meta record, :mod:`engine.layout`) is refused by
``apply_changes`` from then on: it must rejoin from a snapshot as a new node, so its deleted
items can never come back as zombies.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from . import codec, index
from .apply import forgotten_ids, merge_table, merge_ttl
from .changelog import CHUNK, read_clock, write_clock
from .changes import Snapshot, TableDef
from .checks import check_node_id, check_vv, is_u64
from .clock import BOTTOM, physical_ms
from .env import Env, Txn
from .errors import ClockSkewError, ValidationError
from .item import ItemState, max_version, merge, purge, visible
from .keys import decode_key
from .layout import LOGHDR, META_FORGOTTEN, U64, U64x2

if TYPE_CHECKING:
    from .store import Store

__all__ = ["compact", "forget", "forgotten", "merge_snapshot", "snapshot"]

_MAX_KEY = codec.MAX_KEY_BYTES


def snapshot(store: Store) -> Snapshot:
    """See :meth:`engine.Store.snapshot`."""
    env = store._e()
    vv = store.version_vector()
    tables = store.table_defs()
    forgotten_ = frozenset(env.read(lambda txn: forgotten_ids(txn, env)))

    def items() -> Iterator[tuple[bytes, bytes]]:
        after: bytes | None = None
        while True:
            def run(txn: Txn, after: bytes | None = after) -> list[tuple[bytes, bytes]]:
                cur = txn.cursor(db=env.items)
                ok = cur.first() if after is None else cur.set_range(after)
                if ok and after is not None and cur.key() == after:
                    ok = cur.next()
                rows: list[tuple[bytes, bytes]] = []
                while ok and len(rows) < CHUNK * 4:
                    rows.append((bytes(cur.key()), bytes(cur.value())))
                    ok = cur.next()
                return rows

            rows = store._e().read(run)
            yield from rows
            if len(rows) < CHUNK * 4:
                return
            after = rows[-1][0]

    return Snapshot(vv, tables, forgotten_, items, index.all_defs(store))


def _check_table_def(t: object) -> None:
    if not isinstance(t, TableDef):
        raise ValidationError(f"snapshot table is not a TableDef: {t!r}")
    codec.check_key_schema(t.name, t.partition_key, t.sort_key)
    v = t.version
    if not (isinstance(v, tuple) and len(v) == 2
            and all(is_u64(x) for x in v)):
        raise ValidationError(f"table {t.name!r}: version {v!r} is not an (hlc, node) pair")
    tv = t.ttl_version
    if not (isinstance(tv, tuple) and len(tv) == 2 and all(is_u64(x) for x in tv)):
        raise ValidationError(f"table {t.name!r}: TTL version {tv!r} is not an (hlc, node) pair")
    if t.ttl_attribute is not None:
        codec.check_attr_name(t.ttl_attribute, f"table {t.name!r} TTL attribute")


def merge_snapshot(
    store: Store, vv: Mapping[int, int], tables: Iterable[TableDef],
    items: Iterable[tuple[bytes, bytes]], indexes: Iterable[index.IndexDef] = (),
) -> int:
    """See :meth:`engine.Store.merge_snapshot`."""
    env = store._e()
    vv = check_vv(vv, "snapshot vv")
    ixdefs_in = index.check_snapshot_defs(indexes)
    if isinstance(tables, (str, bytes, Mapping)) or not isinstance(tables, Iterable):
        raise ValidationError(f"snapshot tables must be an iterable of TableDef, not {tables!r}")
    tdefs = list(tables)
    top = max((d.version[0] for d in ixdefs_in), default=0)
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
    skew = physical_ms(top) - store._wall()
    if skew > store.max_offset_ms:
        raise ClockSkewError(
            f"snapshot holds versions {skew} ms ahead of the local clock (maximum offset "
            f"{store.max_offset_ms} ms); nothing merged", skew_ms=skew)
    order = codec.canonical

    def run(txn: Txn) -> bool:
        hlc, seq, pos = read_clock(txn, env)
        for t in tdefs:
            merge_table(txn, env, codec.Op("T", t.name, b"", {
                "partition_key": t.partition_key, "sort_key": t.sort_key}, (), BOTTOM),
                t.version, store.max_conflicts)
            if t.ttl_version != BOTTOM:
                merge_ttl(txn, env, t.name, t.ttl_attribute, t.ttl_version)
        # index definitions before items, so that the items merged here are maintained
        builds = False
        for d in ixdefs_in:
            builds |= index.merge_def(txn, env, d.table, None if d.dropped else d.index,
                                      d.index.name, d.version, dropped=d.dropped)
        ixdefs: dict[str, tuple[index.IndexDef, ...]] = {}
        for key, st in states:
            raw = txn.get(key, db=env.items)
            old = None if raw is None else codec.decode_state(raw)
            new = st if old is None else merge(old, st, order)
            txn.put(key, codec.encode_state(new), db=env.items)
            table = decode_key(key)[0]
            ix = ixdefs.get(table)
            if ix is None:
                ix = ixdefs[table] = index.active_defs(txn, env, table)
            if ix:
                index.maintain(txn, env, ix, key, visible(old), visible(new))
        for origin, s in vv.items():
            if origin == store.node_id:
                continue
            raw = txn.get(U64.pack(origin), db=env.vv)
            have = U64.unpack(raw)[0] if raw else 0
            if s > have:
                txn.put(U64.pack(origin), U64.pack(s), db=env.vv)
                _raise_floor(txn, env, origin, s)
        write_clock(txn, env, max(hlc, top), seq, pos)
        return builds

    builds = env.write(run)
    store._tables.clear()
    if builds:  # an index definition arrived: fill (or clear) it here
        index.build_pending(store)
    return len(states)


def compact(store: Store, stable: Mapping[int, int], purge_tombstones: bool) -> tuple[int, int]:
    """See :meth:`engine.Store.compact`."""
    stable = check_vv(stable, "stable")
    if not isinstance(purge_tombstones, bool):
        raise ValidationError(f"purge_tombstones must be a bool, not {purge_tombstones!r}")
    env = store._e()

    def run(txn: Txn) -> tuple[int, int]:
        removed = purged = 0
        # the log's last entry may be what carries the clock (read_clock): record it first
        write_clock(txn, env, *read_clock(txn, env))
        for origin, upto in stable.items():
            cur = txn.cursor(db=env.index)
            ok = cur.set_range(U64x2.pack(origin, 0))
            last = None
            while ok:
                o, s = U64x2.unpack(cur.key())
                if o != origin or s > upto:
                    break
                pkey = bytes(cur.value())
                value = txn.get(pkey, db=env.log)
                if purge_tombstones and value is not None:
                    purged += _purge_txn(txn, env, origin, bytes(value))
                txn.delete(pkey, db=env.log)
                # delete() moves to the next entry; past the last one the cursor is
                # unpositioned and key() is empty.
                ok = cur.delete() and bool(cur.key())
                removed += 1
                last = s
            if last is not None:
                _raise_floor(txn, env, origin, last)
        return removed, purged

    return env.write(run)


def _raise_floor(txn: Txn, env: Env, origin: int, seq: int) -> None:
    """Record that ``origin``'s entries up to ``seq`` are not (all) in the log; never lowers."""
    key = U64.pack(origin)
    raw = txn.get(key, db=env.floors)
    if raw is None or U64.unpack(raw)[0] < seq:
        txn.put(key, U64.pack(seq), db=env.floors)


def _purge_txn(txn: Txn, env: Env, origin: int, value: bytes) -> int:
    """Purge the tombstones one (now stable) log entry wrote; return how many items changed."""
    n = LOGHDR.unpack_from(value)[2]
    hlc, ops = codec.decode_txn(value[LOGHDR.size:LOGHDR.size + n], trusted=True)
    purged = 0
    for op in ops:
        if op.kind not in ("U", "D") or (op.kind == "U" and not op.remove and not op.ext):
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


def forget(store: Store, node_id: int) -> None:
    """See :meth:`engine.Store.forget`."""
    check_node_id(node_id, "node_id")
    if node_id == store.node_id:
        raise ValidationError("a node cannot forget itself")
    env = store._e()

    def run(txn: Txn) -> None:
        ids = forgotten_ids(txn, env) | {node_id}
        txn.put(META_FORGOTTEN, codec.dumps(sorted(ids)), db=env.meta)

    env.write(run)


def forgotten(store: Store) -> frozenset[int]:
    """Node ids this store has forgotten."""
    env = store._e()
    return frozenset(env.read(lambda txn: forgotten_ids(txn, env)))
