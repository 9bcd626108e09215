"""Table definitions across replicas: schema races and deleting a table.

A table's *incarnation* is the version of the change that created it (``TableDef.version``).
Two regions creating one name with different key schemas race: the larger incarnation wins on
every replica (the merge is the same everywhere, whatever the order), and each replica that
sees the race records it as a conflict (attribute :data:`SCHEMA_ATTRIBUTE`), so it is visible
on both sides instead of silent. Items written under the losing schema stay under keys of its
shape: :mod:`engine.orphans` lists them and re-keys those it can.

:func:`delete_table` removes a table, its items and its indexes
(:func:`engine.index.drop_table_entries`) and leaves a *table tombstone* in the ``tables``
database: ``[null, null, hlc, node]``, the version of the deletion. It replicates as the
operation ``["R", table, inc_hlc, inc_node]`` naming the incarnation it deletes; a replica
holding a newer incarnation ignores it (but remembers the incarnation as deleted). A table
created again under the name is a new incarnation, whose version is above the tombstone's.

Every transaction names the incarnation of each table its item ops were written to
(:func:`engine.codec.encode_txn_parts`), and ``dropped:<table>`` in meta records the latest
deletion and the newest incarnation deleted. An item change that arrives for a deleted table,
or that names an incarnation deleted since, is dropped: never mixed into the new table, even
when its writer's clock ran ahead of the re-creation. (A change from before incarnations
travelled keeps the older rule: dropped if its version is below the latest deletion.) Two
regions creating one name with the same schema make one table: their writes all count.
Snapshots carry live tables only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import codec, ttl
from . import index as index_mod
from .changelog import append, read_clock
from .changes import TableDef, decode_table_def, is_tombstone
from .clock import BOTTOM, Version, tick_local
from .conflictlog import append_conflicts
from .env import Env, Txn
from .errors import SchemaError, TableNotFound
from .keys import encode_value
from .layout import META_DROPPED_PREFIX

if TYPE_CHECKING:
    from .context import Context
    from .index import Index

__all__ = ["SCHEMA_ATTRIBUTE", "create_table", "delete_table", "is_tombstone", "merge_drop",
           "record_schema_conflict", "stale_op"]

log = logging.getLogger(__name__)

SCHEMA_ATTRIBUTE = "(key schema)"


def _mark_dropped(txn: Txn, env: Env, name: str, v: Version | None, inc: Version) -> None:
    """Record in meta ``dropped:<name>`` the latest deletion (``v``) and the newest incarnation
    deleted (``inc``): ``[v_hlc, v_node, inc_hlc, inc_node]`` (two elements before
    incarnations travelled with operations: the deletion alone)."""
    key = META_DROPPED_PREFIX + name.encode()
    raw = txn.get(key, db=env.meta)
    row = codec.loads(raw) if raw is not None else [0, 0]
    floor, dead = (row[0], row[1]), (tuple(row[2:4]) if len(row) == 4 else (0, 0))
    new = [*max(floor, v or (0, 0)), *max(dead, inc)]
    if new != row:
        txn.put(key, codec.dumps(new), db=env.meta)


def _tombstone(txn: Txn, env: Env, name: str, v: Version, inc: Version) -> bytes:
    """Mark ``name`` deleted at ``v`` (incarnation ``inc``): the tombstone value, and the
    deletion record in meta."""
    _mark_dropped(txn, env, name, v, inc)
    return codec.dumps([None, None, v[0], v[1]])


def _drop_contents(txn: Txn, env: Env, name: str) -> int:
    """Delete every item and index entry of table ``name``; return how many items."""
    prefix = encode_value(name, "table name")
    cur = txn.cursor(db=env.items)
    n = 0
    ok = cur.set_range(prefix)
    while ok and bytes(cur.key()).startswith(prefix):
        ok = cur.delete() and bool(cur.key())
        n += 1
    index_mod.drop_table_entries(txn, env, name)
    return n


def create_table(
    ctx: Context, name: str, partition_key: str, sort_key: str | None = None, *,
    indexes: Iterable[Index] | None = None, ttl_attribute: str | None = None,
) -> TableDef:
    """See :meth:`engine.Store.create_table`; returns the table's definition."""
    codec.check_key_schema(name, partition_key, sort_key)
    if ttl_attribute is not None:
        codec.check_attr_name(ttl_attribute, f"table {name!r} ttl_attribute")
    initial = index_mod.check_new(TableDef(name, partition_key, sort_key), indexes)
    env = ctx.env
    node = ctx.node_id

    def run(txn: Txn) -> tuple[TableDef, int | None]:
        raw = txn.get(name.encode(), db=env.tables)
        if raw is not None and not is_tombstone(raw):  # a deleted one: created anew
            existing = decode_table_def(name, raw)
            if (existing.partition_key, existing.sort_key) != (partition_key, sort_key):
                raise SchemaError(
                    f"table {name!r} exists with key ({existing.partition_key!r}, "
                    f"{existing.sort_key!r}), not ({partition_key!r}, {sort_key!r})"
                )
            return existing, None
        hlc, seq, pos = read_clock(txn, env)
        hlc = tick_local(hlc, ctx.wall(), ctx.max_offset_ms)
        v = (hlc, node)
        tdef = TableDef(name, partition_key, sort_key, v, ttl_attribute,
                        BOTTOM if ttl_attribute is None else v)
        txn.put(name.encode(), tdef.stored(), db=env.tables)
        wire: list[list[Any]] = [["T", name, partition_key, sort_key]]
        if ttl_attribute is not None:
            wire.append(["L", name, ttl_attribute])
        wire += index_mod.new_table_ops(txn, env, name, initial, tdef.version)
        pos = append(txn, env, node, seq + 1, codec.encode_txn(hlc, wire),
                     [None] * len(wire), pos)  # a local write: the entry carries hlc and
        return tdef, pos                         # seq (see read_clock)

    tdef, pos = env.write(run)
    ctx.cache_table(tdef)
    if pos is not None:
        ctx.notify(pos)
        if initial:
            index_mod.build_pending(ctx)  # normally nothing to fill: the table is new
    else:
        for ix in initial:
            index_mod.create(ctx, name, ix)
    if ttl_attribute is not None and tdef.ttl_attribute != ttl_attribute:
        tdef = ttl.set_ttl(ctx, name, ttl_attribute)
    return tdef


def delete_table(ctx: Context, name: str) -> None:
    """See :meth:`engine.Store.delete_table`."""
    codec.check_table_name(name)
    env = ctx.env
    node = ctx.node_id

    def run(txn: Txn) -> int:
        raw = txn.get(name.encode(), db=env.tables)
        if raw is None or is_tombstone(raw):
            raise TableNotFound(f"table {name!r} does not exist in {ctx.path}")
        tdef = decode_table_def(name, raw)
        hlc, seq, pos = read_clock(txn, env)
        hlc = tick_local(hlc, ctx.wall(), ctx.max_offset_ms)
        n = _drop_contents(txn, env, name)
        txn.put(name.encode(), _tombstone(txn, env, name, (hlc, node), tdef.version),
                db=env.tables)
        wire = [["R", name, tdef.version[0], tdef.version[1]]]
        log.info("table %r deleted (%d items)", name, n)
        return append(txn, env, node, seq + 1, codec.encode_txn(hlc, wire), [None], pos)

    pos = env.write(run)
    ctx.uncache_tables(name)
    env.drops[name] = env.drops.get(name, 0) + 1
    ctx.notify(pos)


def merge_drop(txn: Txn, env: Env, op: codec.Op, v: Version) -> None:
    """Merge a remote table deletion of incarnation ``op.attrs["incarnation"]`` at ``v``."""
    inc = op.attrs["incarnation"]
    raw = txn.get(op.table.encode(), db=env.tables)
    if raw is not None:
        cur = codec.loads(raw)
        if cur[0] is None:  # already deleted: keep the later deletion
            if (cur[2], cur[3]) >= v:
                return
        elif (cur[2], cur[3]) > inc:
            _mark_dropped(txn, env, op.table, None, inc)  # its late ops are dropped still
            return  # a newer incarnation lives here: the deletion was of an older one
    _drop_contents(txn, env, op.table)
    txn.put(op.table.encode(), _tombstone(txn, env, op.table, v, inc), db=env.tables)
    env.drops[op.table] = env.drops.get(op.table, 0) + 1  # (an aborted txn only over-counts)


def stale_op(tables: dict[str, Any], txn: Txn, env: Env, table: str, v: Version,
             inc: Version | None = None) -> bool:
    """Whether a remote item change at ``v`` belongs to no live incarnation of ``table``.

    The table is deleted; or the change names its incarnation (``inc``) and that one, or a
    newer one, was deleted; or (a change from before incarnations travelled, or a deletion
    recorded before) it is older than the table's latest deletion. ``tables`` caches the
    lookups of one apply."""
    state = tables.get(table)
    if state is None:
        raw = txn.get(META_DROPPED_PREFIX + table.encode(), db=env.meta)
        if raw is None:
            state = tables[table] = (False, (0, 0), None)  # never deleted: the usual case
        else:
            row = codec.loads(raw)
            state = tables[table] = (is_tombstone(txn.get(table.encode(), db=env.tables)),
                                     (row[0], row[1]), tuple(row[2:4]) if len(row) == 4
                                     else None)
    dropped, floor, dead = state
    if dropped:
        return True
    if inc is not None and dead is not None:
        return bool(inc <= dead)
    return bool(v < floor)


def record_schema_conflict(
    txn: Txn, env: Env, table: str, winner: TableDef, loser: TableDef, local_lost: bool,
    bound: int,
) -> None:
    """Record a key-schema race of ``table`` as a conflict (module docstring)."""
    append_conflicts(txn, env, [[
        table, [], SCHEMA_ATTRIBUTE, list(winner.version), list(loser.version),
        [loser.partition_key, loser.sort_key], [winner.partition_key, winner.sort_key],
        local_lost]], bound)
    log.warning("table %r: key schema (%s, %s) of %016x lost to (%s, %s) of %016x; recorded "
                "as a conflict", table, loser.partition_key, loser.sort_key, loser.version[1],
                winner.partition_key, winner.sort_key, winner.version[1])
