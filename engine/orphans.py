"""Items a key-schema race left under a key the winning schema does not give them.

Two regions that create one table name with different key schemas race: the later creation
wins everywhere (:mod:`engine.schema`), but items written under the losing schema stay where
they were written — under keys of the losing shape — on every replica alike. ``scan`` returns
them; ``get`` and ``query`` by the winning key do not. Nothing moves them by itself: a replica
cannot tell on its own which of them the application wants under the winning key, and a silent
migration would be a write nobody asked for. Instead:

- :func:`orphans` lists them: every visible item of the table whose stored key is not the key
  the live schema gives it (it lacks the winning key attributes, holds a non-key type there,
  or its key has the other shape);
- :func:`rekey` moves those that carry the winning key attributes under their winning key,
  each as one transaction — a put there (only if nothing lives there: an item of the winning
  schema is never overwritten) and a delete of the orphan key — ordinary writes that
  replicate, so every replica ends the same (two replicas re-keying at once write the same
  item twice: last writer wins between equal values). The others stay listed by
  :func:`orphans`, to be put back by the application.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import codec
from .batch import Batch
from .errors import ConditionFailed, ValidationError
from .keys import decode_key, encode_value
from .table import Table
from .writepath import WriteOp

if TYPE_CHECKING:
    from .context import Context
    from .env import Txn

__all__ = ["orphans", "rekey"]


def _home(table: Table, item: dict[str, Any]) -> bytes | None:
    """The key the live schema gives ``item``, or ``None`` if it has no usable key there."""
    try:
        return table._put_op(item, None).key
    except ValidationError:
        return None


def _scan(ctx: Context, name: str) -> list[tuple[bytes, dict[str, Any]]]:
    table = Table(ctx, ctx.table_def(name))
    env = ctx.env
    prefix = encode_value(name, "table name")

    def run(txn: Txn) -> list[tuple[bytes, dict[str, Any]]]:
        out = []
        cur = txn.cursor(db=env.items)
        ok = cur.set_range(prefix)
        while ok and bytes(cur.key()).startswith(prefix):
            key = bytes(cur.key())
            item = codec.visible_from_raw(bytes(cur.value()))
            if item is not None and _home(table, item) != key:
                out.append((key, item))
            ok = cur.next()
        return out

    return env.read(run)


def orphans(ctx: Context, name: str) -> list[dict[str, Any]]:
    """See :meth:`engine.Store.schema_orphans`."""
    return [item for _, item in _scan(ctx, name)]


def rekey(ctx: Context, name: str) -> int:
    """See :meth:`engine.Store.rekey_orphans`."""
    moved = 0
    for key, item in _scan(ctx, name):
        table = Table(ctx, ctx.table_def(name))
        if _home(table, item) is None:
            continue
        try:
            with Batch(ctx) as b:
                b.put(table, item, condition=lambda cur: cur is None)
                b._add(WriteOp("D", table._def, key, decode_key(key)[1], {}, (), None))
        except ConditionFailed:
            continue  # an item of the winning schema lives there: never overwritten
        moved += 1
    return moved
