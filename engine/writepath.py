"""The local write path: one LMDB write transaction for a write or a batch of them.

In the transaction: read the clock and sequence, then per operation read the item (a blind
put skips that: :func:`_blind_put`), evaluate its condition, plan an update against the
current item, build the delta, merge, write the item; then append the change to the log and
commit. A false condition raises ``ConditionFailed`` (a batch: ``TransactionCanceled`` naming
every failed op) and, like every error raised inside, aborts the transaction: nothing is
written.

``ADD`` and ``DELETE`` on top-level attributes become plain values in exactly one place,
:func:`fold_add_delete` (DynamoDB's single-region semantics). Merging them as counters and
set deltas across replicas replaces that function only.
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
from .item import ItemState, delete_delta, max_version, merge, put_delta, update_delta, visible

if TYPE_CHECKING:
    from .changes import TableDef
    from .env import Env, Txn
    from .store import Store

__all__ = ["MAX_TRANSACTION_BYTES", "RETURN_VALUES", "WriteOp", "commit_local",
           "fold_add_delete"]

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


def fold_add_delete(actions: UpdateActions, current: dict[str, Any] | None
                    ) -> tuple[dict[str, Any], set[str]]:
    """Turn top-level ``ADD``/``DELETE`` into plain SET/REMOVE values against ``current``.

    DynamoDB's single-region semantics: ``ADD n`` sets the attribute to its value plus ``n``
    (missing counts as 0), ``ADD`` of a set unites, ``DELETE`` subtracts elements and removes
    an attribute left empty. The merge-types work replaces this function to make them deltas.

    :raises ValidationError: for an attribute of the wrong type.
    """
    set_ = dict(actions.set)
    remove = set(actions.remove)
    old = current or {}
    for name, operand in actions.add.items():
        set_[name] = add_value(old.get(name, MISSING), operand)
    for name, operand in actions.delete.items():
        left = delete_value(old.get(name, MISSING), operand)
        if left is MISSING:
            if name in old:
                remove.add(name)
        else:
            set_[name] = left
    return set_, remove


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
        if seen >= t.v:  # cannot happen (the clock observes all it applies); merge to be safe
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
    if kind == "U" and op.plan is not None:
        actions = op.plan(old)
        set_, removed = fold_add_delete(actions, old)
        codec.check_attrs(set_, f"table {table!r} update")
        attrs = {**attrs, **set_}
        remove = tuple(removed)
        paths = actions.paths
    elif kind == "U" and op.returning.startswith("UPDATED"):
        keys = (op.tdef.partition_key, op.tdef.sort_key)
        paths = tuple(Path((n,)) for n in (*attrs, *remove) if n not in keys)
    # v is above every version held (the clock observes all it applies), so a put or delete
    # replaces the state outright; only an update merges.
    if kind == "P" and seen < v:
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
        delta = put_delta(attrs, v, seen)
        t.wire.append(dumps(["P", table, key, attrs, seen[0], seen[1]]))
    elif kind == "U":
        delta = update_delta(attrs, remove, v, seen)
        t.wire.append(dumps(["U", table, key, attrs, list(remove), seen[0], seen[1]]))
    else:
        delta = delete_delta(v, seen)
        t.wire.append(dumps(["D", table, key, seen[0], seen[1]]))
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


def commit_local(store: Store, ops: Sequence[WriteOp], *, transaction: bool = False
                 ) -> list[dict[str, Any] | None]:
    """Apply ``ops`` as one transaction with one version; return what each op returns.

    :param transaction: a batch (``store.batch()``): every condition is evaluated and all
        failures are reported together by ``TransactionCanceled``; checks (``C``) write
        nothing and are not logged.
    """
    env = store._e()
    node = store.node_id
    wall = store._wall
    max_offset = store.max_offset_ms

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
                op.condition is not None or op.plan is not None
                or op.returning in _RETURNS_OLD or t.indexes(op.tdef.name)) else None
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
        txn_bytes = codec.encode_txn_parts(hlc, t.wire)
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
        store._notify(pos)
    return results


def _results(ops: Sequence[WriteOp], written: list[dict[str, Any] | None]
             ) -> list[dict[str, Any] | None]:
    """Per op what it returns; checks (which wrote nothing) return ``None``."""
    if len(written) == len(ops):
        return written
    it = iter(written)
    return [None if op.kind == "C" else next(it) for op in ops]
