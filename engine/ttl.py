"""Time to live: a table's TTL attribute, expiry on every read path, and ``expire``.

A table may name a TTL attribute (``create_table(..., ttl_attribute=)`` or
:func:`set_ttl`): a last-writer-wins register of the table definition, replicated as an
``["L", table, attribute | null]`` op like the definition itself. An item whose TTL attribute
is a number of epoch seconds at or before now is *expired*: every read (get, query, scan,
pages, indexes, get_many) leaves it out at once, on the store's injectable wall clock. A TTL
attribute that is not a number (or is missing) never expires; DynamoDB does the same.

Expired items are then deleted by :func:`expire`, as ordinary deletes marked ``ttl`` in the
change feed (``Change.ttl``; DynamoDB Streams' service identity), which replicate like any
delete. Each delete re-checks, inside its write transaction, that the item is still expired,
so an item refreshed in the meantime survives; several regions expiring one item is harmless
(the deletes merge). Until a replica has run ``expire`` or received the delete, its reads
already hide the item.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from . import codec
from .changelog import CHUNK, append, read_clock
from .changes import TableDef, decode_table_def
from .checks import check_limit
from .clock import tick
from .env import Txn
from .errors import TableNotFound
from .keys import encode_value

if TYPE_CHECKING:
    from .store import Store

__all__ = ["DEFAULT_EXPIRE_INTERVAL", "expired", "expired_keys", "expiry_filter", "set_ttl"]

log = logging.getLogger(__name__)

DEFAULT_EXPIRE_INTERVAL = 5.0  # seconds between rounds of the background Expirer


def expired(item: dict[str, Any] | None, attribute: str | None, now_s: float) -> bool:
    """True if ``item``'s TTL ``attribute`` is a number of epoch seconds at or before ``now_s``."""
    if item is None or attribute is None:
        return False
    value = item.get(attribute)
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return False
    return bool(value <= now_s)


def expiry_filter(store: Store, tdef: TableDef) -> Callable[[dict[str, Any] | None], bool] | None:
    """A predicate that is true for the table's expired items as of now; ``None`` if the
    table has no TTL (so the read paths pay nothing)."""
    attribute = tdef.ttl_attribute
    if attribute is None:
        return None
    now_s = store._wall() / 1000
    return lambda item: expired(item, attribute, now_s)


def set_ttl(store: Store, table: str, attribute: str | None) -> TableDef:
    """See :meth:`engine.Store.set_ttl`."""
    codec.check_table_name(table)
    if attribute is not None:
        codec.check_attr_name(attribute, f"table {table!r} TTL attribute")
    env = store._e()

    def run(txn: Txn) -> tuple[TableDef, int | None]:
        raw = txn.get(table.encode(), db=env.tables)
        if raw is None:
            raise TableNotFound(f"table {table!r} does not exist in {store.path}")
        cur = decode_table_def(table, raw)
        if cur.ttl_attribute == attribute:
            return cur, None
        hlc, seq, pos = read_clock(txn, env)
        hlc = tick(hlc, store._wall())
        new = TableDef(table, cur.partition_key, cur.sort_key, cur.version, attribute,
                       (hlc, store.node_id))
        txn.put(table.encode(), new.stored(), db=env.tables)
        txn_bytes = codec.encode_txn(hlc, [["L", table, attribute]])
        return new, append(txn, env, store.node_id, seq + 1, txn_bytes, [None], pos)

    tdef, pos = env.write(run)
    store._tables[table] = tdef
    if pos is not None:
        log.info("table %r: TTL attribute %r", table, attribute)
        store._notify(pos)
    return tdef


def expired_keys(store: Store, tdef: TableDef, limit: int | None) -> Iterator[bytes]:
    """Keys of the table's expired items as of now, in key order, read in chunks."""
    check_limit(limit)
    test = expiry_filter(store, tdef)
    if test is None:
        return
    env = store._e()
    prefix = encode_value(tdef.name, "table name")
    after = prefix
    found = 0
    while True:
        def run(txn: Txn, after: bytes = after) -> list[tuple[bytes, bytes]]:
            cur = txn.cursor(db=env.items)
            rows: list[tuple[bytes, bytes]] = []
            ok = cur.set_range(after)
            while ok and len(rows) < CHUNK:
                k = bytes(cur.key())
                if not k.startswith(prefix):
                    break
                if k != after:
                    rows.append((k, bytes(cur.value())))
                ok = cur.next()
            return rows

        rows = env.read(run)
        for k, raw in rows:
            if test(codec.visible_from_raw(raw)):
                yield k
                found += 1
                if limit is not None and found >= limit:
                    return
        if len(rows) < CHUNK:
            return
        after = rows[-1][0]

