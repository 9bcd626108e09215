"""The DynamoDB data API on Table and Batch: condition strings, update expressions, returned
values, projections, pages, parallel scans, transactions and get_many."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import engine


def _seq(store: engine.Store) -> int:
    return store.version_vector().get(store.node_id, 0)


def refused(store: engine.Store, call: Callable[[], Any], match: str,
            error: type[Exception] = engine.ValidationError) -> Exception:
    """``call`` raises ``error`` matching ``match`` and changes nothing at all."""
    digest, seq = store.digest(), _seq(store)
    with pytest.raises(error, match=match) as info:
        call()
    assert store.digest() == digest and _seq(store) == seq
    return info.value


# -- conditions ------------------------------------------------------------------------------


def test_condition_strings_on_put_update_delete(users: engine.Table,
                                                store: engine.Store) -> None:
    users.put({"id": 1, "n": 1}, condition="attribute_not_exists(id)")
    err = refused(store, lambda: users.put({"id": 1, "n": 2},
                                           condition="attribute_not_exists(id)"),
                  "condition failed", engine.ConditionFailed)
    assert err.item == {"id": 1, "n": 1}  # type: ignore[attr-defined]
    users.update(1, set={"n": 2}, condition="n = :one", values={":one": 1})
    refused(store, lambda: users.update(1, set={"n": 3}, condition="n = :one",
                                        values={":one": 1}), "condition", engine.ConditionFailed)
    refused(store, lambda: users.delete(1, condition="#n > :v", names={"#n": "n"},
                                        values={":v": 5}), "condition", engine.ConditionFailed)
    users.delete(1, condition="#n = :v", names={"#n": "n"}, values={":v": 2})
    assert users.get(1) is None
    e = refused(store, lambda: users.delete(1, condition="attribute_exists(id)"),
                "condition", engine.ConditionFailed)
    assert e.item is None  # type: ignore[attr-defined]


def test_callable_conditions_still_work(users: engine.Table) -> None:
    users.put({"id": 1}, condition=lambda cur: cur is None)
    with pytest.raises(engine.ConditionFailed):
        users.put({"id": 1}, condition=lambda cur: cur is None)


@pytest.mark.parametrize("kwargs,match", [
    ({"condition": "a = :x"}, "attribute value used in expression is not defined; "
                              "attribute value: :x"),
    ({"condition": "#a = :x", "values": {":x": 1}}, "attribute name used in the document "
                                                    "path is not defined"),
    ({"condition": "a = :x", "values": {":x": 1, ":y": 2}},
     r"ExpressionAttributeValues unused in expressions: keys: \{:y\}"),
    ({"condition": lambda cur: True, "values": {":y": 2}}, "unused"),
    ({"condition": "a = = :x", "values": {":x": 1}}, "Syntax error"),
    ({"condition": "a = :x", "values": {":x": float("nan")}}, "finite"),
    ({"condition": "x" * 5000}, "Expression size has exceeded"),
    ({"returning": "ALL_NEW"}, "returning must be one of NONE, ALL_OLD"),
])
def test_bad_put_expressions_write_nothing(users: engine.Table, store: engine.Store,
                                           kwargs: dict[str, Any], match: str) -> None:
    users.put({"id": 1, "a": 1})
    refused(store, lambda: users.put({"id": 1, "a": 2}, **kwargs), match)


# -- update expressions ----------------------------------------------------------------------


def test_update_expression(orders: engine.Table) -> None:
    orders.put({"customer_id": "c1", "order_id": "o1", "total": 10, "tags": {"new"},
                "flags": {"new", "hot"},
                "address": {"city": "Pune", "zip": "411001"}, "lines": [1, 2, 3]})
    new = orders.update(
        "c1", "o1",
        expression="SET #s = :s, total = total + :n, address.city = :c, lines[0] = :z "
                   "REMOVE address.zip, lines[2] ADD views :one, tags :t DELETE flags :old",
        names={"#s": "status"},
        values={":s": "SHIPPED", ":n": 5, ":c": "Mumbai", ":z": 0, ":one": 1, ":t": {"gift"},
                ":old": {"new"}})
    assert new == {"customer_id": "c1", "order_id": "o1", "status": "SHIPPED", "total": 15,
                   "address": {"city": "Mumbai"}, "lines": [0, 2], "views": 1,
                   "tags": {"new", "gift"}, "flags": {"hot"}}
    assert orders.get("c1", "o1") == new


def test_update_upserts_and_add_on_missing(users: engine.Table) -> None:
    assert users.update(7, expression="ADD n :one SET m = if_not_exists(m, :z)",
                        values={":one": 1, ":z": 0}) == {"id": 7, "n": 1, "m": 0}
    assert users.update(7, add={"n": 2}) == {"id": 7, "n": 3, "m": 0}


def test_keyword_add_and_delete(users: engine.Table, store: engine.Store) -> None:
    users.put({"id": 1, "tags": {"a", "b"}, "n": Decimal("1.5")})
    assert users.update(1, add={"n": 1, "tags": {"c"}}, delete=set() or None) == {
        "id": 1, "n": Decimal("2.5"), "tags": {"a", "b", "c"}}
    assert users.update(1, delete={"tags": {"a", "b", "c"}}) == {"id": 1, "n": Decimal("2.5")}
    refused(store, lambda: users.update(1, add={"n": "x"}), "must be a number or a set")
    refused(store, lambda: users.update(1, delete={"n": 1}), "must be a set")
    refused(store, lambda: users.update(1, set={"n": 1}, add={"n": 1}),
            "more than one clause")
    refused(store, lambda: users.update(1, add={"id": 1}), "key attribute")
    users.put({"id": 2, "s": "text"})
    refused(store, lambda: users.update(2, add={"s": 1}), "incorrect data type")


@pytest.mark.parametrize("kwargs,match", [
    ({"expression": "SET a = :v, a.b = :v", "values": {":v": 1}}, "overlap"),
    ({"expression": "SET l[0] = :v, l.b = :v", "values": {":v": 1}}, "conflict"),
    ({"expression": "SET id = :v", "values": {":v": 1}}, "part of the key"),
    ({"expression": "REMOVE id"}, "part of the key"),
    ({"expression": "SET a = :v"}, "attribute value: :v"),
    ({"expression": "SET a = :v", "values": {":v": 1, ":w": 2}}, r"keys: \{:w\}"),
    ({"expression": "SET a = :v", "values": {":v": 1}, "condition": "b = :w"},
     "attribute value: :w"),
    ({"expression": "SET a = s + :v", "values": {":v": 1}}, "incorrect data type"),
    ({"expression": "SET m.x.y = :v", "values": {":v": 1}}, "invalid for update"),
    ({"expression": "SET s.x = :v", "values": {":v": 1}}, "invalid for update"),
    ({"expression": "SET a = nope", "values": None}, "does not exist in the item"),
    ({"expression": "ADD s :v", "values": {":v": 1}}, "incorrect data type"),
    ({"expression": "SET n = n + :v", "values": {":v": Decimal("9.9E+125")}},
     "Number overflow"),
    ({"expression": "SET a = :v", "set": {"b": 1}, "values": {":v": 1}}, "cannot be combined"),
    ({"expression": "SET a = :v ADD b :s", "values": {":v": 1, ":s": "x"}},
     "operand type: S"),
    ({"expression": "SET a = :v", "values": {":v": 1}, "returning": "SOME"}, "returning"),
    ({"expression": "SET " + ", ".join(f"a{i} = :v" for i in range(600)),
      "values": {":v": 1}}, "Expression size"),
])
def test_bad_updates_write_nothing(users: engine.Table, store: engine.Store,
                                   kwargs: dict[str, Any], match: str) -> None:
    users.put({"id": 1, "s": "text", "m": {}, "n": Decimal("9.9E+125")})
    refused(store, lambda: users.update(1, **kwargs), match)


def test_nested_update_rewrites_the_top_level_attribute(users: engine.Table,
                                                        store: engine.Store) -> None:
    users.put({"id": 1, "address": {"city": "Pune", "zip": "1"}})
    users.update(1, expression="SET address.city = :c", values={":c": "Goa"})
    change = list(store.changes())[-1]
    assert change.kind == "update"
    assert "address" in repr(change)  # the whole top-level attribute travels


# -- returning -------------------------------------------------------------------------------


def test_returning(users: engine.Table) -> None:
    assert users.put({"id": 1, "a": 1, "b": {"c": 1, "d": 2}}) is None
    assert users.put({"id": 1, "a": 2, "b": {"c": 1, "d": 2}}, returning="ALL_OLD") == {
        "id": 1, "a": 1, "b": {"c": 1, "d": 2}}
    assert users.update(1, set={"a": 3}, returning="UPDATED_OLD") == {"a": 2}
    assert users.update(1, set={"a": 4}, returning="UPDATED_NEW") == {"a": 4}
    assert users.update(1, set={"a": 5}, returning="NONE") is None
    assert users.update(1, expression="SET b.c = :v", values={":v": 9},
                        returning="UPDATED_OLD") == {"b": {"c": 1}}
    assert users.update(1, expression="SET b.c = :v REMOVE a", values={":v": 10},
                        returning="UPDATED_NEW") == {"b": {"c": 10}}
    assert users.update(1, set={"e": 1}, returning="ALL_OLD") == {"id": 1, "b": {"c": 10, "d": 2}}
    assert users.delete(1) is None
    users.put({"id": 2, "x": 1})
    assert users.delete(2, returning="ALL_OLD") == {"id": 2, "x": 1}
    assert users.delete(2, returning="ALL_OLD") is None


def test_get_projection(users: engine.Table, store: engine.Store) -> None:
    users.put({"id": 1, "a": {"b": [1, 2, 3]}, "status": "x"})
    assert users.get(1, projection="a.b[1], #s", names={"#s": "status"}) == {
        "a": {"b": [2]}, "status": "x"}
    assert users.get(2, projection="a") is None
    refused(store, lambda: users.get(1, projection="a", names={"#s": "status"}), "unused")


# -- queries, scans and pages ----------------------------------------------------------------


@pytest.fixture
def filled(tmp_path: Path) -> Any:
    with engine.open(tmp_path / "fast", region="r", durable=False) as s:
        t = s.create_table("t", partition_key="p", sort_key="s")
        with s.batch() as b:
            for p in ("a", "b", "c"):
                for i in range(30):
                    b.put(t, {"p": p, "s": i, "even": i % 2 == 0, "v": "x" * i})
        yield s, t


def test_query_key_expression(filled: Any) -> None:
    _, t = filled
    got = [i["s"] for i in t.query("a", key="s BETWEEN :lo AND :hi", values={":lo": 3, ":hi": 6})]
    assert got == [3, 4, 5, 6]
    got = [i["s"] for i in t.query("a", key="p = :p AND s > :x", values={":p": "a", ":x": 27})]
    assert got == [28, 29]
    assert [i["s"] for i in t.query("a", key="s = :x", values={":x": 5})] == [5]
    with pytest.raises(engine.ValidationError, match="partition key condition"):
        t.query("a", key="p = :p", values={":p": "b"})
    with pytest.raises(engine.ValidationError, match="not a key attribute"):
        t.query("a", key="v = :p", values={":p": "b"})
    with pytest.raises(engine.ValidationError, match="cannot be combined"):
        t.query("a", key="s = :x", values={":x": 5}, gt=1)


def test_query_filter_and_projection(filled: Any) -> None:
    _, t = filled
    got = list(t.query("b", filter="even = :t AND s < :n", values={":t": True, ":n": 6},
                       projection="s"))
    assert got == [{"s": 0}, {"s": 2}, {"s": 4}]
    assert len(list(t.query("b", filter="even = :t", values={":t": True}, limit=4))) == 4


def test_query_page_counts_items_read_before_the_filter(filled: Any) -> None:
    _, t = filled
    page = t.query_page("a", limit=5, filter="even = :t", values={":t": True})
    assert page.scanned == 5 and [i["s"] for i in page.items] == [0, 2, 4]
    assert page.last_key == {"p": "a", "s": 4}
    page = t.query_page("a", limit=5, filter="even = :t", values={":t": True},
                        start=page.last_key)
    assert [i["s"] for i in page.items] == [6, 8]
    last = t.query_page("a", start={"p": "a", "s": 25})
    assert [i["s"] for i in last.items] == [26, 27, 28, 29] and last.last_key is None
    exact = t.query_page("a", start={"p": "a", "s": 25}, limit=4)
    assert exact.last_key is None  # nothing left: no last_key, even at the limit
    rev = t.query_page("a", reverse=True, limit=3)
    assert [i["s"] for i in rev.items] == [29, 28, 27] and rev.last_key == {"p": "a", "s": 27}
    rev = t.query_page("a", reverse=True, limit=3, start=rev.last_key)
    assert [i["s"] for i in rev.items] == [26, 25, 24]
    with pytest.raises(engine.ValidationError, match="starting key is invalid"):
        t.query_page("a", start={"p": "b", "s": 1})
    with pytest.raises(engine.ValidationError, match="starting key is invalid"):
        t.query_page("a", start={"p": "a"})


def test_pages_end_after_about_a_megabyte(tmp_path: Path) -> None:
    with engine.open(tmp_path / "big", region="r", durable=False) as s:
        t = s.create_table("t", partition_key="p", sort_key="s")
        with s.batch() as b:
            for i in range(30):
                b.put(t, {"p": "a", "s": i, "blob": b"x" * 100_000})
        page = t.query_page("a")
        assert 9 <= page.scanned <= 12 and page.last_key is not None
        assert sum(1 for _ in t.query("a")) == 30


def test_scan_page_and_segments(filled: Any) -> None:
    _, t = filled
    everything = [(i["p"], i["s"]) for i in t.scan()]
    assert len(everything) == 90
    parts: list[tuple[str, int]] = []
    for seg in range(4):
        start = None
        while True:
            page = t.scan_page(limit=7, segment=seg, total_segments=4, start=start,
                               projection="p, s")
            parts += [(i["p"], i["s"]) for i in page.items]
            start = page.last_key
            if start is None:
                break
    assert sorted(parts) == sorted(everything) and len(parts) == len(set(parts))
    with pytest.raises(engine.ValidationError, match="segment"):
        t.scan_page(segment=4, total_segments=4)
    with pytest.raises(engine.ValidationError, match="total_segments"):
        t.scan_page(segment=0)
    assert [i["s"] for i in t.scan(filter="s = :n", values={":n": 3})] == [3, 3, 3]


# -- transactions ----------------------------------------------------------------------------


def test_batch_conditions_and_checks(orders: engine.Table, users: engine.Table,
                                     store: engine.Store) -> None:
    users.put({"id": "u1", "credit": 10})
    orders.put({"customer_id": "c1", "order_id": "o0", "state": "NEW"})

    def order(cond_credit: int) -> None:
        with store.batch() as b:
            b.check("users", "u1", condition="credit >= :c", values={":c": cond_credit})
            b.put("orders", {"customer_id": "c1", "order_id": "o1"},
                  condition="attribute_not_exists(order_id)")
            b.update("orders", "c1", "o0", expression="SET #s = :s", names={"#s": "state"},
                     values={":s": "DONE"}, condition="#s = :n", )

    with pytest.raises(engine.ValidationError, match="not defined; attribute value: :n"):
        order(5)  # :n undefined -> refused when the op is added
    digest = store.digest()
    with store.batch() as b:
        b.check("users", "u1", condition="credit >= :c", values={":c": 5})
        b.put("orders", {"customer_id": "c1", "order_id": "o1"},
              condition="attribute_not_exists(order_id)")
    assert orders.get("c1", "o1") is not None and store.digest() != digest
    digest, seq = store.digest(), _seq(store)
    with pytest.raises(engine.TransactionCanceled) as info, store.batch() as b:
        b.check("users", "u1", condition="credit >= :c", values={":c": 50})
        b.put("orders", {"customer_id": "c1", "order_id": "o2"})
        b.put("orders", {"customer_id": "c1", "order_id": "o1", "x": 1},
              condition="attribute_not_exists(order_id)")
    err = info.value
    assert err.failed == [0, 2]
    assert err.reasons == ["ConditionalCheckFailed", None, "ConditionalCheckFailed"]
    assert err.items == [{"id": "u1", "credit": 10}, {"customer_id": "c1", "order_id": "o1"}]
    assert isinstance(err, engine.ConditionFailed)
    assert store.digest() == digest and _seq(store) == seq
    # a batch of only checks writes nothing and logs nothing
    with store.batch() as b:
        b.check(users, "u1", condition="attribute_exists(id)")
    assert _seq(store) == seq


def test_transaction_limits(users: engine.Table, store: engine.Store) -> None:
    def too_many() -> None:
        with store.batch() as b:
            b.check(users, 0, condition="attribute_not_exists(id)")
            for i in range(1, 101):
                b.put(users, {"id": i})

    refused(store, too_many, "at most 100 ops")
    with pytest.raises(engine.ValidationError, match="one op per item"), store.batch() as b:
        b.check(users, 1, condition="attribute_not_exists(id)")
        b.put(users, {"id": 1})

    def too_big() -> None:
        with store.batch() as b:
            b.check(users, 0, condition="attribute_not_exists(id)")
            for i in range(1, 6):
                b.put(users, {"id": i, "blob": b"x" * 1_000_000})

    refused(store, too_big, "transaction may hold")
    with pytest.raises(engine.ValidationError, match="needs a condition"):
        store.batch().check(users, 1, condition=None)  # type: ignore[arg-type]


def test_get_many_reads_one_snapshot(orders: engine.Table, users: engine.Table,
                                     store: engine.Store) -> None:
    users.put({"id": 1})
    orders.put({"customer_id": "c", "order_id": "o"})
    assert store.get_many([("users", 1), (orders, "c", "o"), ("users", 2)]) == [
        {"id": 1}, {"customer_id": "c", "order_id": "o"}, None]
    with pytest.raises(engine.ValidationError, match="tuples"):
        store.get_many(["users"])  # type: ignore[list-item]
    with pytest.raises(engine.TableNotFound):
        store.get_many([("nope", 1)])


def test_index_pages_filters_and_key_expressions(store: engine.Store) -> None:
    t = store.create_table("o", partition_key="c", sort_key="o", indexes=[
        engine.Index("by_status", "status", "at"),
        engine.Index("by_region", "region", projection="KEYS_ONLY")])
    with store.batch() as b:
        for i in range(20):
            b.put(t, {"c": f"c{i % 3}", "o": f"o{i:02}", "status": "NEW" if i % 2 else "OLD",
                      "at": i, "region": "eu"})
    whole = list(t.query("NEW", index="by_status"))
    assert [i["at"] for i in whole] == list(range(1, 20, 2))
    paged, start = [], None
    while True:
        page = t.query_page("NEW", index="by_status", limit=3, start=start)
        paged += page.items
        start = page.last_key
        if start is None:
            break
        assert set(start) == {"c", "o", "status", "at"}
    assert paged == whole
    got = t.query("NEW", index="by_status", key="#s = :s AND at BETWEEN :a AND :b",
                  names={"#s": "status"}, values={":s": "NEW", ":a": 5, ":b": 9, ":c": "c0"},
                  filter="c <> :c", projection="at")
    assert list(got) == [{"at": 5}, {"at": 7}]
    keys = t.query_page("eu", index="by_region", limit=2)
    assert keys.items[0] == {"c": "c0", "o": "o00", "region": "eu"}
    assert keys.last_key == {"c": "c0", "o": "o03", "region": "eu"}
    rest = t.query_page("eu", index="by_region", start=keys.last_key)
    assert len(rest.items) == 18 and rest.last_key is None
    with pytest.raises(engine.ValidationError, match="starting key is invalid"):
        t.query_page("eu", index="by_region", start={"c": "c0", "o": "o03"})


def test_scan_an_index(store: engine.Store) -> None:
    t = store.create_table("o", partition_key="c", sort_key="o", indexes=[
        engine.Index("by_status", "status", "at")])
    with store.batch() as b:
        for i in range(12):
            b.put(t, {"c": f"c{i % 3}", "o": f"o{i:02}", "status": "AB"[i % 2], "at": i})
        b.put(t, {"c": "c9", "o": "o99"})  # not in the index (sparse)
    whole = [(i["status"], i["at"]) for i in t.scan(index="by_status")]
    assert whole == sorted(whole) and len(whole) == 12
    paged, start = [], None
    while True:
        page = t.scan_page(index="by_status", limit=5, start=start, filter="at > :n",
                           values={":n": 2})
        paged += [(i["status"], i["at"]) for i in page.items]
        start = page.last_key
        if start is None:
            break
    assert paged == [w for w in whole if w[1] > 2]
    parts = [i["at"] for s in range(3)
             for i in t.scan(index="by_status", segment=s, total_segments=3)]
    assert sorted(parts) == list(range(12))
    with pytest.raises(engine.ValidationError, match="no index"):
        t.scan_page(index="nope")
