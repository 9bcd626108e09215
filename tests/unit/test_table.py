"""Table and Batch: the item API — writes, conditions, queries, scans, atomic batches."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import engine


@pytest.fixture
def fast(tmp_path: Path) -> Any:
    """A non-durable store for tests that write many items."""
    with engine.open(tmp_path / "fast", region="r", durable=False) as s:
        yield s


def _log_len(store: engine.Store) -> int:
    return store.version_vector().get(store.node_id, 0)


# -- put / get / update / delete --------------------------------------------------------------


def test_put_get_roundtrip_all_value_types(users: engine.Table) -> None:
    item = {"id": "u1", "s": "é", "i": -(2**70), "f": 1.5, "d": Decimal("1.10"), "b": b"\x00",
            "t": True, "n": None, "l": [1, [2, {"x": 3}]], "m": {"a": {"b": "c"}},
            "ss": {"a", "b"}, "ns": frozenset({1, 2.5}), "bs": {b"x"}}
    users.put(item)
    got = users.get("u1")
    assert got == item
    assert type(got["d"]) is Decimal and got["d"].as_tuple() == Decimal("1.10").as_tuple()
    assert users.get("missing") is None


def test_put_replaces_whole_item(users: engine.Table) -> None:
    users.put({"id": 1, "a": 1, "b": 2})
    users.put({"id": 1, "c": 3})
    assert users.get(1) == {"id": 1, "c": 3}


def test_put_does_not_keep_a_reference(users: engine.Table) -> None:
    item = {"id": 1, "l": [1]}
    users.put(item)
    item["l"].append(2)
    item["x"] = 1
    assert users.get(1) == {"id": 1, "l": [1]}


def test_update_upserts_and_returns_new_item(orders: engine.Table) -> None:
    new = orders.update("c1", "o1", set={"status": "NEW", "total": 5})
    assert new == {"customer_id": "c1", "order_id": "o1", "status": "NEW", "total": 5}
    new = orders.update("c1", "o1", set={"status": "SHIPPED"}, remove=["total", "nothing"])
    assert new == {"customer_id": "c1", "order_id": "o1", "status": "SHIPPED"}
    assert orders.get("c1", "o1") == new
    assert orders.update("c1", "o1") == new  # no-op update still writes a version


def test_update_key_attributes_cannot_change(orders: engine.Table) -> None:
    orders.put({"customer_id": "c1", "order_id": "o1"})
    for kwargs in ({"set": {"customer_id": "c2"}}, {"set": {"order_id": "o1"}},
                   {"remove": ["customer_id"]}, {"remove": ["order_id"]}):
        with pytest.raises(engine.ValidationError, match="key attribute"):
            orders.update("c1", "o1", **kwargs)


def test_update_set_and_remove_same_attribute(orders: engine.Table) -> None:
    with pytest.raises(engine.ValidationError, match=r"\['x'\] both set and removed"):
        orders.update("c1", "o1", set={"x": 1}, remove=["x"])
    assert orders.get("c1", "o1") is None


def test_delete(orders: engine.Table, store: engine.Store) -> None:
    orders.put({"customer_id": "c1", "order_id": "o1"})
    orders.delete("c1", "o1")
    assert orders.get("c1", "o1") is None
    n = _log_len(store)
    orders.delete("c1", "o1")  # already deleted: fine, still a change
    orders.delete("c9", "never")
    assert _log_len(store) == n + 2
    orders.update("c1", "o1", set={"back": True})
    assert orders.get("c1", "o1") == {"customer_id": "c1", "order_id": "o1", "back": True}


def test_sort_key_table_needs_sort_key(orders: engine.Table, users: engine.Table) -> None:
    with pytest.raises(engine.ValidationError, match="needs a sort key"):
        orders.get("c1")
    with pytest.raises(engine.ValidationError, match="has no sort key"):
        users.get("u1", "x")


# -- conditions --------------------------------------------------------------------------------


def test_conditions(users: engine.Table, store: engine.Store) -> None:
    seen: list[Any] = []

    def absent(cur: Any) -> bool:
        seen.append(cur)
        return cur is None

    users.put({"id": 1, "n": 1}, condition=absent)
    n = _log_len(store)
    with pytest.raises(engine.ConditionFailed, match="users"):
        users.put({"id": 1, "n": 2}, condition=absent)
    assert seen == [None, {"id": 1, "n": 1}]  # the condition sees the current item
    assert users.get(1) == {"id": 1, "n": 1}
    assert _log_len(store) == n  # nothing written, not even a log entry
    users.update(1, set={"n": 2}, condition=lambda cur: cur["n"] == 1)
    with pytest.raises(engine.ConditionFailed):
        users.update(1, set={"n": 3}, condition=lambda cur: cur["n"] == 1)
    with pytest.raises(engine.ConditionFailed):
        users.delete(1, condition=lambda cur: False)
    users.delete(1, condition=lambda cur: cur is not None)
    assert users.get(1) is None
    assert _log_len(store) == n + 2


def test_condition_exception_propagates_and_writes_nothing(users: engine.Table,
                                                           store: engine.Store) -> None:
    n = _log_len(store)

    def boom(cur: Any) -> bool:
        raise KeyError("from the condition")

    with pytest.raises(KeyError, match="from the condition"):
        users.put({"id": 1}, condition=boom)
    assert users.get(1) is None and _log_len(store) == n


def test_condition_cannot_use_the_store(users: engine.Table) -> None:
    users.put({"id": 2})
    with pytest.raises(engine.ValidationError, match="inside a write condition"):
        users.put({"id": 1}, condition=lambda cur: users.get(2) is not None)
    users.put({"id": 3})  # and the store still works afterwards


def test_condition_failure_with_concurrent_readers_is_prompt(store: engine.Store,
                                                           users: engine.Table) -> None:
    """Aborted writes must not stall behind readers (py-lmdb 3.0 abort drain)."""
    with store.batch() as b:
        for i in range(50):
            b.put(users, {"id": i})
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            users.get(0)
            sum(1 for _ in users.scan())

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for th in threads:
        th.start()
    try:
        start = time.monotonic()
        for _ in range(10):
            with pytest.raises(engine.ConditionFailed):
                users.put({"id": 0}, condition=lambda cur: False)
        elapsed = time.monotonic() - start
    finally:
        stop.set()
        for th in threads:
            th.join(timeout=10)
    assert elapsed < 3, f"10 failed conditions took {elapsed:.1f}s"


# -- queries -----------------------------------------------------------------------------------


@pytest.fixture
def filled(store: engine.Store, orders: engine.Table) -> engine.Table:
    with store.batch() as b:
        for sk in ["a", "ab", "abc", "abd", "b", "ba", "c"]:
            b.put(orders, {"customer_id": "c1", "order_id": sk})
        b.put(orders, {"customer_id": "c0", "order_id": "a"})
        b.put(orders, {"customer_id": "c2", "order_id": "a"})
    return orders


def _sks(items: Any, attr: str = "order_id") -> list[Any]:
    return [i[attr] for i in items]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, ["a", "ab", "abc", "abd", "b", "ba", "c"]),
        ({"begins_with": "ab"}, ["ab", "abc", "abd"]),
        ({"begins_with": "b"}, ["b", "ba"]),
        ({"begins_with": ""}, ["a", "ab", "abc", "abd", "b", "ba", "c"]),
        ({"begins_with": "z"}, []),
        ({"between": ("ab", "b")}, ["ab", "abc", "abd", "b"]),
        ({"between": ("abc", "abc")}, ["abc"]),
        ({"gt": "ab"}, ["abc", "abd", "b", "ba", "c"]),
        ({"gte": "ab"}, ["ab", "abc", "abd", "b", "ba", "c"]),
        ({"lt": "b"}, ["a", "ab", "abc", "abd"]),
        ({"lte": "b"}, ["a", "ab", "abc", "abd", "b"]),
        ({"gt": "a", "lt": "b"}, ["ab", "abc", "abd"]),
        ({"gte": "a", "lte": "b"}, ["a", "ab", "abc", "abd", "b"]),
        ({"gt": "c", "lt": "a"}, []),
        ({"limit": 2}, ["a", "ab"]),
        ({"reverse": True}, ["c", "ba", "b", "abd", "abc", "ab", "a"]),
        ({"reverse": True, "limit": 3}, ["c", "ba", "b"]),
        ({"begins_with": "ab", "reverse": True}, ["abd", "abc", "ab"]),
        ({"between": ("ab", "b"), "reverse": True}, ["b", "abd", "abc", "ab"]),
        ({"gt": "ab", "lt": "ba", "reverse": True}, ["b", "abd", "abc"]),
        ({"gte": "ab", "lte": "ba", "reverse": True, "limit": 2}, ["ba", "b"]),
        ({"lt": "b", "reverse": True}, ["abd", "abc", "ab", "a"]),
        ({"gt": "b", "reverse": True}, ["c", "ba"]),
    ],
)
def test_query_conditions(
    filled: engine.Table, kwargs: dict[str, Any], expected: list[str]
) -> None:
    assert _sks(filled.query("c1", **kwargs)) == expected


def test_query_other_partitions_untouched(filled: engine.Table) -> None:
    assert _sks(filled.query("c0")) == ["a"]
    assert _sks(filled.query("c2", reverse=True)) == ["a"]
    assert list(filled.query("c3")) == []


def test_partition_isolation(orders: engine.Table, users: engine.Table) -> None:
    for pk in ["a", "a\x00", "ab", "", "a\x00b", "\x00"]:
        orders.put({"customer_id": pk, "order_id": 1, "pk": pk})
        users.put({"id": pk})
    for pk in ["a", "a\x00", "ab", "", "a\x00b", "\x00"]:
        for reverse in (False, True):
            assert [i["pk"] for i in orders.query(pk, reverse=reverse)] == [pk]
            assert [i["id"] for i in users.query(pk, reverse=reverse)] == [pk]
    assert [i["id"] for i in users.scan()] == ["", "\x00", "a", "a\x00", "a\x00b", "ab"]


def test_tables_do_not_leak_into_each_other(store: engine.Store) -> None:
    t = store.create_table("t", partition_key="k")
    t2 = store.create_table("t2", partition_key="k")
    t.put({"k": 1})
    t2.put({"k": 1, "in": "t2"})
    assert list(t.scan()) == [{"k": 1}]
    assert list(t2.scan()) == [{"k": 1, "in": "t2"}]


def test_numbers_sort_numerically(store: engine.Store, orders: engine.Table) -> None:
    values = [10, 9, -1, 0, 1.5, Decimal("1.25"), 100, -0.5, 2**70, Decimal("-1e30")]
    with store.batch() as b:
        for v in values:
            b.put(orders, {"customer_id": "n", "order_id": v})
    got = _sks(orders.query("n"))
    assert got == sorted(values, key=Decimal)
    assert type(got[-1]) is int
    assert _sks(orders.query("n", between=(0, 10))) == [0, Decimal("1.25"), Decimal("1.5"), 9, 10]
    assert _sks(orders.query("n", gt=1.25, lt=100)) == [Decimal("1.5"), 9, 10]
    assert orders.get("n", 1.5) == {"customer_id": "n", "order_id": 1.5}
    assert orders.get("n", Decimal("1.50")) is not None  # one number, one key
    assert orders.get("n", 10.0) == {"customer_id": "n", "order_id": 10}


def test_bytes_keys(store: engine.Store, orders: engine.Table) -> None:
    keys = [b"", b"\x00", b"\x00\x00", b"\x01", b"a", b"a\x00", b"\xff", b"\xff\xff"]
    with store.batch() as b:
        for k in reversed(keys):
            b.put(orders, {"customer_id": b"p", "order_id": k})
    assert _sks(orders.query(b"p")) == keys
    assert _sks(orders.query(b"p", begins_with=b"\x00")) == [b"\x00", b"\x00\x00"]
    assert _sks(orders.query(b"p", begins_with=b"\xff", reverse=True)) == [b"\xff\xff", b"\xff"]
    assert _sks(orders.query(b"p", gt=b"a")) == [b"a\x00", b"\xff", b"\xff\xff"]
    assert list(orders.query(b"p", begins_with="a")) == []  # str prefix, bytes keys


def test_mixed_sort_key_types_order_numbers_strings_bytes(orders: engine.Table) -> None:
    for sk in [b"b", "s", 5]:
        orders.put({"customer_id": "m", "order_id": sk})
    assert _sks(orders.query("m")) == [5, "s", b"b"]


def test_tombstones_are_skipped(orders: engine.Table) -> None:
    for i in range(10):
        orders.put({"customer_id": "c", "order_id": i})
    for i in range(0, 10, 2):
        orders.delete("c", i)
    assert _sks(orders.query("c")) == [1, 3, 5, 7, 9]
    assert _sks(orders.query("c", reverse=True, limit=2)) == [9, 7]
    assert _sks(orders.scan()) == [1, 3, 5, 7, 9]


@pytest.mark.parametrize("reverse", [False, True])
def test_query_more_than_a_chunk(fast: engine.Store, reverse: bool) -> None:
    t = fast.create_table("t", partition_key="p", sort_key="s")
    n = 700
    with fast.batch() as b:
        for i in range(n):
            b.put(t, {"p": "x", "s": i})
        b.put(t, {"p": "w", "s": 0})
        b.put(t, {"p": "y", "s": 0})
    # tombstones spread through, including whole chunks of them
    with fast.batch() as b:
        for i in sorted(set(range(0, n, 3)) | set(range(300, 620))):
            b.delete(t, "x", i)
    live = [i for i in range(n) if i % 3 and not 300 <= i < 620]
    expected = live[::-1] if reverse else live
    assert _sks(t.query("x", reverse=reverse), "s") == expected
    assert _sks(t.query("x", reverse=reverse, limit=300), "s") == expected[:300]
    assert _sks(t.query("x", reverse=reverse, gte=100, lt=650), "s") == [
        i for i in expected if 100 <= i < 650]
    assert len(list(t.scan())) == len(live) + 2
    assert len(live) + 2 == 255
    assert len(list(t.scan(limit=230))) == 230  # the first chunk holds only 201 live items


def test_query_iterator_sees_later_chunks_live(fast: engine.Store) -> None:
    t = fast.create_table("t", partition_key="p", sort_key="s")
    with fast.batch() as b:
        for i in range(600):
            b.put(t, {"p": "x", "s": i})
    it = t.query("x")
    first = [next(it) for _ in range(10)]
    assert _sks(first, "s") == list(range(10))
    t.put({"p": "x", "s": 599, "late": True})  # iteration holds no transaction: writes go on
    rest = list(it)
    assert rest[-1] == {"p": "x", "s": 599, "late": True}
    assert len(rest) == 590


def test_scan(store: engine.Store) -> None:
    t = store.create_table("t", partition_key="k")
    assert list(t.scan()) == []
    for k in ["b", "a", 3, b"z"]:
        t.put({"k": k})
    assert [i["k"] for i in t.scan()] == [3, "a", "b", b"z"]
    assert [i["k"] for i in t.scan(limit=2)] == [3, "a"]


# -- batches ---------------------------------------------------------------------------------


def test_batch_is_one_transaction(store: engine.Store, orders: engine.Table,
                                  users: engine.Table) -> None:
    users.put({"id": "gone"})
    n = _log_len(store)
    with store.batch() as b:
        b.put("orders", {"customer_id": "c1", "order_id": "o1", "total": 1})
        b.update(orders, "c1", "o2", set={"total": 2})
        b.delete("users", "gone")
        b.put(users, {"id": "u1"})
        assert len(b) == 4
    assert _log_len(store) == n + 1  # one seq for the whole batch
    ch = list(store.changes(since=store.position() - 1))
    assert len(ch) == 4 and len({c.txid for c in ch}) == 1 and len({c.version for c in ch}) == 1
    assert orders.get("c1", "o2") == {"customer_id": "c1", "order_id": "o2", "total": 2}
    assert users.get("gone") is None
    (raw,) = store.log_range(store.node_id, n)
    assert raw[1] == n + 1


def test_batch_failing_condition_writes_nothing(store: engine.Store, users: engine.Table) -> None:
    users.put({"id": "x", "v": 0})
    before, n = store.digest(), _log_len(store)
    with pytest.raises(engine.ConditionFailed), store.batch() as b:
        b.put(users, {"id": "a"})
        b.update(users, "x", set={"v": 1})
        b.put(users, {"id": "b"}, condition=lambda cur: False)
    assert store.digest() == before and _log_len(store) == n
    assert users.get("a") is None and users.get("x") == {"id": "x", "v": 0}


def test_batch_exception_in_block_writes_nothing(store: engine.Store, users: engine.Table) -> None:
    before = store.digest()
    with pytest.raises(RuntimeError), store.batch() as b:
        b.put(users, {"id": "a"})
        raise RuntimeError("changed my mind")
    assert store.digest() == before and users.get("a") is None


def test_batch_same_item_twice(store: engine.Store, users: engine.Table) -> None:
    before = store.digest()
    with pytest.raises(engine.ValidationError, match="twice"), store.batch() as b:
        b.put(users, {"id": "a"})
        b.update(users, "a", set={"x": 1})
    with pytest.raises(engine.ValidationError, match="twice"), store.batch() as b:
        b.put(users, {"id": 1})
        b.delete(users, 1.0)  # the same key, spelled differently
    assert store.digest() == before


def test_batch_conditions_see_state_before_the_batch(store: engine.Store,
                                                     users: engine.Table) -> None:
    users.put({"id": "x", "v": 1})
    with store.batch() as b:
        b.update(users, "x", set={"v": 2}, condition=lambda cur: cur["v"] == 1)
        b.put(users, {"id": "y"}, condition=lambda cur: cur is None)
    assert users.get("x")["v"] == 2


def test_empty_batch_writes_nothing(store: engine.Store) -> None:
    before = store.version_vector()
    with store.batch():
        pass
    assert store.version_vector() == before


def test_batch_used_after_commit(store: engine.Store, users: engine.Table) -> None:
    with store.batch() as b:
        b.put(users, {"id": 1})
    with pytest.raises(engine.ValidationError, match="already been committed"):
        b.put(users, {"id": 2})


def test_batch_unknown_table(store: engine.Store) -> None:
    with pytest.raises(engine.TableNotFound), store.batch() as b:
        b.put("nope", {"id": 1})
