"""Range reads in pages: DynamoDB's Query/Scan paging over any key range of any LMDB database.

A page is read in one read transaction: rows from a key range, after an exclusive start key,
forwards or backwards. ``limit`` counts the items *read* (before the filter, as DynamoDB's
Limit does), and a page also ends once about :data:`PAGE_BYTES` of items were read. The page's
``last_key`` is the key of the last item read, or ``None`` when nothing is left in the range.

The reader is generic so that other key spaces (secondary indexes) page the same way: the
caller gives the database, a ``load`` that turns a stored row into the visible item (or
``None`` to skip it, e.g. a tombstone) and a ``key_of`` that names a row's key as a dict.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import codec
from .errors import StoreClosed
from .expr import Path, project

if TYPE_CHECKING:
    from .context import Context
    from .env import Txn

__all__ = ["PAGE_BYTES", "KeyRange", "Page", "PageQuery", "iterate", "read_page", "rows_in",
           "successor"]

PAGE_BYTES = 1 << 20  # DynamoDB ends a Query/Scan page after 1 MB of items read
ITER_ROWS = 256       # items per read transaction when iterating: none outlives a page

Loader = Callable[["Txn", bytes, bytes], "dict[str, Any] | None"]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a query or scan.

    :ivar items: the items read that passed the filter, projected.
    :ivar last_key: key attributes of the last item read (give it as ``start=`` for the next
        page), or ``None`` when nothing is left.
    :ivar scanned: how many items were read, before the filter.
    """

    items: list[dict[str, Any]]
    last_key: dict[str, Any] | None
    scanned: int


def successor(prefix: bytes) -> bytes:
    """The smallest byte string greater than every string that starts with ``prefix``."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return b"\xff" * (len(prefix) + 1)
    return stripped[:-1] + bytes((stripped[-1] + 1,))


@dataclass(frozen=True, slots=True)
class KeyRange:
    """Stored keys from ``lo`` to ``hi``, each end inclusive or not."""

    lo: bytes
    hi: bytes
    lo_incl: bool = True
    hi_incl: bool = False

    @classmethod
    def prefix(cls, prefix: bytes) -> KeyRange:
        """Every key that starts with ``prefix``."""
        return cls(prefix, successor(prefix))


def _visible(txn: Txn, key: bytes, raw: bytes) -> dict[str, Any] | None:
    return codec.visible_from_raw(raw)


@dataclass(frozen=True, slots=True)
class PageQuery:
    """Everything a page read needs but its start and limit (built once per query call).

    :ivar db: the LMDB database to read (``None``: the items database).
    :ivar keep: the filter, or ``None``.
    :ivar paths: the projection, or ``None`` for whole items.
    :ivar segment: ``(i, n)``: only rows whose key hashes to part ``i`` of ``n``.
    """

    range: KeyRange
    key_of: Callable[[bytes, dict[str, Any]], dict[str, Any]]
    reverse: bool = False
    keep: Callable[[dict[str, Any] | None], bool] | None = None
    paths: tuple[Path, ...] | None = None
    segment: tuple[int, int] | None = None
    db: Any = None
    load: Loader = _visible
    expired: Callable[[Txn, bytes, dict[str, Any]], bool] | None = None  # TTL (engine.ttl)


def rows_in(txn: Txn, db: Any, rng: KeyRange, after: bytes | None, reverse: bool
          ) -> Iterator[tuple[bytes, bytes]]:
    """Stored ``(key, value)`` rows of the range strictly past ``after``, in scan order."""
    cur = txn.cursor(db=db)
    lo, lo_incl, hi, hi_incl = rng.lo, rng.lo_incl, rng.hi, rng.hi_incl
    if after is not None:
        if reverse and after <= hi:
            hi, hi_incl = after, False
        elif not reverse and after >= lo:
            lo, lo_incl = after, False
    if not reverse:
        ok = cur.set_range(lo)
        while ok:
            k = cur.key()
            if k > hi or (k == hi and not hi_incl):
                return
            if k != lo or lo_incl:
                yield bytes(k), bytes(cur.value())
            ok = cur.next()
        return
    ok = cur.set_range(hi)
    if not ok:
        ok = cur.last()
    while ok:
        k = cur.key()
        if k < lo or (k == lo and not lo_incl):
            return
        if k < hi or (k == hi and hi_incl):
            yield bytes(k), bytes(cur.value())
        ok = cur.prev()


def _read(txn: Txn, ctx: Context, q: PageQuery, after: bytes | None, limit: int | None,
          max_bytes: int) -> tuple[Page, bytes | None]:
    db = ctx.env.items if q.db is None else q.db
    items: list[dict[str, Any]] = []
    scanned = size = 0
    last: tuple[bytes, dict[str, Any]] | None = None
    keep, paths, load, gone = q.keep, q.paths, q.load, q.expired
    part, parts = q.segment or (0, 0)
    full = False
    for key, raw in rows_in(txn, db, q.range, after, q.reverse):
        if parts and zlib.crc32(key) % parts != part:
            continue
        if full:  # one more item exists past a full page: the page gets a last_key
            more = load(txn, key, raw)
            if more is not None and (gone is None or not gone(txn, key, more)):
                assert last is not None
                return Page(items, q.key_of(*last), scanned), last[0]
            continue
        item = load(txn, key, raw)
        if item is None or (gone is not None and gone(txn, key, item)):
            continue
        scanned += 1
        size += len(raw)
        last = (key, item)
        if keep is None or keep(item):
            items.append(item if paths is None else project(item, paths) or {})
        full = (limit is not None and scanned >= limit) or size >= max_bytes
    return Page(items, None, scanned), None


def read_page(ctx: Context, q: PageQuery, *, after: bytes | None = None,
              limit: int | None = None, max_bytes: int = PAGE_BYTES) -> tuple[Page, bytes | None]:
    """Read one page in one read transaction; return it and the stored key to resume after."""
    env = ctx.env
    return env.read(lambda txn: _read(txn, ctx, q, after, limit, max_bytes))


def iterate(ctx: Context, q: PageQuery, *, after: bytes | None = None,
            limit: int | None = None) -> Iterator[dict[str, Any]]:
    """The items of ``q`` (filtered, projected), paging internally; ``limit`` caps the items
    yielded. Each page is its own read transaction, so the iterator holds none between items."""
    produced = 0
    while True:
        want = ITER_ROWS
        if limit is not None and q.keep is None:
            want = min(want, limit - produced)  # without a filter every item read is yielded
        page, after = read_page(ctx, q, after=after, limit=want)
        if ctx.closed:
            raise StoreClosed(f"store {ctx.path} was closed during iteration")
        for item in page.items:
            yield item
            produced += 1
            if limit is not None and produced >= limit:
                return
        if after is None:
            return
