"""The local write path: one LMDB write transaction for a write or a batch of them.

In the transaction: read the clock and sequence, then per operation read the item (a blind
put skips that: :func:`_blind_put`), evaluate its condition, plan an update against the
current item, build the delta, merge, write the item; then append the change to the log and
commit. A false condition raises ``ConditionFailed`` (a batch: ``TransactionCanceled`` naming
every failed op) and, like every error raised inside, aborts the transaction: nothing is
written.

``ADD`` and ``DELETE`` on top-level attributes become merge deltas in exactly one place,
:func:`merge_add_delete`: ``ADD n`` on a number is a counter increment, ``ADD``/``DELETE`` of
set elements are element changes (:mod:`engine.item`), checked against the current item with
DynamoDB's type rules. Every put, delete, SET and REMOVE of a counter records the totals it
observed (observed-reset). A delete of kind ``ttl`` (:func:`engine.ttl.expire`) is skipped if
the item is no longer expired when its transaction runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from . import codec
from . import index as index_mod
from .changelog import append, read_clock
from .clock import BOTTOM, Version, tick_local
from .errors import ConditionFailed, TransactionCanceled, ValidationError
from .expr import MISSING, Path, UpdateActions, project
from .expr.values import add_value, delete_value
from .item import (
    NO_EXT,
    ItemState,
    WriteExt,
    delete_delta,
    max_version,
    merge,
    plan_write,
    put_delta,
    update_delta,
    visible,
)
from .mergewire import op_wire
from .ttl import expired

if TYPE_CHECKING:
    from .changes import TableDef
    from .context import Context
    from .env import Env, Txn

__all__ = ["MAX_TRANSACTION_BYTES", "RETURN_VALUES", "AddDelete", "WriteOp", "commit_local",
           "merge_add_delete"]

Condition = Callable[[dict[str, Any] | None], bool]
RETURN_VALUES = ("NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW")
_RETURNS_OLD = frozenset({"ALL_OLD", "UPDATED_OLD"})
MAX_TRANSACTION_BYTES = 4 << 20  # DynamoDB's TransactWriteItems limit


class WriteOp(NamedTuple):
    """One pending operation, built and checked by :mod:`engine.table` before any transaction.

    ``kind`` is ``P`` (put), ``U`` (update), ``D`` (delete) or ``C`` (condition check).
    ``attrs`` holds a put's item, or an update's key attributes plus its ``set=`` values;
    ``plan`` (updates with an expression or ``add=``/``delete=``) computes the update's
    actions from the current item inside the transaction.
    """

    kind: str
    tdef: TableDef
    key: bytes
    key_values: tuple[Any, ...]
    attrs: dict[str, Any]
    remove: tuple[str, ...]
    condition: Condition | None
    plan: Callable[[dict[str, Any] | None], UpdateActions] | None = None
    returning: str = "NONE"
    ttl: bool = False  # D only: a TTL expiry, skipped if the item is no longer expired


class AddDelete(NamedTuple):
    """An update's top-level ``ADD``/``DELETE``, sorted into counter and set-element parts."""

    add: dict[str, Any]                 # counter attribute -> number to add
    add_elems: dict[str, Any]           # set attribute -> elements to add
    del_elems: dict[str, Any]           # set attribute -> elements to delete


def merge_add_delete(actions: UpdateActions, current: dict[str, Any] | None
                     ) -> tuple[dict[str, Any], set[str], AddDelete]:
    """Split an update's actions into SET/REMOVE values and ``ADD``/``DELETE`` merge deltas.

    ``ADD n`` on a number (or a missing attribute) becomes a counter increment, ``ADD`` and
    ``DELETE`` of set elements become element changes; each is checked against ``current``
    with DynamoDB's rules first (a number added to a number, elements of the set's type; the
    result within DynamoDB's number range), so what replicates is what DynamoDB would accept.
    ``DELETE`` from a missing attribute does nothing, as in DynamoDB.

    :raises ValidationError: for an attribute of the wrong type.
    """
    old = current or {}
    parts = AddDelete({}, {}, {})
    for name, operand in actions.add.items():
        add_value(old.get(name, MISSING), operand)  # the type and range checks
        if isinstance(operand, (set, frozenset)):
            parts.add_elems[name] = operand
        else:
            parts.add[name] = operand
    for name, operand in actions.delete.items():
        delete_value(old.get(name, MISSING), operand)  # the type checks
        if name in old:
            parts.del_elems[name] = operand
    return dict(actions.set), set(actions.remove), parts


def _ext(op: WriteOp, state: ItemState | None, origin: int, attrs: dict[str, Any],
         remove: Sequence[str], parts: AddDelete | None) -> WriteExt:
    """The counter/set part of ``op``'s change (``NO_EXT`` in the usual, plain case)."""
    if parts is None and (state is None or not state.extra):
        return NO_EXT
    if parts is None:
        parts = AddDelete({}, {}, {})
    reset = None if op.kind in ("P", "D") else [*attrs, *remove]
    return plan_write(state, origin, add=parts.add, add_elems=parts.add_elems,
                      del_elems=parts.del_elems, reset=reset)


def _check_item_size(size: int, op: WriteOp) -> None:
    if size > codec.MAX_ITEM_BYTES:
        raise ValidationError(
            f"item {op.tdef.name} {op.key_values} would be {size} bytes stored; "
            f"the limit is {codec.MAX_ITEM_BYTES}"
        )


def _returned(op: WriteOp, old: dict[str, Any] | None, new: dict[str, Any] | None,
              paths: tuple[Path, ...]) -> dict[str, Any] | None:
    """What the API call returns for ``op`` (its ``returning=``)."""
    r = op.returning
    if r == "ALL_NEW":
        return new
    if r == "NONE":
        return None
    if r == "ALL_OLD":
        return old
    return project(old if r == "UPDATED_OLD" else new, paths) or None


class _Txn:
    """The state of one write transaction, shared by the per-op steps."""

    def __init__(self, txn: Txn, env: Env, version: Version) -> None:
        self.txn, self.env, self.v = txn, env, version
        self.get, self.put, self.db = txn.get, txn.put, env.items
        self.puts = codec.PutEncoder(version)
        self.wire: list[bytes] = []
        self.images: list[Any] = []
        self.results: list[dict[str, Any] | None] = []
        self._indexes: dict[str, tuple[index_mod.IndexDef, ...]] = {}

    def indexes(self, table: str) -> tuple[index_mod.IndexDef, ...]:
        """The secondary indexes of ``table`` this write maintains (one get per table)."""
        ix = self._indexes.get(table)
        if ix is None:
            ix = self._indexes[table] = index_mod.active_defs(self.txn, self.env, table)
        return ix


def _blind_put(t: _Txn, op: WriteOp) -> None:
    """A put with no condition and nothing returned: needs only the largest version held (its
    ``seen``), not the state; a new item takes one descent of the tree, no get first."""
    attrs_cbor = codec.dumps(op.attrs)  # encoded once, spliced into state and log
    if len(attrs_cbor) > codec.MAX_ITEM_BYTES:
        _check_item_size(len(attrs_cbor), op)
    key = op.key
    raw = None
    if t.put(key, t.puts.state(attrs_cbor, BOTTOM), db=t.db, overwrite=False):
        seen = BOTTOM
    else:
        raw = t.get(key, db=t.db)
        seen = codec.max_version_raw(raw)
        # seen >= v cannot happen (the clock observes all it applies): merge to be safe; an
        # item with counters takes the full path too (the put resets them, observing them)
        if seen >= t.v or codec.has_extra_raw(raw):
            state = codec.decode_state(raw)
            _write(t, op, state, seen, visible(state))
            return
        t.put(key, t.puts.state(attrs_cbor, seen), db=t.db)
    ix = t.indexes(op.tdef.name)
    if ix:
        old = None if raw is None else codec.visible_from_raw(bytes(raw))
        index_mod.maintain(t.txn, t.env, ix, key, old, op.attrs, op.attrs)
    t.wire.append(t.puts.op(op.tdef.name, key, attrs_cbor, seen))
    t.results.append(None)
    t.images.append(True)


def _write(t: _Txn, op: WriteOp, state: ItemState | None, seen: Version,
           old: dict[str, Any] | None) -> None:
    """Write ``op`` over the item's current ``state`` (its condition already passed)."""
    kind, table, key, attrs, v = op.kind, op.tdef.name, op.key, op.attrs, t.v
    dumps = codec.dumps
    paths: tuple[Path, ...] = ()
    remove: Sequence[str] = op.remove
    parts: AddDelete | None = None
    if kind == "U" and op.plan is not None:
        actions = op.plan(old)
        set_, removed, parts = merge_add_delete(actions, old)
        codec.check_attrs(set_, f"table {table!r} update")
        attrs = {**attrs, **set_}
        remove = tuple(removed)
        paths = actions.paths
    elif kind == "U" and op.returning.startswith("UPDATED"):
        keys = (op.tdef.partition_key, op.tdef.sort_key)
        paths = tuple(Path((n,)) for n in (*attrs, *remove) if n not in keys)
    ext = _ext(op, state, v[1], attrs, remove, parts)
    # v is above every version held (the clock observes all it applies), so a put or delete
    # replaces the state outright; only an update merges.
    if kind == "P" and seen < v and not ext:
        attrs_cbor = dumps(attrs)
        _check_item_size(len(attrs_cbor), op)
        t.put(key, t.puts.state(attrs_cbor, seen), db=t.db)
        ix = t.indexes(table)
        if ix:
            index_mod.maintain(t.txn, t.env, ix, key, old, attrs, attrs)
        t.wire.append(t.puts.op(table, key, attrs_cbor, seen))
        t.results.append(_returned(op, old, attrs, paths))
        t.images.append(True)
        return
    if kind == "P":
        delta = put_delta(attrs, v, seen, ext)
    elif kind == "U":
        delta = update_delta(attrs, remove, v, seen, ext)
    else:
        delta = delete_delta(v, seen, ext)
    t.wire.append(dumps(op_wire(kind, table, key, attrs, remove, seen, ext, op.ttl)))
    if state is None or (kind == "D" and seen < v):
        new = delta
    else:
        new = merge(state, delta, codec.canonical)
    encoded = codec.encode_state(new)
    _check_item_size(len(encoded), op)
    t.put(key, encoded, db=t.db)
    image = visible(new)
    ix = t.indexes(table)
    if ix:
        index_mod.maintain(t.txn, t.env, ix, key, old, image, attrs if kind != "D" else None)
    t.results.append(_returned(op, old, image, paths))
    t.images.append(True if kind == "P" and image == attrs else image)


def _failed(op: WriteOp, old: dict[str, Any] | None) -> ConditionFailed:
    return ConditionFailed(
        f"condition failed for {op.tdef.name} {op.key_values}; nothing written", item=old)


def commit_local(ctx: Context, ops: Sequence[WriteOp], *, transaction: bool = False
                 ) -> list[dict[str, Any] | None]:
    """Apply ``ops`` as one transaction with one version; return what each op returns.

    :param transaction: a batch (``store.batch()``): every condition is evaluated and all
        failures are reported together by ``TransactionCanceled``; checks (``C``) write
        nothing and are not logged.
    """
    env = ctx.env
    node = ctx.node_id
    wall = ctx.wall
    max_offset = ctx.max_offset_ms

    def run(txn: Txn) -> tuple[list[dict[str, Any] | None], int]:
        hlc, seq, pos = read_clock(txn, env)
        hlc = tick_local(hlc, wall(), max_offset)
        t = _Txn(txn, env, (hlc, node))
        failures: list[tuple[int, ConditionFailed]] = []
        for i, op in enumerate(ops):
            if op.kind == "P" and op.condition is None and op.returning == "NONE":
                _blind_put(t, op)
                continue
            raw = t.get(op.key, db=t.db)
            state = codec.decode_state(raw) if raw is not None else None
            # the item as it was, built only where something reads it (the plain update that
            # returns ALL_NEW, of a table without indexes, the commonest write, does not)
            old = visible(state) if (
                op.condition is not None or op.plan is not None or op.ttl
                or op.returning in _RETURNS_OLD or t.indexes(op.tdef.name)) else None
            if op.ttl and not expired(old, op.tdef.ttl_attribute, wall() / 1000):
                t.results.append(None)  # refreshed (or gone) since it was found expired
                continue
            if op.condition is not None and not op.condition(old):
                if not transaction:
                    raise _failed(op, old)
                failures.append((i, _failed(op, old)))
                continue
            if op.kind == "C" or failures:
                continue  # a check writes nothing; after a failure nothing will be written
            _write(t, op, state, max_version(state), old)
        if failures:
            raise TransactionCanceled(len(ops), failures)
        if not t.wire:
            return [None] * len(ops), -1  # only checks: nothing to log
        # each table's incarnation: a receiver drops the ops of one deleted since
        incs = {op.tdef.name: op.tdef.version for op in ops if op.kind != "C"}
        txn_bytes = codec.encode_txn_parts(hlc, t.wire, incs)
        limit = MAX_TRANSACTION_BYTES if transaction else codec.MAX_TXN_BYTES
        if len(txn_bytes) > limit:
            raise ValidationError(
                f"transaction of {len(txn_bytes)} bytes is over the {limit} a "
                + ("transaction may hold (DynamoDB's limit): split it" if transaction else
                   "log entry may hold (it could never replicate): split the batch"))
        # no clock record write: this entry, the log's last, now carries hlc and seq
        pos = append(txn, env, node, seq + 1, txn_bytes, t.images, pos)
        return _results(ops, t.results), pos

    results, pos = env.write(run)
    if pos >= 0:
        ctx.notify(pos)
    return results


def _results(ops: Sequence[WriteOp], written: list[dict[str, Any] | None]
             ) -> list[dict[str, Any] | None]:
    """Per op what it returns; checks (which wrote nothing) return ``None``."""
    if len(written) == len(ops):
        return written
    it = iter(written)
    return [None if op.kind == "C" else next(it) for op in ops]
