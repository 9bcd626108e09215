"""Table and Batch: the item API (put, get, update, delete, query, scan) over a Store.

Every argument is checked here, before any transaction begins, so bad input raises
``ValidationError`` naming what is wrong and nothing is written. Writes go through
``Store._commit_local``: one LMDB write transaction per call (or per batch). Reads are short
read transactions: a point get, or a range read in chunks (:func:`_range`) so that no
iterator holds a transaction between items.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

from . import codec
from . import index as index_mod
from .changelog import CHUNK
from .checks import check_limit as _check_limit
from .errors import StoreClosed, ValidationError
from .keys import KeyValue, check_key_value, encode_prefix, encode_value, item_key

if TYPE_CHECKING:
    from .changes import TableDef
    from .env import Txn
    from .index import Index
    from .store import Store

__all__ = ["Batch", "Condition", "Table"]

Condition = Callable[[dict[str, Any] | None], bool]
MAX_BATCH_OPS = 10_000
_MAX_KEY = codec.MAX_KEY_BYTES


class _Op(NamedTuple):
    kind: str
    tdef: TableDef
    key: bytes
    key_values: tuple[Any, ...]
    attrs: dict[str, Any]
    remove: tuple[str, ...]
    condition: Condition | None


def _successor(prefix: bytes) -> bytes:
    """The smallest byte string greater than every string that starts with ``prefix``."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return b"\xff" * (len(prefix) + 1)
    return stripped[:-1] + bytes((stripped[-1] + 1,))


def _check_condition(condition: object) -> Condition | None:
    if condition is not None and not callable(condition):
        raise ValidationError(f"condition must be a callable or None, not {condition!r}")
    return condition


class Table:
    """One table of a store. Cheap to create; holds no transaction."""

    def __init__(self, store: Store, tdef: TableDef) -> None:
        self._store = store
        self._def = tdef
        self.name = tdef.name
        self.partition_key = tdef.partition_key
        self.sort_key = tdef.sort_key
        self._prefix = encode_value(tdef.name, "table name")
        self._two_keys = tdef.sort_key is not None

    def __repr__(self) -> str:
        return (f"<Table {self.name!r} partition_key={self.partition_key!r} "
                f"sort_key={self.sort_key!r}>")

    # -- keys --------------------------------------------------------------------------

    def _key(self, pk: Any, sk: Any) -> tuple[bytes, tuple[Any, ...]]:
        values: tuple[Any, ...]
        if self._two_keys:
            if sk is None:
                raise ValidationError(
                    f"table {self.name!r} needs a sort key value for {self.sort_key!r}"
                )
            values = (pk, sk)
        else:
            if sk is not None:
                raise ValidationError(f"table {self.name!r} has no sort key, but one was given")
            values = (pk,)
        key = item_key(self._prefix, pk, sk, self.partition_key, self.sort_key)
        if len(key) > _MAX_KEY:
            raise ValidationError(f"table {self.name!r}: key is {len(key)} bytes encoded, "
                                  f"more than the {_MAX_KEY} LMDB allows")
        return key, values

    def _item_key(self, item: Mapping[str, Any]) -> tuple[bytes, tuple[Any, ...]]:
        if self.partition_key not in item:
            raise ValidationError(
                f"item for table {self.name!r} lacks its partition key {self.partition_key!r}"
            )
        sk = None
        if self.sort_key is not None:
            if self.sort_key not in item:
                raise ValidationError(
                    f"item for table {self.name!r} lacks its sort key {self.sort_key!r}"
                )
            sk = item[self.sort_key]
        return self._key(item[self.partition_key], sk)

    # -- building operations (shared with Batch) ----------------------------------------

    def _put_op(self, item: Mapping[str, Any], condition: object) -> _Op:
        if type(item) is not dict and not isinstance(item, Mapping):
            raise ValidationError(f"item must be a dict, not {type(item).__name__}")
        attrs = dict(item)
        codec.check_attrs(attrs, self.name, _in_table=True)
        try:
            key, values = self._key(attrs[self.partition_key],
                                    None if self.sort_key is None else attrs[self.sort_key])
        except KeyError:
            key, values = self._item_key(attrs)  # raises, naming the missing key attribute
        return _Op("P", self._def, key, values, attrs, (),
                   None if condition is None else _check_condition(condition))

    def _update_op(
        self, pk: Any, sk: Any, set_: Mapping[str, Any] | None, remove: Iterable[str] | None,
        condition: object,
    ) -> _Op:
        key, values = self._key(pk, sk)
        if set_ is None:
            set_ = {}
        if not isinstance(set_, Mapping):
            raise ValidationError(f"set= must be a dict, not {type(set_).__name__}")
        if remove is None:
            remove = ()
        if isinstance(remove, (str, bytes)) or not isinstance(remove, Iterable):
            raise ValidationError(f"remove= must be a list of attribute names, not {remove!r}")
        removed = tuple(remove)
        where = f"table {self.name!r} update"
        codec.check_attrs(set_, where)
        for name in removed:
            codec.check_attr_name(name, where)
        keys = {self.partition_key, self.sort_key}
        for name in (*set_, *removed):
            if name in keys:
                raise ValidationError(f"{where}: {name!r} is a key attribute and cannot change")
        both = set(set_).intersection(removed)
        if both:
            raise ValidationError(f"{where}: {sorted(both)} both set and removed")
        attrs = {self.partition_key: pk}
        if self.sort_key is not None:
            attrs[self.sort_key] = sk
        attrs.update(set_)
        return _Op("U", self._def, key, values, attrs, tuple(dict.fromkeys(removed)),
                   _check_condition(condition))

    def _delete_op(self, pk: Any, sk: Any, condition: object) -> _Op:
        key, values = self._key(pk, sk)
        return _Op("D", self._def, key, values, {}, (), _check_condition(condition))

    # -- the API -----------------------------------------------------------------------

    def put(self, item: Mapping[str, Any], condition: Condition | None = None) -> None:
        """Create or replace an item (every attribute not in ``item`` is gone).

        :param condition: ``f(current_item_or_None) -> bool`` run in the write transaction.
        :raises ConditionFailed: if it returns false; nothing is written.
        """
        self._store._commit_local([self._put_op(item, condition)])

    def get(self, pk: KeyValue, sk: KeyValue | None = None) -> dict[str, Any] | None:
        """The item with this key, or ``None``."""
        key, _ = self._key(pk, sk)
        env = self._store._e()
        raw = env.get(key, env.items)
        return None if raw is None else codec.visible_from_raw(raw)

    def update(
        self, pk: KeyValue, sk: KeyValue | None = None, *,
        set: Mapping[str, Any] | None = None,  # noqa: A002 - the contract's name
        remove: Iterable[str] | None = None, condition: Condition | None = None,
    ) -> dict[str, Any]:
        """Set and remove attributes (creating the item if missing); return the new item."""
        result = self._store._commit_local([self._update_op(pk, sk, set, remove, condition)])[0]
        assert result is not None  # an update always leaves the key attributes present
        return result

    def delete(self, pk: KeyValue, sk: KeyValue | None = None,
               condition: Condition | None = None) -> None:
        """Delete an item; deleting a missing item is not an error."""
        self._store._commit_local([self._delete_op(pk, sk, condition)])

    def query(
        self, pk: KeyValue, *, begins_with: str | bytes | None = None,
        between: tuple[KeyValue, KeyValue] | None = None,
        gt: KeyValue | None = None, gte: KeyValue | None = None,
        lt: KeyValue | None = None, lte: KeyValue | None = None,
        reverse: bool = False, limit: int | None = None, index: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Items of one partition in sort-key order, optionally within a sort-key condition.

        One cursor range scan. Allowed: ``begins_with`` alone, ``between=(lo, hi)`` alone,
        or at most one of ``gt``/``gte`` with at most one of ``lt``/``lte``.
        The iterator reads in chunks, so it holds no transaction between items.

        With ``index=NAME`` the partition and the conditions are those of the secondary index
        (:class:`engine.Index`): items come in index sort-key order (ties in table key order)
        and hold what the index projects.
        """
        reader = None
        if index is None:
            pk_name, sk_attr = self.partition_key, self.sort_key
            check_key_value(pk, pk_name)
            prefix = self._prefix + encode_value(pk, pk_name)
        else:
            d = index_mod.queryable(self._store, self.name, index)
            pk_name, sk_attr = d.index.partition_key, d.index.sort_key
            check_key_value(pk, pk_name)
            prefix = d.prefix + encode_value(pk, pk_name)
            reader = index_mod.read_rows(d, self._store._e())
        _check_limit(limit)
        if not isinstance(reverse, bool):
            raise ValidationError(f"reverse must be a bool, not {reverse!r}")
        conds = {n: v for n, v in (("begins_with", begins_with), ("between", between),
                                    ("gt", gt), ("gte", gte), ("lt", lt), ("lte", lte))
                 if v is not None}
        if conds and sk_attr is None:
            what = f"table {self.name!r}" if index is None else f"index {index!r}"
            raise ValidationError(f"{what} has no sort key to put conditions on")
        if ("begins_with" in conds or "between" in conds) and len(conds) > 1:
            raise ValidationError(
                "begins_with and between cannot be combined with other conditions"
            )
        if "gt" in conds and "gte" in conds or "lt" in conds and "lte" in conds:
            raise ValidationError("give at most one lower (gt/gte) and one upper (lt/lte) bound")
        sk_name = sk_attr or "sort key"
        start, start_incl = prefix, True
        stop, stop_incl = _successor(prefix), False
        if begins_with is not None:
            start = prefix + encode_prefix(begins_with, sk_name)
            stop = _successor(start)
        if between is not None:
            if not isinstance(between, (tuple, list)) or len(between) != 2:
                raise ValidationError(f"between must be a (low, high) pair, not {between!r}")
            lo, hi = (prefix + encode_value(_sk(v, sk_name), sk_name) for v in between)
            if lo > hi:
                raise ValidationError(f"between: low {between[0]!r} is above high {between[1]!r}")
            start, stop, stop_incl = lo, hi, True
        if gt is not None or gte is not None:
            bound = gt if gt is not None else gte
            start = prefix + encode_value(_sk(bound, sk_name), sk_name)
            start_incl = gte is not None
        if lt is not None or lte is not None:
            bound = lt if lt is not None else lte
            stop = prefix + encode_value(_sk(bound, sk_name), sk_name)
            stop_incl = lte is not None
        if reader is not None:
            # index entry keys continue past the sort key (the item key follows): a bound on
            # the sort key covers every entry that starts with it
            if not start_incl:
                start, start_incl = _successor(start), True
            if stop_incl:
                stop, stop_incl = _successor(stop), False
        return _range(self._store, start, stop, reverse=reverse, limit=limit,
                      start_inclusive=start_incl, stop_inclusive=stop_incl, reader=reader)

    def indexes(self) -> list[Index]:
        """The table's secondary indexes (ready or being built), by name."""
        return index_mod.indexes(self._store, self.name)

    def scan(self, limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Every item of the table in key order (chunked; not one point-in-time snapshot)."""
        _check_limit(limit)
        return _range(self._store, self._prefix, _successor(self._prefix), reverse=False,
                      limit=limit)


def _sk(value: Any, name: str) -> Any:
    check_key_value(value, name)
    return value


def _range(
    store: Store, start: bytes, stop: bytes, *, reverse: bool, limit: int | None,
    start_inclusive: bool = True, stop_inclusive: bool = False,
    reader: Callable[..., list[tuple[bytes, Any]]] | None = None,
) -> Iterator[dict[str, Any]]:
    """Visible items with keys in the range, in key order, a chunk per read transaction.

    ``reader`` (an index's, :func:`engine.index.read_rows`) reads ``(key, item or None)``
    rows instead of the table's ``(key, state)``.
    """
    env = store._e()
    produced = 0
    lo, lo_incl, hi, hi_incl = start, start_inclusive, stop, stop_inclusive
    while True:
        want = CHUNK if limit is None else min(CHUNK, limit - produced)
        if want <= 0:
            return
        # twice the items still wanted: some of the rows read may be tombstones (index entries
        # never are)
        most = want * 2 if reader is None else want
        rows: list[tuple[bytes, Any]]
        if reader is None:
            rows = env.read(partial(_range_rows, db=env.items, lo=lo, lo_incl=lo_incl, hi=hi,
                                    hi_incl=hi_incl, reverse=reverse, most=most))
        else:
            rows = env.read(partial(reader, lo=lo, lo_incl=lo_incl, hi=hi, hi_incl=hi_incl,
                                    reverse=reverse, most=most))
        if store.closed:
            raise StoreClosed(f"store {store.path} was closed during iteration")
        for k, raw in rows:
            item: dict[str, Any] | None = (codec.visible_from_raw(raw) if reader is None
                                           else raw)
            # the next chunk resumes after the last row read, whatever it held
            if reverse:
                hi, hi_incl = k, False
            else:
                lo, lo_incl = k, False
            if item is not None:
                yield item
                produced += 1
                if limit is not None and produced >= limit:
                    return
        if len(rows) < most:
            return


def _range_rows(
    txn: Txn, *, db: Any, lo: bytes, lo_incl: bool, hi: bytes, hi_incl: bool, reverse: bool,
    most: int,
) -> list[tuple[bytes, bytes]]:
    """Up to ``most`` stored ``(key, state)`` rows between the bounds, in scan order."""
    cur = txn.cursor(db=db)
    out: list[tuple[bytes, bytes]] = []
    if not reverse:
        ok = cur.set_range(lo)
        while ok:
            k = cur.key()
            if k > hi or (k == hi and not hi_incl):
                break
            if k != lo or lo_incl:
                out.append((bytes(k), bytes(cur.value())))
                if len(out) >= most:
                    break
            ok = cur.next()
    else:
        ok = cur.set_range(hi)
        if not ok:
            ok = cur.last()
        while ok:
            k = cur.key()
            if k < lo or (k == lo and not lo_incl):
                break
            if k < hi or (k == hi and hi_incl):
                out.append((bytes(k), bytes(cur.value())))
                if len(out) >= most:
                    break
            ok = cur.prev()
    return out


class Batch:
    """Writes collected in a ``with store.batch() as b:`` block, committed atomically at its end.

    All writes share one version and one transaction id and replicate as one unit. Conditions
    run at commit, inside the transaction; if one fails, or the block raises, nothing is
    written. An item may appear once per batch (as in DynamoDB transactions).
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._ops: list[_Op] = []
        self._keys: set[bytes] = set()
        self._done = False
        self._by_name: dict[str, Table] = {}  # tables named by str, looked up once per batch

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._done:
            return
        self._done = True
        if exc_type is None and self._ops:
            self._store._commit_local(self._ops)

    def __len__(self) -> int:
        return len(self._ops)

    def _add(self, op: _Op) -> None:
        if self._done:
            raise ValidationError("this batch has already been committed")
        if op.key in self._keys:
            raise ValidationError(
                f"batch writes {op.tdef.name} {op.key_values} twice; one write per item"
            )
        if len(self._ops) >= MAX_BATCH_OPS:
            raise ValidationError(f"a batch holds at most {MAX_BATCH_OPS} writes")
        self._keys.add(op.key)
        self._ops.append(op)

    def _table(self, table: str | Table) -> Table:
        if isinstance(table, Table):
            return table
        t = self._by_name.get(table) if isinstance(table, str) else None
        if t is None:
            t = self._store.table(table)
            self._by_name[table] = t
        return t

    def put(self, table: str | Table, item: Mapping[str, Any],
            condition: Condition | None = None) -> None:
        """Add a put of ``item`` to ``table``."""
        t = self._by_name.get(table) if type(table) is str else None  # the hot path of bulk loads
        if type(item) is not dict and not isinstance(item, Mapping):
            raise ValidationError(f"item must be a dict, not {type(item).__name__}")
        # captured (deep-copied) before validation: later mutation cannot reach the commit
        op = (t or self._table(table))._put_op(codec.capture(dict(item)), condition)
        keys = self._keys
        if self._done or op.key in keys or len(keys) >= MAX_BATCH_OPS:
            self._add(op)  # raises, saying which rule the write broke
        keys.add(op.key)
        self._ops.append(op)

    def update(
        self, table: str | Table, pk: KeyValue, sk: KeyValue | None = None, *,
        set: Mapping[str, Any] | None = None,  # noqa: A002
        remove: Iterable[str] | None = None, condition: Condition | None = None,
    ) -> None:
        """Add an update (upsert) of one item."""
        captured = codec.capture(dict(set)) if isinstance(set, Mapping) else set
        self._add(self._table(table)._update_op(pk, sk, captured, remove, condition))

    def delete(self, table: str | Table, pk: KeyValue, sk: KeyValue | None = None,
               condition: Condition | None = None) -> None:
        """Add a delete of one item."""
        self._add(self._table(table)._delete_op(pk, sk, condition))
