"""The change log: appends, log ranges, the change feed and the version vector.

Every transaction applied here — a local write, a table creation, a remote change — is one log
entry, written in the same LMDB transaction as the items it changed. The databases involved
(``log``, ``index``, ``vv``, ``floors``, the ``clock`` meta record) are laid out in
:mod:`engine.layout`.

The HLC at each vv position (:func:`vv_hlcs`). An origin's HLCs grow with its seqs (each write
ticks its clock), so ``vv_hlcs()[o]`` — the HLC of the change at seq ``vv[o]`` — decides exactly
whether a version ``(hlc, o)`` found in an item state was written by a change this store holds:
``hlc <= vv_hlcs()[o]``. It is read from the log entry at ``vv[o]``, or from the ``floors``
record when that entry is gone (compacted, or covered by a merged snapshot).

The clock. A local write does not rewrite the ``clock`` record — that would dirty a fourth
database page in every single-write commit (measured: about 9 % of durable single-write
throughput). Instead :func:`read_clock` derives the clock from the record *and* the log:

* every log entry above the record's position is a local write, appended in order, so the
  last of them carries the local seq and the last issued HLC (the head of its transaction);
* everything else that moves the clock or the log — remote changes (``observe``),
  :meth:`~engine.Store.tick`, snapshot merges, re-identification of a copied store,
  compaction (before it deletes entries) — writes the record in its own transaction.

Both live in the same LMDB transaction, so a crash leaves either the entry (and the clock it
carries) or neither. Format-1 stores, written before this scheme (the record rewritten on every
write), read the same way: their record's position is always the log's last
(:data:`engine.layout.FORMAT`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from . import codec
from .changes import Change, RawChange, TableDef
from .checks import check_limit, check_node_id, check_u64
from .env import Env, Txn
from .errors import LogTruncated, TableNotFound
from .keys import decode_key
from .layout import CLOCK, FLOOR, LOGHDR, META_CLOCK, U64, U64x2

if TYPE_CHECKING:
    from .context import Context

__all__ = [
    "CHUNK",
    "append",
    "changes",
    "key_dict",
    "log_floor",
    "log_range",
    "position",
    "read_clock",
    "entry_hlc",
    "floor_hlc",
    "floor_seq",
    "version_vector",
    "vv_hlcs",
    "vv_hlcs_txn",
    "vv_txn",
    "write_clock",
]

CHUNK = 256  # entries or items per read transaction when iterating: none outlives a chunk

_ONE_PUT = codec.dumps([True])  # the images of a transaction of one plain put


# -- the write side: used inside write transactions only --------------------------------------


def read_clock(txn: Txn, env: Env) -> tuple[int, int, int]:
    """``(last hlc, local seq, last position)`` as of this transaction.

    The ``clock`` record may lag behind local writes, which do not rewrite it (see the module
    docstring): entries above its position are local writes, the last of which carries the
    current local seq and HLC.
    """
    hlc, seq, pos = CLOCK.unpack(txn.get(META_CLOCK, db=env.meta))
    cur = txn.cursor(db=env.log)
    if cur.last():
        last = U64.unpack(cur.key())[0]
        if last > pos:
            value = cur.value()
            s = LOGHDR.unpack_from(value)[1]
            return max(hlc, txn_hlc(value, LOGHDR.size)), max(seq, s), last
    return hlc, seq, pos


def floor_seq(raw: Any) -> int:
    """The seq of a ``floors`` record (8 bytes in old stores, 16 with the HLC)."""
    return int(U64.unpack_from(raw)[0])


def floor_hlc(raw: Any) -> int:
    """The HLC of a ``floors`` record's seq, 0 when the record predates it."""
    return int(FLOOR.unpack(raw)[1]) if len(raw) == FLOOR.size else 0


def entry_hlc(value: Any) -> int:
    """The HLC of a log entry (the head of its transaction)."""
    return txn_hlc(value, LOGHDR.size)


def txn_hlc(value: Any, at: int = 0) -> int:
    """The HLC at the head of an encoded transaction ``[hlc, ops]`` or ``[hlc, ops,
    incarnations]`` stored from offset ``at`` of ``value`` (0 if it has no such head)."""
    if len(value) < at + 2 or value[at] not in (0x82, 0x83):
        return 0
    info = value[at + 1]
    if info < 24:  # major type 0 (unsigned), the value in the head byte itself
        return int(info)
    if info > 27:
        return 0
    n = 1 << (info - 24)  # 24..27: a 1-, 2-, 4- or 8-byte argument
    return int.from_bytes(value[at + 2:at + 2 + n], "big") if len(value) >= at + 2 + n else 0


def write_clock(txn: Txn, env: Env, hlc: int, seq: int, pos: int) -> None:
    """Persist the clock record: required before anything but a local write changes the log."""
    txn.put(META_CLOCK, CLOCK.pack(hlc, seq, pos), db=env.meta)


def append(
    txn: Txn, env: Env, origin: int, seq: int, txn_bytes: bytes, images: list[Any], pos: int,
) -> int:
    """Append one transaction to the log and its (origin, seq) index; return its position."""
    pos += 1
    pkey = U64.pack(pos)
    value = (LOGHDR.pack(origin, seq, len(txn_bytes)) + txn_bytes
             + (_ONE_PUT if images == [True] else codec.dumps(images)))
    txn.put(pkey, value, db=env.log, append=True)
    txn.put(U64x2.pack(origin, seq), pkey, db=env.index)
    return pos


# -- readers --------------------------------------------------------------------------------


def version_vector(ctx: Context) -> dict[int, int]:
    """``{origin node id: highest seq applied}``, this node included."""
    env = ctx.env
    return env.read(lambda txn: vv_txn(txn, env, ctx.node_id))


def vv_hlcs_txn(txn: Txn, env: Env, vv: dict[int, int]) -> dict[int, int]:
    """Per origin of ``vv``, the HLC of the change at seq ``vv[o]``, where it is known."""
    out: dict[int, int] = {}
    for origin, seq in vv.items():
        pkey = txn.get(U64x2.pack(origin, seq), db=env.index)
        value = txn.get(pkey, db=env.log) if pkey is not None else None
        if value is not None:
            out[origin] = entry_hlc(value)
            continue
        raw = txn.get(U64.pack(origin), db=env.floors)
        if raw is not None and floor_seq(raw) == seq and floor_hlc(raw):
            out[origin] = floor_hlc(raw)
    return out


def vv_txn(txn: Txn, env: Env, node_id: int) -> dict[int, int]:
    """The version vector as of this transaction, ``node_id`` (this store) included."""
    vv = {U64.unpack(k)[0]: U64.unpack(v)[0] for k, v in txn.cursor(db=env.vv)}
    _, seq, _ = read_clock(txn, env)
    if seq:
        vv[node_id] = seq
    return vv


def vv_hlcs(ctx: Context) -> tuple[dict[int, int], dict[int, int]]:
    """``(vv, hlcs)`` read together: ``hlcs[o]`` is the HLC of the change at ``vv[o]``
    (origins whose HLC is unknown, e.g. in a store older than floors with HLCs, are absent)."""
    env = ctx.env

    def run(txn: Txn) -> tuple[dict[int, int], dict[int, int]]:
        vv = vv_txn(txn, env, ctx.node_id)
        return vv, vv_hlcs_txn(txn, env, vv)

    return env.read(run)


def log_floor(ctx: Context) -> dict[int, int]:
    """Per origin, the seq at or below which entries may be missing from the log."""
    env = ctx.env
    return env.read(lambda txn: {
        U64.unpack(k)[0]: floor_seq(v) for k, v in txn.cursor(db=env.floors)
    })


def log_range(ctx: Context, origin: int, after: int, limit: int | None) -> list[RawChange]:
    """Log entries of ``origin`` with seq above ``after``, ascending, contiguous.

    :raises LogTruncated: if entries right after ``after`` were truncated (send a snapshot).
    """
    check_node_id(origin, "origin")
    check_u64(after, "after (a sequence number)")
    check_limit(limit)
    env = ctx.env

    def run(txn: Txn) -> list[RawChange]:
        floor_raw = txn.get(U64.pack(origin), db=env.floors)
        if floor_raw is not None and after < floor_seq(floor_raw):
            raise LogTruncated(
                f"log of node {origin:016x} is truncated up to seq "
                f"{floor_seq(floor_raw)}; seq {after + 1} onwards needs a snapshot"
            )
        cur = txn.cursor(db=env.index)
        out: list[RawChange] = []
        ok = cur.set_range(U64x2.pack(origin, after + 1))
        expect = after + 1
        while ok and (limit is None or len(out) < limit):
            o, s = U64x2.unpack(cur.key())
            if o != origin:
                break
            if s != expect:
                raise LogTruncated(f"log of node {origin:016x} has no seq {expect}")
            value = txn.get(cur.value(), db=env.log)
            n = LOGHDR.unpack_from(value)[2]
            out.append((origin, s, bytes(value[LOGHDR.size:LOGHDR.size + n])))
            expect += 1
            ok = cur.next()
        return out

    return env.read(run)


def changes(ctx: Context, since: int, limit: int | None) -> Iterator[Change]:
    """The change feed after position ``since`` (arguments checked before the first ``next``)."""
    check_u64(since, "since (a position)")
    check_limit(limit)
    return _changes(ctx, ctx.env, since, limit)


def _changes(ctx: Context, env: Env, since: int, limit: int | None) -> Iterator[Change]:
    pos = since
    produced = 0
    while True:
        def run(txn: Txn, after: int = pos) -> list[tuple[int, bytes]]:
            cur = txn.cursor(db=env.log)
            rows: list[tuple[int, bytes]] = []
            ok = cur.set_range(U64.pack(after + 1))
            while ok and len(rows) < CHUNK:
                rows.append((U64.unpack(cur.key())[0], bytes(cur.value())))
                ok = cur.next()
            return rows

        rows = env.read(run)
        for position_, value in rows:
            for change in _expand(ctx, position_, value):
                yield change
                produced += 1
                if limit is not None and produced >= limit:
                    return
            pos = position_
        if len(rows) < CHUNK:
            return


def key_dict(ctx: Context, table: str, values: tuple[Any, ...]) -> dict[str, Any]:
    """Key values by attribute name (``#0``/``#1`` for a table this store does not know)."""
    try:
        return ctx.table_def(table).key_dict(values)
    except TableNotFound:
        return TableDef(table, "", None).key_dict(values)


_DEFINITIONS = {"T": "create_table", "I": "create_index", "X": "drop_index",
                "R": "delete_table", "L": "set_ttl"}


def _expand(ctx: Context, position_: int, value: bytes) -> Iterator[Change]:
    origin, seq, n = LOGHDR.unpack_from(value)
    hlc, ops = codec.decode_txn(value[LOGHDR.size:LOGHDR.size + n], trusted=True)
    images = codec.loads(value[LOGHDR.size + n:])
    for op, image in zip(ops, images, strict=True):
        if op.kind == "V":  # bookkeeping of a relabeled change (engine.voids): no change
            continue
        if op.kind in _DEFINITIONS:
            definition = dict(op.attrs)
            if isinstance(definition.get("projection"), tuple):
                definition["projection"] = list(definition["projection"])
            if isinstance(definition.get("incarnation"), tuple):
                definition["incarnation"] = list(definition["incarnation"])
            yield Change(position_, op.table, {}, _DEFINITIONS[op.kind], (hlc, origin), origin,
                         seq, definition, None)
            continue
        table, values = decode_key(op.key)
        keyd = key_dict(ctx, table, values)
        delta: dict[str, Any]
        if op.kind == "P":
            kind, delta = "put", {"item": op.attrs}
        elif op.kind == "U":
            kind, delta = "update", {"set": op.attrs, "remove": list(op.remove)}
            ext = op.ext
            if ext.add or ext.add_elems:
                delta["add"] = {name: n for name, (n, _) in ext.add.items()}
                delta["add"].update({name: set(els) for name, els in ext.add_elems.items()})
            if ext.del_elems:
                delta["delete"] = {name: set(els) for name, els in ext.del_elems.items()}
        else:
            kind, delta = "delete", {}
        yield Change(position_, table, keyd, kind, (hlc, origin), origin, seq, delta,
                     op.attrs if image is True else image, op.ttl)


def position(ctx: Context) -> int:
    """The position of the last applied transaction (0 for an empty log)."""
    env = ctx.env
    return env.read(lambda txn: read_clock(txn, env)[2])
