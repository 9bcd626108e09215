"""Retention: full-state snapshots, log truncation, tombstone purge and forgetting dead nodes.

The log cannot grow for ever. Replication decides what is *stable* (acknowledged by every known
peer) and calls :func:`compact`, which deletes those entries from ``log`` and ``index``, raises
the origin's ``floors`` entry (``log_range`` below it raises ``LogTruncated``) and purges the
tombstones those entries wrote (:func:`engine.item.purge`). A peer that needs entries below a
floor gets a :func:`snapshot` instead — every item state, with versions and tombstones, and
the vv it covers — which :func:`merge_snapshot` merges with the same CRDT merge.

Authoritative snapshots. A snapshot says, per origin, up to which HLC it reflects that origin's
changes (``covers``: the HLC of the change at each of its vv positions; an origin's HLCs grow
with its seqs). A version ``(hlc, origin)`` is *covered* when ``hlc <= covers[origin]``: its
sender had applied the change that wrote it. Within the key span a snapshot (part) lists
completely, every covered entry of an item we hold is already reflected in the sender's state
of that item — or was overwritten by a delete whose tombstone the sender has since purged. So
:func:`merge_snapshot` drops our covered entries before merging the sender's state, and an item
absent from the snapshot loses its covered entries (all of them: it goes). What only we had
seen stays.

Tombstones that arrive through a snapshot have no log entry here, so :func:`compact` cannot
find them through the log. :func:`merge_snapshot` lists every item it leaves holding a
tombstone (meta keys ``p:`` + item key), and :func:`compact` purges those by version: an
entry ``(hlc, origin)`` is stable when ``hlc`` is at most the HLC of the change at
``stable[origin]``.

A forgotten node (the ``forgotten`` meta record, :mod:`engine.layout`) is refused by
``apply_changes`` from then on: it must rejoin from a snapshot as a new node, so its deleted
items can never come back as zombies.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from . import codec, index, voids
from .apply import forget_cuts, forgotten_ids, merge_table, merge_ttl
from .changelog import (
    CHUNK,
    entry_hlc,
    floor_hlc,
    floor_seq,
    read_clock,
    vv_hlcs,
    vv_hlcs_txn,
    vv_txn,
    write_clock,
)
from .changes import Snapshot, TableDef
from .checks import check_node_id, check_u64, check_vv, is_u64
from .clock import BOTTOM, physical_ms
from .env import Env, Txn
from .errors import ClockSkewError, ValidationError
from .item import ABSENT, ItemState, max_version, merge, purge, visible
from .keys import decode_key
from .layout import FLOOR, LOGHDR, META_FORGOTTEN, META_PENDING_PREFIX, U64, U64x2

if TYPE_CHECKING:
    from .context import Context

__all__ = ["compact", "forget", "forget_cuts_of", "forgotten", "merge_snapshot", "snapshot",
           "strip_covered"]

_MAX_KEY = codec.MAX_KEY_BYTES
_PENDING = META_PENDING_PREFIX  # + item key: holds tombstones that came through a snapshot


def snapshot(ctx: Context) -> Snapshot:
    """See :meth:`engine.Store.snapshot`."""
    env = ctx.env
    vv, covers = vv_hlcs(ctx)
    tables = ctx.table_defs()
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

            rows = ctx.env.read(run)
            yield from rows
            if len(rows) < CHUNK * 4:
                return
            after = rows[-1][0]

    return Snapshot(vv, tables, forgotten_, items, index.all_defs(ctx), covers)


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


Covers = Mapping[int, int]
Span = tuple["bytes | None", "bytes | None"]


def _covered(version: tuple[int, int], covers: Covers) -> bool:
    """True if the change that wrote ``version`` is among those ``covers`` reflects."""
    return version != BOTTOM and version[0] <= covers.get(version[1], 0)


def strip_covered(state: ItemState, covers: Covers,
                  other: ItemState | None = None) -> ItemState | None:
    """``state`` without the entries ``covers`` covers, unless ``other`` holds the very same
    entry (``None`` when nothing is left). With ``other`` the other replica's state of the
    item, whose sender had seen ``covers``: what it lacks of those, it overwrote or deleted."""
    def drop(name: str | None, version: tuple[int, int]) -> bool:
        if not _covered(version, covers):
            return False
        if other is None:
            return True
        if name is None:
            return other.cleared != version
        theirs = other.attrs.get(name)
        return theirs is None or theirs[0] != version

    # Counter and set attributes keep everything: their parts are never purged anywhere, so
    # the other side still holds whatever it had of them and the merge does the rest.
    extra = state.extra
    attrs = {n: e for n, e in state.attrs.items() if n in extra or not drop(n, e[0])}
    cleared = BOTTOM if drop(None, state.cleared) else state.cleared
    if not attrs and not extra and cleared == BOTTOM:
        return None
    if len(attrs) == len(state.attrs) and cleared == state.cleared:
        return state
    return ItemState(cleared, attrs, state.seen, extra)


def _has_tombstone(state: ItemState) -> bool:
    return not any(e[1] is not ABSENT for e in state.attrs.values()) \
        or any(e[1] is ABSENT for e in state.attrs.values())


def _check_snapshot_args(covers: object, span: object) -> tuple[Covers, Span | None]:
    if covers is None:
        covers = {}
    if not isinstance(covers, Mapping):
        raise ValidationError(
            f"snapshot covers must be a mapping of node id to hlc, not {covers!r}")
    for o, h in covers.items():
        check_node_id(o, "snapshot covers node id")
        check_u64(h, f"snapshot covers hlc of {o!r}")
    if span is not None and not (isinstance(span, tuple) and len(span) == 2 and all(
            b is None or (isinstance(b, bytes) and 0 < len(b) <= _MAX_KEY) for b in span)):
        raise ValidationError(f"snapshot span must be a (low, high) pair of keys or None, "
                              f"not {span!r:.80}")
    return covers, span


def _decode_snapshot(tables: object, items: object) -> tuple[list[TableDef],
                                                            list[tuple[bytes, ItemState]], int]:
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
    return tdefs, states, top


def _absent_in_span(txn: Txn, env: Env, span: Span, present: set[bytes]) -> list[bytes]:
    """Keys we hold within ``span`` (inclusive bounds, ``None`` open) that the snapshot lacks."""
    low, high = span
    cur = txn.cursor(db=env.items)
    ok = cur.first() if low is None else cur.set_range(low)
    out: list[bytes] = []
    while ok:
        key = bytes(cur.key())
        if high is not None and key > high:
            break
        if key not in present:
            out.append(key)
        ok = cur.next()
    return out


def merge_snapshot(
    ctx: Context, vv: Mapping[int, int], tables: Iterable[TableDef],
    items: Iterable[tuple[bytes, bytes]], indexes: Iterable[index.IndexDef] = (),
    covers: Covers | None = None, span: Span | None = None,
) -> int:
    """See :meth:`engine.Store.merge_snapshot`."""
    env = ctx.env
    snap_vv = check_vv(vv, "snapshot vv")
    ixdefs_in = index.check_snapshot_defs(indexes)
    snap_covers, span = _check_snapshot_args(covers, span)
    tdefs, snap_states, top = _decode_snapshot(tables, items)
    top = max(top, max((d.version[0] for d in ixdefs_in), default=0))
    # our clock passes every change the snapshot covers (not only the versions it still
    # holds): a later local write then beats every delete it covers, purged or not
    top = max(top, *snap_covers.values()) if snap_covers else top
    # a snapshot is remote data too: a peer clock far ahead must not capture LWW through it
    skew = physical_ms(top) - ctx.wall()
    if skew > ctx.max_offset_ms:
        raise ClockSkewError(
            f"snapshot holds versions {skew} ms ahead of the local clock (maximum offset "
            f"{ctx.max_offset_ms} ms); nothing merged", skew_ms=skew)
    order = codec.canonical

    ixdefs: dict[str, tuple[index.IndexDef, ...]] = {}

    def put(txn: Txn, key: bytes, old: ItemState | None, new: ItemState | None) -> None:
        if new is None:
            txn.delete(key, db=env.items)
            txn.delete(_PENDING + key, db=env.meta)
        else:
            txn.put(key, codec.encode_state(new), db=env.items)
            if _has_tombstone(new):
                txn.put(_PENDING + key, b"", db=env.meta)
        table = decode_key(key)[0]
        ix = ixdefs.get(table)
        if ix is None:
            ix = ixdefs[table] = index.active_defs(txn, env, table)
        if ix:
            index.maintain(txn, env, ix, key, visible(old), visible(new))

    def run(txn: Txn) -> bool:
        hlc, seq, pos = read_clock(txn, env)
        vv, covers, states = dict(snap_vv), dict(snap_covers), list(snap_states)
        known_voids = voids.load(txn, env)
        if known_voids:
            voids.clip_snapshot(known_voids, vv, covers, states)
        # a sender whose entry at its vv position is not ours holds another history of that
        # origin (a restored node's fork): its snapshot is no authority on what we hold of it
        ours_at = vv_hlcs_txn(txn, env, {o: vv.get(o, 0) for o in covers})
        for o, h in ours_at.items():
            if covers.get(o) != h and o != ctx.node_id:
                del covers[o]
        # What we have seen ourselves: the snapshot's entries we lack among those, we
        # overwrote or deleted (an old copy's snapshot must not bring them back).
        mine = vv_hlcs_txn(txn, env, vv_txn(txn, env, ctx.node_id))
        for t in tdefs:
            merge_table(txn, env, codec.Op("T", t.name, b"", {
                "partition_key": t.partition_key, "sort_key": t.sort_key}, (), BOTTOM),
                t.version, ctx.max_conflicts)
            if t.ttl_version != BOTTOM:
                merge_ttl(txn, env, t.name, t.ttl_attribute, t.ttl_version)
        # index definitions before items, so that the items merged here are maintained
        builds = False
        for d in ixdefs_in:
            builds |= index.merge_def(txn, env, d.table, None if d.dropped else d.index,
                                      d.index.name, d.version, dropped=d.dropped)
        if covers and span is not None:
            for key in _absent_in_span(txn, env, span, {k for k, _ in states}):
                lone = codec.decode_state(txn.get(key, db=env.items))
                kept = strip_covered(lone, covers)
                if kept is not lone:
                    put(txn, key, lone, kept)
        for key, theirs in states:
            raw = txn.get(key, db=env.items)
            held = None if raw is None else codec.decode_state(raw)
            ours = None if held is None else strip_covered(held, covers, theirs)
            new = strip_covered(theirs, mine, held)
            if ours is not None and new is not None:
                new = merge(ours, new, order)
            if held is not None or new is not None:
                put(txn, key, held, new if new is not None else ours)
        for origin, s in vv.items():
            if origin == ctx.node_id:
                continue
            raw = txn.get(U64.pack(origin), db=env.vv)
            have = U64.unpack(raw)[0] if raw else 0
            if s > have:
                txn.put(U64.pack(origin), U64.pack(s), db=env.vv)
                _raise_floor(txn, env, origin, s, covers.get(origin, 0))
        write_clock(txn, env, max(hlc, top), seq, pos)
        return builds

    builds = env.write(run)
    ctx.uncache_tables()
    if builds:  # an index definition arrived: fill (or clear) it here
        index.build_pending(ctx)
    return len(snap_states)


def compact(ctx: Context, stable: Mapping[int, int], purge_tombstones: bool) -> tuple[int, int]:
    """See :meth:`engine.Store.compact`."""
    stable = check_vv(stable, "stable")
    if not isinstance(purge_tombstones, bool):
        raise ValidationError(f"purge_tombstones must be a bool, not {purge_tombstones!r}")
    env = ctx.env

    def run(txn: Txn) -> tuple[int, int]:
        removed = purged = 0
        # the log's last entry may be what carries the clock (read_clock): record it first
        write_clock(txn, env, *read_clock(txn, env))
        for origin, upto in stable.items():
            cur = txn.cursor(db=env.index)
            ok = cur.set_range(U64x2.pack(origin, 0))
            last = last_hlc = None
            while ok:
                o, s = U64x2.unpack(cur.key())
                if o != origin or s > upto:
                    break
                pkey = bytes(cur.value())
                value = txn.get(pkey, db=env.log)
                if value is not None:
                    last_hlc = entry_hlc(value)
                    if purge_tombstones:
                        purged += _purge_txn(txn, env, origin, bytes(value))
                txn.delete(pkey, db=env.log)
                # delete() moves to the next entry; past the last one the cursor is
                # unpositioned and key() is empty.
                ok = cur.delete() and bool(cur.key())
                removed += 1
                last = s
            if last is not None:
                _raise_floor(txn, env, origin, last, last_hlc or 0)
        if purge_tombstones:
            purged += _purge_pending(txn, env, _stable_hlcs(txn, env, stable))
        return removed, purged

    return env.write(run)


def _stable_hlcs(txn: Txn, env: Env, stable: Mapping[int, int]) -> dict[int, int]:
    """Per origin, the HLC of the change at ``stable[origin]``, where the floor records it."""
    out: dict[int, int] = {}
    for origin, upto in stable.items():
        raw = txn.get(U64.pack(origin), db=env.floors)
        if raw is not None and floor_seq(raw) == upto and floor_hlc(raw):
            out[origin] = floor_hlc(raw)
    return out


def _purge_pending(txn: Txn, env: Env, stable_hlcs: Covers) -> int:
    """Purge, by version, the stable tombstones of items a snapshot merge left holding some."""
    if not stable_hlcs:
        return 0
    cur = txn.cursor(db=env.meta)
    keys: list[bytes] = []
    ok = cur.set_range(_PENDING)
    while ok and bytes(cur.key()).startswith(_PENDING):
        keys.append(bytes(cur.key())[len(_PENDING):])
        ok = cur.next()
    purged = 0
    for key in keys:
        raw = txn.get(key, db=env.items)
        state = None if raw is None else codec.decode_state(raw)
        after = None if state is None else _purge_stable(state, stable_hlcs)
        if state is not None and after is not state:
            purged += 1
            if after is None:
                txn.delete(key, db=env.items)
            else:
                txn.put(key, codec.encode_state(after), db=env.items)
        if after is None or not _has_tombstone(after):
            txn.delete(_PENDING + key, db=env.meta)
    return purged


def _purge_stable(state: ItemState, stable_hlcs: Covers) -> ItemState | None:
    """``state`` without its stable tombstones; ``None`` if only stable tombstones were left."""
    extra = state.extra  # counter and set parts are never purged (engine.item.purge)
    attrs = {n: e for n, e in state.attrs.items()
             if not (e[1] is ABSENT and _covered(e[0], stable_hlcs) and n not in extra)}
    if not attrs and not extra and (state.cleared == BOTTOM
                                    or _covered(state.cleared, stable_hlcs)):
        return None
    if len(attrs) == len(state.attrs):
        return state
    return ItemState(state.cleared, attrs, state.seen, extra)


def _raise_floor(txn: Txn, env: Env, origin: int, seq: int, hlc: int) -> None:
    """Record that ``origin``'s entries up to ``seq`` are not (all) in the log, and the HLC of
    the change at ``seq`` (0: unknown); never lowers."""
    key = U64.pack(origin)
    raw = txn.get(key, db=env.floors)
    if raw is None or floor_seq(raw) < seq or (floor_seq(raw) == seq and not floor_hlc(raw)):
        txn.put(key, FLOOR.pack(seq, hlc), db=env.floors)


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


def forget(ctx: Context, node_id: int, cut: int | None = None) -> int:
    """See :meth:`engine.Store.forget`."""
    check_node_id(node_id, "node_id")
    if cut is not None:
        check_u64(cut, "cut")
    if node_id == ctx.node_id:
        raise ValidationError("a node cannot forget itself")
    env = ctx.env

    def run(txn: Txn) -> int:
        cuts = forget_cuts(txn, env)
        raw = txn.get(U64.pack(node_id), db=env.vv)
        held = U64.unpack(raw)[0] if raw else 0
        # the largest cut anyone named wins: what any member holds of it, every member takes
        new = max(cuts.get(node_id, 0), held, cut or 0)
        if cuts.get(node_id) != new:
            cuts[node_id] = new
            txn.put(META_FORGOTTEN, codec.dumps(dict(sorted(cuts.items()))), db=env.meta)
        return new

    return env.write(run)


def forget_cuts_of(ctx: Context) -> dict[int, int]:
    """Forgotten node id -> the last seq of it this store accepts."""
    env = ctx.env
    return env.read(lambda txn: forget_cuts(txn, env))


def forgotten(ctx: Context) -> frozenset[int]:
    """Node ids this store has forgotten."""
    env = ctx.env
    return frozenset(env.read(lambda txn: forgotten_ids(txn, env)))
