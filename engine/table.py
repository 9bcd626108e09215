"""Table: the item API (put, get, update, delete, query, scan, pages) over a Store.

Every argument is checked here, before any transaction begins, so bad input raises
``ValidationError`` naming what is wrong and nothing is written. Expressions (DynamoDB's
language, :mod:`engine.expr`) are parsed (cached), bound to the call's ``names=``/``values=``
and checked here too; what depends on the current item (conditions, update plans) runs inside
the write transaction (:mod:`engine.writepath`). Reads are short read transactions: a point
get, or pages of a key range (:mod:`engine.pages`), so no iterator holds a transaction
between items.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, overload

from . import codec, ttl
from . import index as index_mod
from .checks import check_limit as _check_limit
from .errors import TableNotFound, ValidationError
from .expr import Expressions, KeyCondition, Path, compile_cond, key_parts, plan_update, project
from .expr import compare as _compare
from .expr import update_actions as _keyword_actions
from .expr.numbers import is_number
from .keys import KeyValue, check_key_value, encode_prefix, encode_value, item_key
from .pages import KeyRange, Page, PageQuery, iterate, read_page, successor
from .writepath import RETURN_VALUES, WriteOp, commit_local

if TYPE_CHECKING:
    from .changes import TableDef
    from .context import Context
    from .env import Txn
    from .index import Index, IndexDef

__all__ = ["Condition", "Table"]

Condition = Callable[[dict[str, Any] | None], bool]
Names = Mapping[str, str] | None
Values = Mapping[str, Any] | None
_MAX_KEY = codec.MAX_KEY_BYTES
MAX_SEGMENTS = 1_000_000
_WHOLE_INDEX = object()  # _index_query's pk for a scan of the whole index


def _binder(names: Names, values: Values) -> Expressions:
    ex = Expressions(names, values)
    for name, value in ex.values.items():
        codec.check_value(value, f"values {name}")
    return ex


def _condition(condition: object, ex: Expressions | None) -> Condition | None:
    """A condition string bound and compiled, a callable as it is, or ``None``."""
    if condition is None or (callable(condition) and not isinstance(condition, str)):
        return condition
    if isinstance(condition, str):
        assert ex is not None
        return compile_cond(ex.bind_condition(condition))
    raise ValidationError(f"condition must be a ConditionExpression string, a callable or "
                          f"None, not {condition!r}")


def _returning(value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValidationError(f"returning must be one of {', '.join(allowed)}, not {value!r}")
    assert isinstance(value, str)
    return value


def _names(value: object, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValidationError(f"{what} must be a list of attribute names, not {value!r}")
    return tuple(value)


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(f"{what} must be a dict, not {type(value).__name__}")
    return value


def _sk(value: Any, name: str) -> Any:
    check_key_value(value, name)
    return value


class Table:
    """One table of a store. Cheap to create; holds no transaction."""

    def __init__(self, ctx: Context, tdef: TableDef) -> None:
        self._ctx = ctx
        self._def = tdef
        self.name = tdef.name
        self.partition_key = tdef.partition_key
        self.sort_key = tdef.sort_key
        self._prefix = encode_value(tdef.name, "table name")
        self._two_keys = tdef.sort_key is not None
        self._key_names = (tdef.partition_key,) if tdef.sort_key is None else \
            (tdef.partition_key, tdef.sort_key)
        self._drops = ctx.env.drops  # shared with every Store of this process on the path
        self._generation = self._drops.get(tdef.name, 0)

    def __repr__(self) -> str:
        return (f"<Table {self.name!r} partition_key={self.partition_key!r} "
                f"sort_key={self.sort_key!r}>")

    # -- keys --------------------------------------------------------------------------

    def _key(self, pk: Any, sk: Any) -> tuple[bytes, tuple[Any, ...]]:
        values: tuple[Any, ...]
        if self._drops and self._drops.get(self.name, 0) != self._generation:
            raise TableNotFound(f"table {self.name!r} was deleted (store.table() gives the "
                                "table of that name now, if it was created again)")
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

    def _key_of(self, key: bytes, item: dict[str, Any]) -> dict[str, Any]:
        return {n: item[n] for n in self._key_names}

    def _start(self, start: object) -> bytes | None:
        """An exclusive start key (DynamoDB's ExclusiveStartKey) as a stored key."""
        if start is None:
            return None
        if not isinstance(start, Mapping) or set(start) != set(self._key_names):
            raise ValidationError(f"The provided starting key is invalid: start must be a dict "
                                  f"of exactly the key attributes {list(self._key_names)}, not "
                                  f"{start!r}")
        return self._item_key(start)[0]

    # -- building operations (shared with Batch) ----------------------------------------

    def _put_op(self, item: Mapping[str, Any], condition: object, names: Names = None,
                values: Values = None, returning: str = "NONE") -> WriteOp:
        if type(item) is not dict and not isinstance(item, Mapping):
            raise ValidationError(f"item must be a dict, not {type(item).__name__}")
        attrs = dict(item)
        codec.check_attrs(attrs, self.name, _in_table=True)
        try:
            key, kv = self._key(attrs[self.partition_key],
                                None if self.sort_key is None else attrs[self.sort_key])
        except KeyError:
            key, kv = self._item_key(attrs)  # raises, naming the missing key attribute
        if condition is None and names is None and values is None:
            return WriteOp("P", self._def, key, kv, attrs, (), None, None, returning)
        ex = _binder(names, values)
        cond = _condition(condition, ex)
        ex.finish()
        return WriteOp("P", self._def, key, kv, attrs, (), cond, None, returning)

    def _update_op(
        self, pk: Any, sk: Any, set_: Mapping[str, Any] | None, remove: Iterable[str] | None,
        condition: object, *, expression: str | None = None, names: Names = None,
        values: Values = None, add: Mapping[str, Any] | None = None,
        delete: Mapping[str, Any] | None = None, returning: str = "ALL_NEW",
    ) -> WriteOp:
        key, kv = self._key(pk, sk)
        attrs = {self.partition_key: pk}
        if self.sort_key is not None:
            attrs[self.sort_key] = sk
        ex = None if names is None and values is None and not isinstance(condition, str) \
            and expression is None else _binder(names, values)
        cond = _condition(condition, ex)
        if expression is not None:
            if set_ is not None or remove is not None or add is not None or delete is not None:
                raise ValidationError("expression= cannot be combined with set=, remove=, "
                                      "add= or delete=")
            assert ex is not None
            bound = ex.bind_update(expression, self._key_names)
            ex.finish()
            return WriteOp("U", self._def, key, kv, attrs, (), cond,
                           partial(plan_update, bound), returning)
        if ex is not None:
            ex.finish()
        set_ = set_ if type(set_) is dict else _mapping(set_, "set=")
        removed = () if remove is None else _names(remove, "remove=")
        where = f"table {self.name!r} update"
        if add is None and delete is None:
            # the plain keyword update (the hot path): set= values and remove= names
            codec.check_attrs(set_, where)
            for name in removed:
                codec.check_attr_name(name, where)
            for name in self._key_names:
                if name in set_ or name in removed:
                    raise ValidationError(
                        f"{where}: {name!r} is a key attribute and cannot change")
            if removed and not set_.keys().isdisjoint(removed):
                raise ValidationError(
                    f"{where}: {sorted(set_.keys() & set(removed))} both set and removed")
            attrs.update(set_)
            return WriteOp("U", self._def, key, kv, attrs, tuple(dict.fromkeys(removed)),
                           cond, None, returning)
        add, delete = _mapping(add, "add="), _mapping(delete, "delete=")
        codec.check_attrs(set_, where)
        codec.check_attrs(add, where)
        codec.check_attrs(delete, where)
        for name in removed:
            codec.check_attr_name(name, where)
        self._check_keyword_clauses(set_, removed, add, delete, where)
        if add or delete:
            actions = _keyword_actions(set_, removed, add, delete)
            return WriteOp("U", self._def, key, kv, attrs, (), cond,
                           lambda old: actions, returning)
        attrs.update(set_)
        return WriteOp("U", self._def, key, kv, attrs, tuple(dict.fromkeys(removed)), cond,
                       None, returning)

    def _check_keyword_clauses(self, set_: Mapping[str, Any], removed: tuple[str, ...],
                               add: Mapping[str, Any], delete: Mapping[str, Any],
                               where: str) -> None:
        named = [*set_, *dict.fromkeys(removed), *add, *delete]
        for name in named:
            if name in self._key_names:
                raise ValidationError(f"{where}: {name!r} is a key attribute and cannot change")
        if len(set(named)) < len(named):
            twice = sorted(n for n, count in Counter(named).items() if count > 1)
            if set(set_) & set(removed):
                raise ValidationError(f"{where}: {twice} both set and removed")
            raise ValidationError(f"{where}: {twice} named in more than one clause")
        for name, v in add.items():
            if not is_number(v) and not isinstance(v, (set, frozenset)):
                raise ValidationError(f"{where}: add= {name!r} must be a number or a set, "
                                      f"not {type(v).__name__}")
        for name, v in delete.items():
            if not isinstance(v, (set, frozenset)):
                raise ValidationError(f"{where}: delete= {name!r} must be a set, "
                                      f"not {type(v).__name__}")

    def _delete_op(self, pk: Any, sk: Any, condition: object, names: Names = None,
                   values: Values = None, returning: str = "NONE") -> WriteOp:
        key, kv = self._key(pk, sk)
        ex = None if names is None and values is None and not isinstance(condition, str) \
            else _binder(names, values)
        cond = _condition(condition, ex)
        if ex is not None:
            ex.finish()
        return WriteOp("D", self._def, key, kv, {}, (), cond, None, returning)

    def _check_op(self, pk: Any, sk: Any, condition: object, names: Names = None,
                  values: Values = None) -> WriteOp:
        if condition is None:
            raise ValidationError("check needs a condition")
        op = self._delete_op(pk, sk, condition, names, values)
        return op._replace(kind="C")

    # -- writes ------------------------------------------------------------------------

    def put(self, item: Mapping[str, Any], condition: Condition | str | None = None, *,
            names: Names = None, values: Values = None,
            returning: str = "NONE") -> dict[str, Any] | None:
        """Create or replace an item (every attribute not in ``item`` is gone).

        :param condition: a ConditionExpression (placeholders in ``names``/``values``) or
            ``f(current_item_or_None) -> bool``, evaluated in the write transaction.
        :param returning: ``"NONE"`` (returns ``None``) or ``"ALL_OLD"`` (the item replaced).
        :raises ConditionFailed: if it is false (``.item`` holds the item); nothing written.
        """
        r = _returning(returning, ("NONE", "ALL_OLD"))
        return commit_local(self._ctx, [self._put_op(item, condition, names, values, r)])[0]

    @overload
    def update(self, pk: KeyValue, sk: KeyValue | None = None, *,
               set: Mapping[str, Any] | None = None,  # noqa: A002
               remove: Iterable[str] | None = None, condition: Condition | str | None = None,
               expression: str | None = None, names: Names = None, values: Values = None,
               add: Mapping[str, Any] | None = None, delete: Mapping[str, Any] | None = None,
               returning: Literal["ALL_NEW"] = "ALL_NEW") -> dict[str, Any]: ...

    @overload
    def update(self, pk: KeyValue, sk: KeyValue | None = None, *,
               set: Mapping[str, Any] | None = None,  # noqa: A002
               remove: Iterable[str] | None = None, condition: Condition | str | None = None,
               expression: str | None = None, names: Names = None, values: Values = None,
               add: Mapping[str, Any] | None = None, delete: Mapping[str, Any] | None = None,
               returning: str) -> dict[str, Any] | None: ...

    def update(
        self, pk: KeyValue, sk: KeyValue | None = None, *,
        set: Mapping[str, Any] | None = None,  # noqa: A002 - the contract's name
        remove: Iterable[str] | None = None, condition: Condition | str | None = None,
        expression: str | None = None, names: Names = None, values: Values = None,
        add: Mapping[str, Any] | None = None, delete: Mapping[str, Any] | None = None,
        returning: str = "ALL_NEW",
    ) -> dict[str, Any] | None:
        """Update an item (creating it if missing, as DynamoDB's UpdateItem does).

        Either the keyword clauses (``set=`` values, ``remove=`` names, ``add=`` numbers or
        sets, ``delete=`` sets, all top-level attributes) or an UpdateExpression
        (``expression="SET a.b = :v REMOVE c ADD n :one"``), not both.

        :param returning: ``"ALL_NEW"`` (default: the new item), ``"ALL_OLD"``,
            ``"UPDATED_OLD"``, ``"UPDATED_NEW"`` (the updated paths only) or ``"NONE"``.
        :raises ConditionFailed: if the condition is false; nothing is written.
        """
        r = _returning(returning, RETURN_VALUES)
        op = self._update_op(pk, sk, set, remove, condition, expression=expression,
                             names=names, values=values, add=add, delete=delete, returning=r)
        return commit_local(self._ctx, [op])[0]

    def delete(self, pk: KeyValue, sk: KeyValue | None = None,
               condition: Condition | str | None = None, *, names: Names = None,
               values: Values = None, returning: str = "NONE") -> dict[str, Any] | None:
        """Delete an item; deleting a missing item is not an error.

        :param returning: ``"NONE"`` (returns ``None``) or ``"ALL_OLD"`` (the item deleted).
        """
        r = _returning(returning, ("NONE", "ALL_OLD"))
        return commit_local(self._ctx, [self._delete_op(pk, sk, condition, names, values,
                                                          r)])[0]

    # -- reads -------------------------------------------------------------------------

    def get(self, pk: KeyValue, sk: KeyValue | None = None, *, projection: str | None = None,
            names: Names = None) -> dict[str, Any] | None:
        """The item with this key, or ``None``; ``projection`` picks attributes and paths."""
        key, _ = self._key(pk, sk)
        paths = None
        if projection is not None or names is not None:
            ex = _binder(names, None)
            paths = None if projection is None else ex.bind_projection(projection)
            ex.finish()
        env = self._ctx.env
        raw = env.get(key, env.items)
        item = None if raw is None else ttl.hide_expired(self._ctx, self.name,
                                                         codec.visible_from_raw(raw))
        return item if paths is None or item is None else project(item, paths)

    def _read_exprs(self, filter: str | None, projection: str | None, names: Names,
                    values: Values, key: str | None = None
                    ) -> tuple[Condition | None, tuple[Path, ...] | None, KeyCondition | None]:
        if filter is None and projection is None and key is None and names is None \
                and values is None:
            return None, None, None
        ex = _binder(names, values)
        kc = None if key is None else key_parts(
            ex.bind_condition(key, "KeyConditionExpression"))
        keep = None if filter is None else compile_cond(
            ex.bind_condition(filter, "FilterExpression"))
        paths = None if projection is None else ex.bind_projection(projection)
        ex.finish()
        return keep, paths, kc

    def _query(
        self, pk: Any, begins_with: Any, between: Any, gt: Any, gte: Any, lt: Any, lte: Any,
        reverse: object, key: str | None, filter: str | None, projection: str | None,
        names: Names, values: Values, index: str | None = None,
    ) -> tuple[PageQuery, IndexDef | None]:
        d = None if index is None else index_mod.queryable(self._ctx, self.name, index)
        pk_name = self.partition_key if d is None else d.index.partition_key
        check_key_value(pk, pk_name)
        if not isinstance(reverse, bool):
            raise ValidationError(f"reverse must be a bool, not {reverse!r}")
        keep, paths, kc = self._read_exprs(filter, projection, names, values, key)
        conds = {n: v for n, v in (("begins_with", begins_with), ("between", between),
                                    ("gt", gt), ("gte", gte), ("lt", lt), ("lte", lte))
                 if v is not None}
        if kc is not None:
            if conds:
                raise ValidationError("key= cannot be combined with begins_with, between, "
                                      "gt, gte, lt or lte")
            conds = self._key_bounds(pk, kc, d)
        if d is None:
            rng = self.sort_range(self._prefix + encode_value(pk, pk_name), conds)
            return PageQuery(rng, self._key_of, reverse, keep, paths,
                             expired=ttl.page_expiry(self._ctx, self.name)), None
        return self._index_query(d, pk, conds, reverse, keep, paths), d

    def _index_query(self, d: IndexDef, pk: Any, conds: Mapping[str, Any], reverse: bool,
                     keep: Condition | None, paths: tuple[Path, ...] | None) -> PageQuery:
        """A page query over index ``d``: entries ``prefix enc(ipk) [enc(isk)] item-key``."""
        ix = d.index
        if pk is _WHOLE_INDEX:
            rng = KeyRange.prefix(d.prefix)
        else:
            if conds and ix.sort_key is None:
                raise ValidationError(f"index {ix.name!r} has no sort key to put conditions on")
            rng = sort_range(d.prefix + encode_value(pk, ix.partition_key), conds,
                             ix.sort_key or "sort key")
        # entry keys continue past the sort key (the item key follows): a bound on the sort
        # key covers every entry that starts with it
        lo, lo_incl, hi, hi_incl = rng.lo, rng.lo_incl, rng.hi, rng.hi_incl
        if not lo_incl:
            lo, lo_incl = successor(lo), True
        if hi_incl:
            hi, hi_incl = successor(hi), False
        names = tuple(dict.fromkeys((*self._key_names, ix.partition_key,
                                     *((ix.sort_key,) if ix.sort_key else ()))))
        env = self._ctx.env
        all_ = ix.projection == "ALL"

        def load(txn: Txn, key: bytes, raw: bytes) -> dict[str, Any] | None:
            if not all_:
                return codec.loads(raw)  # type: ignore[no-any-return]
            state = txn.get(raw, db=env.items)
            return None if state is None else codec.visible_from_raw(bytes(state))

        def key_of(key: bytes, item: dict[str, Any]) -> dict[str, Any]:
            return {n: item[n] for n in names}

        return PageQuery(KeyRange(lo, hi, lo_incl, hi_incl), key_of, reverse, keep, paths,
                         None, env.idx, load, ttl.page_expiry(self._ctx, self.name, d))

    def _index_start(self, d: IndexDef, start: object) -> bytes | None:
        """An exclusive start key of an index page: the index keys and the table keys."""
        if start is None:
            return None
        ix = d.index
        want = {*self._key_names, ix.partition_key, *((ix.sort_key,) if ix.sort_key else ())}
        if not isinstance(start, Mapping) or set(start) != want:
            raise ValidationError(f"The provided starting key is invalid: start must be a dict "
                                  f"of exactly the index and table key attributes "
                                  f"{sorted(want)}, not {start!r}")
        item_key_ = self._item_key(start)[0]
        entry = d.prefix + encode_value(start[ix.partition_key], ix.partition_key)
        if ix.sort_key is not None:
            entry += encode_value(start[ix.sort_key], ix.sort_key)
        return entry + item_key_[d.tlen:]

    def indexes(self) -> list[Index]:
        """The table's secondary indexes (ready or being built), by name."""
        return index_mod.indexes(self._ctx, self.name)

    def _key_bounds(self, pk: Any, kc: KeyCondition, d: IndexDef | None = None
                    ) -> dict[str, Any]:
        """The keyword bounds a KeyConditionExpression means (checking its partition part)."""
        pk_name, sk_name = (self.partition_key, self.sort_key) if d is None else \
            (d.index.partition_key, d.index.sort_key)
        part = kc.part(pk_name)
        if part is not None and (part.op != "=" or not _compare("=", part.values[0], pk)):
            raise ValidationError(f"Query key condition not supported: the partition key "
                                  f"condition must be {pk_name} = the pk given")
        others = [p for p in kc.parts if p.attribute != pk_name]
        if not others:
            return {}
        (sort,) = others
        if sort.attribute != sk_name:
            what = f"table {self.name!r}" if d is None else f"index {d.index.name!r}"
            raise ValidationError(f"Query key condition not supported: {sort.attribute!r} is "
                                  f"not a key attribute of {what}")
        op, vals = sort.op, sort.values
        if op == "=":
            return {"between": (vals[0], vals[0])}
        if op == "BETWEEN":
            return {"between": vals}
        return {{"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}.get(op, op): vals[0]}

    def sort_range(self, prefix: bytes, conds: Mapping[str, Any]) -> KeyRange:
        """The stored-key range of one partition (``prefix``) under keyword sort-key bounds.

        Allowed: ``begins_with`` alone, ``between=(lo, hi)`` alone, or at most one of
        ``gt``/``gte`` with at most one of ``lt``/``lte``. Secondary indexes reuse it.
        """
        if conds and self.sort_key is None:
            raise ValidationError(f"table {self.name!r} has no sort key to put conditions on")
        return sort_range(prefix, conds, self.sort_key or "sort key")

    def query(
        self, pk: KeyValue, *, begins_with: str | bytes | None = None,
        between: tuple[KeyValue, KeyValue] | None = None,
        gt: KeyValue | None = None, gte: KeyValue | None = None,
        lt: KeyValue | None = None, lte: KeyValue | None = None,
        reverse: bool = False, limit: int | None = None, index: str | None = None,
        key: str | None = None, filter: str | None = None,  # noqa: A002
        projection: str | None = None, names: Names = None, values: Values = None,
    ) -> Iterator[dict[str, Any]]:
        """Items of one partition in sort-key order, optionally within a sort-key condition.

        The condition is the keyword bounds, or ``key=`` (a KeyConditionExpression on the sort
        key, optionally with ``pk = :v``). ``filter`` drops items after they are read,
        ``projection`` picks paths; ``limit`` caps the items yielded. The iterator reads in
        pages, so it holds no transaction between items.

        With ``index=NAME`` the partition and the conditions are those of the secondary index
        (:class:`engine.Index`): items come in index sort-key order (ties in table key order)
        and hold what the index projects.
        """
        _check_limit(limit)
        q, _ = self._query(pk, begins_with, between, gt, gte, lt, lte, reverse, key, filter,
                           projection, names, values, index)
        return iterate(self._ctx, q, limit=limit)

    def query_page(
        self, pk: KeyValue, *, begins_with: str | bytes | None = None,
        between: tuple[KeyValue, KeyValue] | None = None,
        gt: KeyValue | None = None, gte: KeyValue | None = None,
        lt: KeyValue | None = None, lte: KeyValue | None = None,
        reverse: bool = False, limit: int | None = None, index: str | None = None,
        key: str | None = None, filter: str | None = None,  # noqa: A002
        projection: str | None = None, names: Names = None, values: Values = None,
        start: Mapping[str, Any] | None = None,
    ) -> Page:
        """One page of :meth:`query`: ``limit`` counts items read before the filter, a page
        ends after about 1 MB, and ``Page.last_key`` (``None`` when nothing is left) resumes
        it as ``start=`` (for an index: its keys and the table's)."""
        _check_limit(limit)
        q, d = self._query(pk, begins_with, between, gt, gte, lt, lte, reverse, key, filter,
                           projection, names, values, index)
        after = self._start(start) if d is None else self._index_start(d, start)
        pk_name = self.partition_key if d is None else d.index.partition_key
        if start is not None and not _compare("=", start[pk_name], pk):
            raise ValidationError("The provided starting key is invalid: its partition key "
                                  "is not the one queried")
        return read_page(self._ctx, q, after=after, limit=limit)[0]

    def _scan(self, filter: str | None, projection: str | None, names: Names,
              values: Values, segment: object, total_segments: object,
              index: str | None = None) -> PageQuery:
        keep, paths, _ = self._read_exprs(filter, projection, names, values)
        part = None
        if segment is not None or total_segments is not None:
            if not (isinstance(total_segments, int) and not isinstance(total_segments, bool)
                    and 1 <= total_segments <= MAX_SEGMENTS):
                raise ValidationError(f"total_segments must be an int in 1..{MAX_SEGMENTS} "
                                      f"with segment=, not {total_segments!r}")
            if not (isinstance(segment, int) and not isinstance(segment, bool)
                    and 0 <= segment < total_segments):
                raise ValidationError(f"segment must be an int in 0..{total_segments - 1}, "
                                      f"not {segment!r}")
            part = (segment, total_segments)
        if index is not None:  # the whole index, in index key order
            d = index_mod.queryable(self._ctx, self.name, index)
            return replace(self._index_query(d, _WHOLE_INDEX, {}, False, keep, paths),
                           segment=part)
        return PageQuery(KeyRange.prefix(self._prefix), self._key_of, False, keep, paths, part,
                         expired=ttl.page_expiry(self._ctx, self.name))

    def scan(self, limit: int | None = None, *, filter: str | None = None,  # noqa: A002
             projection: str | None = None, names: Names = None, values: Values = None,
             segment: int | None = None, total_segments: int | None = None,
             index: str | None = None) -> Iterator[dict[str, Any]]:
        """Every item of the table in key order (paged; not one point-in-time snapshot);
        with ``index=NAME`` every entry of that secondary index, in index key order."""
        _check_limit(limit)
        q = self._scan(filter, projection, names, values, segment, total_segments, index)
        return iterate(self._ctx, q, limit=limit)

    def scan_page(self, limit: int | None = None, *, filter: str | None = None,  # noqa: A002
                  projection: str | None = None, names: Names = None, values: Values = None,
                  start: Mapping[str, Any] | None = None, segment: int | None = None,
                  total_segments: int | None = None, index: str | None = None) -> Page:
        """One page of :meth:`scan` (see :meth:`query_page`). ``segment=i,
        total_segments=n`` reads only part ``i`` of ``n`` disjoint parts (parallel scan)."""
        _check_limit(limit)
        q = self._scan(filter, projection, names, values, segment, total_segments, index)
        after = self._start(start) if index is None else self._index_start(
            index_mod.queryable(self._ctx, self.name, index), start)
        return read_page(self._ctx, q, after=after, limit=limit)[0]


def sort_range(prefix: bytes, conds: Mapping[str, Any], sk_name: str) -> KeyRange:
    """See :meth:`Table.sort_range` (``sk_name`` names the sort key in messages)."""
    if ("begins_with" in conds or "between" in conds) and len(conds) > 1:
        raise ValidationError("begins_with and between cannot be combined with other conditions")
    if "gt" in conds and "gte" in conds or "lt" in conds and "lte" in conds:
        raise ValidationError("give at most one lower (gt/gte) and one upper (lt/lte) bound")
    start, start_incl = prefix, True
    stop, stop_incl = successor(prefix), False
    begins_with, between = conds.get("begins_with"), conds.get("between")
    if begins_with is not None:
        start = prefix + encode_prefix(begins_with, sk_name)
        stop = successor(start)
    if between is not None:
        if not isinstance(between, (tuple, list)) or len(between) != 2:
            raise ValidationError(f"between must be a (low, high) pair, not {between!r}")
        lo, hi = (prefix + encode_value(_sk(v, sk_name), sk_name) for v in between)
        if lo > hi:
            raise ValidationError(f"between: low {between[0]!r} is above high {between[1]!r}")
        start, stop, stop_incl = lo, hi, True
    low = conds.get("gt", conds.get("gte"))
    if low is not None:
        start = prefix + encode_value(_sk(low, sk_name), sk_name)
        start_incl = "gte" in conds
    high = conds.get("lt", conds.get("lte"))
    if high is not None:
        stop = prefix + encode_value(_sk(high, sk_name), sk_name)
        stop_incl = "lte" in conds
    return KeyRange(start, stop, start_incl, stop_incl)
