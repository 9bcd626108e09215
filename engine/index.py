"""Secondary indexes: maintenance in the write transaction, backfill, the local API.

(The ``Index`` value, definition records and entry keys live in :mod:`engine.indexdefs`; this
module re-exports them and is the one entry point for the rest of the engine.)

An index is a second ordering of a table's items, by other attributes (DynamoDB's GSIs and
LSIs; regiondb needs no difference between them). It is *derived* state: each replica computes
its own entries from its own merged items, in the same LMDB write transaction as every change
of a visible item — local writes and batches, remote merges, snapshot merges, TTL deletes — so
an index read never disagrees with the table. Entries never travel; definitions replicate like
table definitions (log ops ``I``/``X``, :mod:`engine.codec`).

Layout (two named LMDB databases):

=========  =============================================  ======================================
database   key                                            value
=========  =============================================  ======================================
idxdefs    table name (UTF-8)                             CBOR list of definition records
idx        ``enc(table) enc(index) enc(ipk) [enc(isk)]``   ``ALL``: the item key; otherwise the
           ``+ item key without enc(table)``              CBOR map of the projected attributes
=========  =============================================  ======================================

A definition record is ``[name, pk, sk, projection, hlc, node, dropped, table pk, table sk,
phase, resume]``. ``(hlc, node)`` is the version of the create or drop that made it: the larger
version wins, like a table definition. ``phase`` is local state, never replicated:

* ``ready``: entries are complete (or, when ``dropped``, gone);
* ``fill``: being backfilled; items up to ``resume`` (a key of ``items``) have their entries,
  later ones have them if they were written since the fill began;
* ``clear``: old entries (of a dropped or redefined index) are being deleted; a redefined index
  then fills.

Maintenance covers every definition in ``fill`` or ``ready`` (not dropped), so an interrupted
fill resumes from ``resume`` and is idempotent: re-putting an entry is a no-op. Backfill and
clearing run in chunks of :data:`BUILD_CHUNK` items, one write transaction each, never one
giant transaction; a store resumes unfinished ones when opened, and when a definition arrives
by sync the receiving call (``apply_changes``, ``merge_snapshot``) backfills before returning.

Sparse: an item lacking an index key attribute, or holding a value there that is not a key type
(str, number, bytes), is not in that index. A *local* write that sets an index key attribute
to a non-key type is refused (``ValidationError``, nothing written); a merged one is just not
indexed (logged at debug level).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from . import codec
from .changelog import append, read_clock
from .clock import Version, tick_local
from .env import Env, Txn
from .errors import ValidationError
from .indexdefs import (
    Index,
    IndexDef,
    Projection,
    active_defs,
    entry_of,
    load_defs,
    make_def,
    merge_def,
    parse_defs,
    project,
    replace_def,
    same_spec,
    table_prefix,
    tombstone_index,
)

if TYPE_CHECKING:
    from .changes import TableDef
    from .context import Context

__all__ = [  # the definitions' names are re-exported: engine.index is the one entry point
    "BUILD_CHUNK",
    "Index",
    "IndexDef",
    "Projection",
    "active_defs",
    "build",
    "build_pending",
    "create",
    "drop",
    "drop_table_entries",
    "entry_of",
    "load_defs",
    "maintain",
    "maintain_table",
    "merge_def",
    "project",
    "queryable",
    "table_prefix",
]

log = logging.getLogger(__name__)

BUILD_CHUNK = 2000  # items (or entries) per backfill transaction


def maintain(txn: Txn, env: Env, defs: tuple[IndexDef, ...], key: bytes,
             old: Mapping[str, Any] | None, new: Mapping[str, Any] | None,
             written: Mapping[str, Any] | None = None) -> None:
    """Move item ``key``'s entries from its old visible item to its new one, in ``txn``.

    Called by every path that changes a visible item, with ``defs`` from
    :func:`active_defs`: one delete and one put per index at most, never a scan. ``written``
    (local writes only): the attributes the write set, checked strictly (see
    :func:`entry_of`); raising aborts the caller's transaction, so nothing is written.
    """
    idx = env.idx
    for d in defs:
        after = entry_of(d, key, new, written)
        before = entry_of(d, key, old) if old is not None else None
        if before == after:
            continue
        if before is not None and (after is None or before[0] != after[0]):
            txn.delete(before[0], db=idx)
        if after is not None:
            txn.put(after[0], after[1], db=idx)


def maintain_table(txn: Txn, env: Env, table: str, key: bytes,
                   old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> None:
    """:func:`maintain` for a merged (non-local) change, looking the definitions up itself.

    The hook for paths that change a visible item outside :mod:`engine.writepath` and
    ``apply_changes`` (TTL deletes, snapshot merges, table deletion).
    """
    defs = active_defs(txn, env, table)
    if defs:
        maintain(txn, env, defs, key, old, new)


def drop_table_entries(txn: Txn, env: Env, table: str, limit: int | None = None) -> bool:
    """Delete the definitions and entries of every index of ``table`` (table deletion).

    With ``limit``, deletes at most that many entries and returns ``False`` if some remain
    (call again in a new transaction); the definitions go with the last call.
    """
    prefix = table_prefix(table)
    cur = txn.cursor(db=env.idx)
    n = 0
    ok = cur.set_range(prefix)
    while ok and bytes(cur.key()).startswith(prefix):
        if limit is not None and n >= limit:
            return False
        ok = cur.delete() and bool(cur.key())
        n += 1
    txn.delete(table.encode(), db=env.idxdefs)
    return True


# -- backfill and clearing -------------------------------------------------------------------


def _step(txn: Txn, env: Env, table: str, name: str, chunk: int) -> tuple[bool, int, str]:
    """One chunk of work on index ``name``: ``(finished, items or entries done, phase)``."""
    d = next((d for d in load_defs(txn, env, table) if d.index.name == name), None)
    if d is None or d.phase == "ready":
        return True, 0, "ready"
    n = 0
    if d.phase == "clear":
        cur = txn.cursor(db=env.idx)
        ok = cur.set_range(d.prefix)
        while ok and n < chunk and bytes(cur.key()).startswith(d.prefix):
            ok = cur.delete() and bool(cur.key())
            n += 1
        more = ok and bytes(cur.key()).startswith(d.prefix)
        if not more:
            phase = "ready" if d.dropped else "fill"
            replace_def(txn, env, table, make_def(table, d.index, d.version, d.dropped,
                                                  d.table_pk, d.table_sk, phase, None))
        return False, n, "clear"
    tprefix = table_prefix(table)
    cur = txn.cursor(db=env.items)
    start = d.resume or tprefix
    ok = cur.set_range(start)
    if ok and d.resume is not None and cur.key() == d.resume:
        ok = cur.next()
    last = d.resume
    idx = env.idx
    while ok and n < chunk:
        k = bytes(cur.key())
        if not k.startswith(tprefix):
            ok = False
            break
        item = codec.visible_from_raw(bytes(cur.value()))
        e = entry_of(d, k, item)
        if e is not None:
            txn.put(e[0], e[1], db=idx)
        last = k
        n += 1
        ok = cur.next()
    more = ok and bytes(cur.key()).startswith(tprefix)
    replace_def(txn, env, table, make_def(table, d.index, d.version, d.dropped, d.table_pk,
                                          d.table_sk, "fill" if more else "ready",
                                          last if more else None))
    return not more, n, "fill"


def build(ctx: Context, table: str, name: str,
          progress: Callable[[int, int | None], None] | None = None,
          chunk: int | None = None) -> int:
    """Run index ``name``'s pending clear and fill to the end; return the items filled.

    Each chunk is its own write transaction, so other writers interleave and a crash loses
    at most one chunk of work (which is redone, idempotently).
    """
    env = ctx.env
    step = BUILD_CHUNK if chunk is None else chunk
    filled = 0
    total = _total(ctx, env, table) if progress is not None else None
    while True:
        done, n, phase = env.write(lambda txn: _step(txn, env, table, name, step))
        if phase == "fill":
            filled += n
            if progress is not None:
                progress(filled, total)
        if done:
            break
    log.info("index %s.%s built: %d items read", table, name, filled)
    return filled


def _total(ctx: Context, env: Env, table: str) -> int | None:
    """The table's item count if cheap to know (the only table), else ``None``."""
    def run(txn: Txn) -> int | None:
        if txn.stat(env.tables)["entries"] != 1:
            return None
        return int(txn.stat(env.items)["entries"])
    return env.read(run)


def pending(ctx: Context) -> list[tuple[str, str]]:
    """``(table, index)`` of every definition whose fill or clear is unfinished."""
    env = ctx.env

    def run(txn: Txn) -> list[tuple[str, str]]:
        out = []
        for k, v in txn.cursor(db=env.idxdefs):
            table = bytes(k).decode()
            out += [(table, d.index.name) for d in parse_defs(table, bytes(v))
                    if d.phase != "ready"]
        return out

    return env.read(run)


def build_pending(ctx: Context) -> None:
    """Finish every unfinished fill or clear (after a crash, or a definition merged)."""
    for table, name in pending(ctx):
        log.info("resuming build of index %s.%s", table, name)
        build(ctx, table, name)


# -- the local API (Store.create_index, drop_index, Table.indexes, queries) ----------------------


def check_for_table(tdef: TableDef, ix: object) -> Index:
    """``ix`` if it is an :class:`Index` that can index table ``tdef``, else ``ValidationError``."""
    if not isinstance(ix, Index):
        raise ValidationError(f"an index must be an engine.Index, not {ix!r}")
    if ix.partition_key == tdef.partition_key and ix.sort_key in (None, tdef.sort_key):
        raise ValidationError(
            f"index {ix.name!r} of table {tdef.name!r} has the table's own key schema "
            f"({tdef.partition_key!r}, {tdef.sort_key!r}): it would only duplicate the table"
        )
    return ix


def describe(ix: Index) -> str:
    """``name(pk, sk) projection`` for messages."""
    proj = ix.projection if isinstance(ix.projection, str) else list(ix.projection)
    return f"{ix.name}({ix.partition_key!r}, {ix.sort_key!r}) projection {proj!r}"


def wire_create(table: str, ix: Index) -> list[Any]:
    """The log op of a create (see :mod:`engine.codec`)."""
    proj = ix.projection if isinstance(ix.projection, str) else list(ix.projection)
    return ["I", table, ix.name, ix.partition_key, ix.sort_key, proj]


def create(ctx: Context, table: str, ix: Index,
           progress: Callable[[int, int | None], None] | None = None) -> Index:
    """See :meth:`engine.Store.create_index`."""
    tdef = ctx.table_def(table)
    check_for_table(tdef, ix)
    env = ctx.env

    def run(txn: Txn) -> int | None:
        cur = next((d for d in load_defs(txn, env, table) if d.index.name == ix.name), None)
        if cur is not None and not cur.dropped:
            if same_spec(cur.index, ix):
                return None  # idempotent; an interrupted fill is resumed below
            raise ValidationError(
                f"index name {ix.name!r} is already used in table {table!r} by "
                f"{describe(cur.index)}"
            )
        # a local write: the log entry carries the clock (engine.changelog.read_clock), and
        # the definition's version is above everything this node holds
        hlc, seq, pos = read_clock(txn, env)
        hlc = tick_local(hlc, ctx.wall(), ctx.max_offset_ms)
        merge_def(txn, env, table, ix, ix.name, (hlc, ctx.node_id))
        return append(txn, env, ctx.node_id, seq + 1,
                      codec.encode_txn(hlc, [wire_create(table, ix)]), [None], pos)

    pos = env.write(run)
    if pos is not None:
        ctx.notify(pos)
    build(ctx, table, ix.name, progress)
    return ix


def drop(ctx: Context, table: str, name: str) -> None:
    """See :meth:`engine.Store.drop_index`."""
    ctx.table_def(table)
    if not isinstance(name, str):
        raise ValidationError(f"index name must be a string, not {name!r}")
    env = ctx.env

    def run(txn: Txn) -> int:
        cur = next((d for d in load_defs(txn, env, table) if d.index.name == name), None)
        if cur is None or cur.dropped:
            raise ValidationError(f"table {table!r} has no index {name!r}")
        hlc, seq, pos = read_clock(txn, env)
        hlc = tick_local(hlc, ctx.wall(), ctx.max_offset_ms)
        merge_def(txn, env, table, None, name, (hlc, ctx.node_id))
        return append(txn, env, ctx.node_id, seq + 1,
                      codec.encode_txn(hlc, [["X", table, name]]), [None], pos)

    ctx.notify(env.write(run))
    build(ctx, table, name)


def new_table_ops(txn: Txn, env: Env, table: str, indexes: Iterable[Index],
                  v: Version) -> list[list[Any]]:
    """Merge the definitions of a table's initial indexes; return their log ops."""
    ops = []
    for ix in indexes:
        merge_def(txn, env, table, ix, ix.name, v)
        ops.append(wire_create(table, ix))
    return ops


def check_new(tdef: TableDef, indexes: object) -> list[Index]:
    """Validate ``create_table(..., indexes=…)``: a list of distinct, fitting indexes."""
    if indexes is None:
        return []
    if isinstance(indexes, (str, bytes, Mapping, Index)) or not isinstance(indexes, Iterable):
        raise ValidationError(f"indexes must be a list of engine.Index, not {indexes!r}")
    out = [check_for_table(tdef, ix) for ix in indexes]
    names = [ix.name for ix in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValidationError(f"table {tdef.name!r}: index names {dup} are used twice")
    return out


def indexes(ctx: Context, table: str) -> list[Index]:
    """The live index definitions of ``table`` (ready or being built), by name."""
    env = ctx.env
    return env.read(lambda txn: [d.index for d in load_defs(txn, env, table) if not d.dropped])


def queryable(ctx: Context, table: str, name: object) -> IndexDef:
    """The definition of index ``name`` for a query; ``ValidationError`` unless it is ready."""
    if not isinstance(name, str):
        raise ValidationError(f"index must be an index name (str), not {name!r}")
    env = ctx.env
    d = env.read(lambda txn: next(
        (d for d in load_defs(txn, env, table) if d.index.name == name), None))
    if d is None or d.dropped:
        raise ValidationError(f"table {table!r} has no index {name!r}")
    if d.phase != "ready":
        raise ValidationError(
            f"cannot read from index {name!r} of table {table!r}: it is being backfilled "
            "(store.create_index with the same definition, or reopening the store, finishes it)"
        )
    return d


# -- definitions in snapshots -----------------------------------------------------------------


def all_defs(ctx: Context) -> list[IndexDef]:
    """Every index definition of the store (drops included), for a snapshot."""
    env = ctx.env

    def run(txn: Txn) -> list[IndexDef]:
        out: list[IndexDef] = []
        for k, v in txn.cursor(db=env.idxdefs):
            out += parse_defs(bytes(k).decode(), bytes(v))
        return out

    return env.read(run)


def snapshot_def(table: str, name: str, spec: Index | None, version: Version) -> IndexDef:
    """A definition as a snapshot carries it: ``spec`` ``None`` for a drop."""
    dropped = spec is None
    return make_def(table, spec if spec is not None else tombstone_index(name), version, dropped,
                 "", None, "ready", None)


def check_snapshot_defs(defs: object) -> list[IndexDef]:
    """Validate a snapshot's index definitions (``ValidationError`` before anything merges)."""
    if isinstance(defs, (str, bytes, Mapping)) or not isinstance(defs, Iterable):
        raise ValidationError(f"snapshot indexes must be an iterable of IndexDef, not {defs!r}")
    out = []
    for d in defs:
        if not isinstance(d, IndexDef) or not isinstance(d.index, Index):
            raise ValidationError(f"snapshot index is not an IndexDef: {d!r}")
        codec.check_table_name(d.table)
        v = d.version
        if not (isinstance(v, tuple) and len(v) == 2
                and all(not isinstance(x, bool) and isinstance(x, int) and 0 <= x < 2**64
                        for x in v)):
            raise ValidationError(f"index {d.table}.{d.index.name}: bad version {v!r}")
        out.append(d)
    return out
