"""Batch: DynamoDB's TransactWriteItems as a ``with store.batch() as b:`` block.

Writes collected in the block commit atomically at its end, with one version and one
transaction id, and replicate as one unit. Every op may carry a condition and ``check`` adds a
condition on an item the batch does not write; conditions run at commit inside the
transaction, and if any is false nothing is written and ``TransactionCanceled`` names every
failed op, in op order. One op per item. A batch with a condition or a check is a transaction
in DynamoDB's sense and keeps its limits (:data:`MAX_TRANSACTION_OPS` ops, 4 MB); a batch of
plain writes (bulk loading) may hold up to :data:`MAX_BATCH_OPS`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from . import codec
from .errors import ValidationError
from .keys import KeyValue
from .table import Condition, Names, Table, Values
from .writepath import WriteOp, commit_local

if TYPE_CHECKING:
    from .context import Context

__all__ = ["MAX_BATCH_OPS", "MAX_TRANSACTION_OPS", "Batch"]

MAX_BATCH_OPS = 10_000
MAX_TRANSACTION_OPS = 100


class Batch:
    """Writes collected in a ``with store.batch() as b:`` block, committed atomically at its end.

    If the block raises, nothing is written. An item may appear once per batch.
    """

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._ops: list[WriteOp] = []
        self._keys: set[bytes] = set()
        self._done = False
        self._conditional = False
        self._by_name: dict[str, Table] = {}  # tables named by str, looked up once per batch

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._done:
            return
        self._done = True
        if exc_type is None and self._ops:
            if self._conditional and len(self._ops) > MAX_TRANSACTION_OPS:
                raise ValidationError(
                    f"a batch with conditions or checks is a transaction of at most "
                    f"{MAX_TRANSACTION_OPS} ops, not {len(self._ops)}; nothing written")
            commit_local(self._ctx, self._ops, transaction=self._conditional)

    def __len__(self) -> int:
        return len(self._ops)

    def _add(self, op: WriteOp) -> None:
        if self._done:
            raise ValidationError("this batch has already been committed")
        if op.key in self._keys:
            raise ValidationError(
                f"batch writes {op.tdef.name} {op.key_values} twice; one op per item"
            )
        if len(self._ops) >= MAX_BATCH_OPS:
            raise ValidationError(f"a batch holds at most {MAX_BATCH_OPS} writes")
        if op.condition is not None:
            self._conditional = True
        self._keys.add(op.key)
        self._ops.append(op)

    def _table(self, table: str | Table) -> Table:
        if not isinstance(table, str) and isinstance(table, Table):
            return table
        t = self._by_name.get(table) if isinstance(table, str) else None
        if t is None:
            t = Table(self._ctx, self._ctx.table_def(table))
            self._by_name[table] = t
        return t

    def put(self, table: str | Table, item: Mapping[str, Any],
            condition: Condition | str | None = None, *, names: Names = None,
            values: Values = None) -> None:
        """Add a put of ``item`` to ``table``."""
        t = self._by_name.get(table) if type(table) is str else None  # the hot path of bulk loads
        if type(item) is not dict and not isinstance(item, Mapping):
            raise ValidationError(f"item must be a dict, not {type(item).__name__}")
        # captured (deep-copied) before validation: later mutation cannot reach the commit
        op = (t or self._table(table))._put_op(codec.capture(dict(item)), condition, names,
                                               values)
        keys = self._keys
        if self._done or op.key in keys or len(keys) >= MAX_BATCH_OPS or condition is not None:
            self._add(op)  # raises, saying which rule the write broke
            return
        keys.add(op.key)
        self._ops.append(op)

    def update(
        self, table: str | Table, pk: KeyValue, sk: KeyValue | None = None, *,
        set: Mapping[str, Any] | None = None,  # noqa: A002
        remove: Iterable[str] | None = None, condition: Condition | str | None = None,
        expression: str | None = None, names: Names = None, values: Values = None,
        add: Mapping[str, Any] | None = None, delete: Mapping[str, Any] | None = None,
    ) -> None:
        """Add an update (upsert) of one item (arguments as :meth:`Table.update`).

        Values are captured (deep-copied) when the op is added, as a put's item is."""
        captured = codec.capture(dict(set)) if isinstance(set, Mapping) else set
        if values is not None and isinstance(values, Mapping):
            values = codec.capture(dict(values))
        add = codec.capture(dict(add)) if isinstance(add, Mapping) else add
        delete = codec.capture(dict(delete)) if isinstance(delete, Mapping) else delete
        self._add(self._table(table)._update_op(
            pk, sk, captured, remove, condition, expression=expression, names=names,
            values=values, add=add, delete=delete, returning="NONE"))

    def delete(self, table: str | Table, pk: KeyValue, sk: KeyValue | None = None,
               condition: Condition | str | None = None, *, names: Names = None,
               values: Values = None) -> None:
        """Add a delete of one item."""
        self._add(self._table(table)._delete_op(pk, sk, condition, names, values))

    def check(self, table: str | Table, pk: KeyValue, sk: KeyValue | None = None, *,
              condition: Condition | str, names: Names = None, values: Values = None) -> None:
        """Add a condition on an item the batch does not write (DynamoDB's ConditionCheck)."""
        self._add(self._table(table)._check_op(pk, sk, condition, names, values))
