"""The bounded conflict log: append records in the write transaction, oldest dropped past the
bound (DESIGN.md "Conflicts are visible"). One home for attribute and key-schema conflicts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from . import codec
from .env import Env, Txn
from .layout import CONFLICTS, META_CONFLICTS, U64

__all__ = ["append_conflicts"]


def append_conflicts(txn: Txn, env: Env, records: Iterable[list[Any]], bound: int) -> None:
    """Append conflict ``records`` (each a CBOR-encodable list) and trim to ``bound`` entries;
    the running total (``conflict_count``) counts every record ever appended."""
    raw = txn.get(META_CONFLICTS, db=env.meta)
    first, nxt, total = CONFLICTS.unpack(raw) if raw else (1, 1, 0)
    for record in records:
        txn.put(U64.pack(nxt), codec.dumps(record), db=env.conflicts, append=True)
        nxt += 1
        total += 1
    while nxt - first > bound:
        txn.delete(U64.pack(first), db=env.conflicts)
        first += 1
    txn.put(META_CONFLICTS, CONFLICTS.pack(first, nxt, total), db=env.meta)
