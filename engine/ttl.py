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
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from . import codec
from .changelog import CHUNK, append, read_clock
from .changes import TableDef, decode_table_def
from .checks import check_limit
from .clock import tick
from .env import Txn
from .errors import StoreClosed, TableNotFound, ValidationError
from .keys import decode_key, decode_value, encode_value

if TYPE_CHECKING:
    from .context import Context

__all__ = ["DEFAULT_EXPIRE_INTERVAL", "EXPIRE_BATCH", "Expirer", "expire", "expired",
           "expired_keys", "expiry_filter", "hide_expired", "page_expiry", "set_ttl"]

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


def expiry_filter(ctx: Context, tdef: TableDef) -> Callable[[dict[str, Any] | None], bool] | None:
    """A predicate that is true for the table's expired items as of now; ``None`` if the
    table has no TTL (so the read paths pay nothing)."""
    attribute = tdef.ttl_attribute
    if attribute is None:
        return None
    now_s = ctx.wall() / 1000
    return lambda item: expired(item, attribute, now_s)


def set_ttl(ctx: Context, table: str, attribute: str | None) -> TableDef:
    """See :meth:`engine.Store.set_ttl`."""
    codec.check_table_name(table)
    if attribute is not None:
        codec.check_attr_name(attribute, f"table {table!r} TTL attribute")
    env = ctx.env

    def run(txn: Txn) -> tuple[TableDef, int | None]:
        raw = txn.get(table.encode(), db=env.tables)
        if raw is None:
            raise TableNotFound(f"table {table!r} does not exist in {ctx.path}")
        cur = decode_table_def(table, raw)
        if cur.ttl_attribute == attribute:
            return cur, None
        hlc, seq, pos = read_clock(txn, env)
        hlc = tick(hlc, ctx.wall())
        new = TableDef(table, cur.partition_key, cur.sort_key, cur.version, attribute,
                       (hlc, ctx.node_id))
        txn.put(table.encode(), new.stored(), db=env.tables)
        txn_bytes = codec.encode_txn(hlc, [["L", table, attribute]])
        return new, append(txn, env, ctx.node_id, seq + 1, txn_bytes, [None], pos)

    tdef, pos = env.write(run)
    ctx.cache_table(tdef)
    if pos is not None:
        log.info("table %r: TTL attribute %r", table, attribute)
        ctx.notify(pos)
    return tdef


def expired_keys(ctx: Context, tdef: TableDef, limit: int | None) -> Iterator[bytes]:
    """Keys of the table's expired items as of now, in key order, read in chunks."""
    check_limit(limit)
    test = expiry_filter(ctx, tdef)
    if test is None:
        return
    env = ctx.env
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



EXPIRE_BATCH = 100  # expired items deleted per write transaction


def expire(ctx: Context, limit: int | None = None) -> int:
    """See :meth:`engine.Store.expire`."""
    from .writepath import WriteOp, commit_local  # the write path imports this module

    check_limit(limit)
    total = 0
    for tdef in ctx.table_defs():
        if tdef.ttl_attribute is None:
            continue
        want = None if limit is None else limit - total
        if want == 0:
            break
        keys = list(expired_keys(ctx, tdef, want))
        for i in range(0, len(keys), EXPIRE_BATCH):
            ops = [WriteOp("D", tdef, k, decode_key(k)[1], {}, (), None, returning="ALL_OLD",
                           ttl=True) for k in keys[i:i + EXPIRE_BATCH]]
            total += sum(r is not None for r in commit_local(ctx, ops))
    if total:
        log.info("expired %d items in %s", total, ctx.path)
    return total


class Expiring(Protocol):
    """What an :class:`Expirer` runs on: an :class:`engine.Store`."""

    @property
    def path(self) -> Path: ...
    @property
    def region(self) -> str: ...
    def expire(self, limit: int | None = None) -> int: ...


class Expirer:
    """Runs :meth:`Store.expire` every ``interval`` seconds in a daemon thread.

    What the live Replicator, ``regiondb serve`` and the DynamoDB endpoint use to delete
    expired items as DynamoDB does in the background. ``start()``/``stop()`` or ``with``; a
    failure is logged and the next round tries again; a closed store ends the thread.
    """

    def __init__(self, store: Expiring, interval: float = DEFAULT_EXPIRE_INTERVAL) -> None:
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) \
                or not interval > 0:
            raise ValidationError(f"interval must be a positive number of seconds, "
                                  f"not {interval!r}")
        self.store = store
        self.interval = float(interval)
        self.expired = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"<Expirer {self.store.region} every {self.interval:g} s>"

    def start(self) -> Expirer:
        """Start the thread (idempotent); the first round runs after one interval."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"regiondb-expire-{self.store.region}")
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread and wait for a running round to end. Idempotent."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(timeout)

    def __enter__(self) -> Expirer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.expired += self.store.expire()
            except StoreClosed:
                return
            except Exception:  # keep expiring: the next round may succeed
                log.exception("expiring items of %s failed", self.store.path)


def page_expiry(ctx: Context, table: str, index: Any = None
                ) -> Callable[[Txn, bytes, dict[str, Any]], bool] | None:
    """The ``expired`` test of a page read (:class:`engine.pages.PageQuery`) of ``table`` or
    of its secondary ``index`` (an :class:`engine.index.IndexDef`), as of now; ``None`` if the
    table has no TTL. An index entry that does not hold the TTL attribute (``KEYS_ONLY`` or a
    projection without it) is judged by its item, read in the same transaction."""
    tdef = ctx.table_def(table)
    attribute = tdef.ttl_attribute
    if attribute is None:
        return None
    now_s = ctx.wall() / 1000
    projection = None if index is None else index.index.projection
    if projection is None or projection == "ALL" or (
            isinstance(projection, (list, tuple)) and attribute in projection):
        return lambda txn, key, item: expired(item, attribute, now_s)
    env = ctx.env

    def by_item(txn: Txn, key: bytes, item: dict[str, Any]) -> bool:
        state = txn.get(_entry_item_key(index, key), db=env.items)
        return state is not None and expired(codec.visible_from_raw(bytes(state)), attribute,
                                             now_s)

    return by_item


def _entry_item_key(d: Any, entry: bytes) -> bytes:
    """The item key of an index entry key ``prefix enc(ipk) [enc(isk)] item-key-suffix``."""
    pos = len(d.prefix)
    for _ in range(1 if d.index.sort_key is None else 2):
        pos = decode_value(entry, pos)[1]
    return encode_value(d.table, "table name") + entry[pos:]


def hide_expired(ctx: Context, table: str, item: dict[str, Any] | None
                 ) -> dict[str, Any] | None:
    """``item``, or ``None`` if it is expired (point reads: get, get_many)."""
    if item is None:
        return None
    attribute = ctx.table_def(table).ttl_attribute
    if attribute is not None and expired(item, attribute, ctx.wall() / 1000):
        return None
    return item
