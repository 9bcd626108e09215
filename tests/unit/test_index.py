"""Secondary indexes (engine.index): definitions, maintenance on every write path, queries,
backfill, replication of definitions, bad input, and integrity_check."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import engine
from engine import Index, ValidationError
from engine import index as index_mod


def pull(dst: engine.Store, src: engine.Store) -> engine.ApplyReport:
    """Apply to ``dst`` everything ``src`` holds that ``dst`` lacks."""
    have = dst.version_vector()
    records = []
    for origin, seq in src.version_vector().items():
        if seq > have.get(origin, 0):
            records += src.log_range(origin, have.get(origin, 0))
    return dst.apply_changes(records)


@pytest.fixture
def orders(store: engine.Store) -> engine.Table:
    return store.create_table("orders", "customer_id", "order_id", indexes=[
        Index("by_status", "status", "placed_at"),
        Index("by_region", "region", projection="KEYS_ONLY"),
        Index("by_total", "status", "total", projection=["total", "note"]),
    ])


def _order(c: str, o: str, **kw: Any) -> dict[str, Any]:
    return {"customer_id": c, "order_id": o, **kw}


def test_index_is_a_frozen_value() -> None:
    ix = Index("by_x", "x", projection=["b", "a", "a"])
    assert ix.projection == ("a", "b")
    assert ix == Index("by_x", "x", None, ("a", "b"))
    with pytest.raises(AttributeError):
        ix.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize("args, message", [
    (("", "x"), "index name"),
    (("bad name", "x"), "index name"),
    (("ok", ""), "attribute names"),
    (("ok", "x", "x"), "sort key equals partition key"),
    (("ok", "x", None, "SOME"), "projection"),
    (("ok", "x", None, [1, 2]), "attribute names"),
    (("ok", "x", None, "a,b"), "projection"),
    (("ok", "x", None, {"a": 1}), "projection"),
])
def test_bad_index_definitions(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Index(*args)


def test_query_in_index_sort_key_order(orders: engine.Table) -> None:
    for i, status in enumerate(["NEW", "SHIPPED", "NEW", "NEW", "SHIPPED"]):
        orders.put(_order(f"c{i % 2}", f"o{i}", status=status, placed_at=100 - i, total=i))
    got = [o["order_id"] for o in orders.query("NEW", index="by_status")]
    assert got == ["o3", "o2", "o0"]
    assert [o["order_id"] for o in orders.query("NEW", index="by_status", reverse=True)] == \
        ["o0", "o2", "o3"]
    assert [o["order_id"] for o in orders.query("NEW", index="by_status", limit=2)] == \
        ["o3", "o2"]
    # ALL projects the whole item, exactly as the table holds it
    assert next(orders.query("SHIPPED", index="by_status")) == orders.get("c0", "o4")


def test_sort_key_conditions_on_an_index(orders: engine.Table) -> None:
    for i in range(10):
        orders.put(_order("c", f"o{i}", status="S", placed_at=i))
    orders.put(_order("d", "o3b", status="S", placed_at=3))  # a tie on the index sort key

    def ids(**kw: Any) -> list[str]:
        return [o["order_id"] for o in orders.query("S", index="by_status", **kw)]

    assert ids(lte=3) == ["o0", "o1", "o2", "o3", "o3b"]
    assert ids(lt=3) == ["o0", "o1", "o2"]
    assert ids(gt=7) == ["o8", "o9"]
    assert ids(gte=8) == ["o8", "o9"]
    assert ids(gt=2, lte=3) == ["o3", "o3b"]
    assert ids(between=(3, 4)) == ["o3", "o3b", "o4"]
    assert ids(between=(3, 3), reverse=True) == ["o3b", "o3"]
    assert ids(lte=3, reverse=True, limit=2) == ["o3b", "o3"]


def test_begins_with_and_numbers_on_an_index(store: engine.Store) -> None:
    t = store.create_table("t", "id", indexes=[Index("by_g", "g", "name")])
    for i, name in enumerate(["apple", "apricot", "banana", "ap"]):
        t.put({"id": i, "g": Decimal("1.50"), "name": name})
    got = [x["name"] for x in t.query(1.5, index="by_g", begins_with="ap")]
    assert got == ["ap", "apple", "apricot"]


def test_projections(orders: engine.Table) -> None:
    orders.put(_order("c1", "o1", status="NEW", placed_at=1, region="eu", total=9,
                      note="n", secret="s"))
    assert list(orders.query("eu", index="by_region")) == [
        {"customer_id": "c1", "order_id": "o1", "region": "eu"}]
    assert list(orders.query("NEW", index="by_total")) == [
        {"customer_id": "c1", "order_id": "o1", "status": "NEW", "total": 9, "note": "n"}]


def test_maintained_by_update_delete_and_batch(store: engine.Store,
                                               orders: engine.Table) -> None:
    orders.put(_order("c1", "o1", status="NEW", placed_at=1))
    orders.update("c1", "o1", set={"status": "SHIPPED"})
    assert list(orders.query("NEW", index="by_status")) == []
    assert [o["status"] for o in orders.query("SHIPPED", index="by_status")] == ["SHIPPED"]
    orders.update("c1", "o1", remove=["placed_at"])  # sparse: loses the index sort key
    assert list(orders.query("SHIPPED", index="by_status")) == []
    orders.update("c1", "o1", set={"placed_at": 2})
    assert len(list(orders.query("SHIPPED", index="by_status"))) == 1
    orders.delete("c1", "o1")
    assert list(orders.query("SHIPPED", index="by_status")) == []
    with store.batch() as b:
        for i in range(5):
            b.put(orders, _order("c2", f"o{i}", status="NEW", placed_at=i))
        b.delete(orders, "c1", "o1")
    assert len(list(orders.query("NEW", index="by_status"))) == 5
    assert store.integrity_check().ok


def test_sparse_items_are_left_out(orders: engine.Table) -> None:
    orders.put(_order("c1", "o1", status="NEW"))          # no placed_at
    orders.put(_order("c1", "o2", placed_at=3))           # no status
    assert list(orders.query("NEW", index="by_status")) == []
    assert list(orders.query("NEW", index="by_total")) == []


def test_local_write_with_a_non_key_index_value_is_refused(store: engine.Store,
                                                           orders: engine.Table) -> None:
    orders.put(_order("c1", "o1", status="NEW", placed_at=1))
    before = (store.digest(), store.position())
    for bad in ([1], {"a": 1}, {"x"}, None, True):
        with pytest.raises(ValidationError, match="'status' is a key of index"):
            orders.put(_order("c1", "o2", status=bad, placed_at=1))
        with pytest.raises(ValidationError, match="'status'"):
            orders.update("c1", "o1", set={"status": bad})
    with pytest.raises(ValidationError, match="'placed_at' is a key of index 'by_status'"), \
            store.batch() as b:
        b.put(orders, _order("c9", "o9", status="NEW", placed_at=1))
        b.update(orders, "c1", "o1", set={"placed_at": [2]})
    with pytest.raises(ValidationError, match="entry key would be"):
        orders.put(_order("c1", "o3", status="s" * 500, placed_at=1))
    assert (store.digest(), store.position()) == before
    assert [o["order_id"] for o in orders.query("NEW", index="by_status")] == ["o1"]


def test_bad_index_for_a_table(store: engine.Store, orders: engine.Table) -> None:
    with pytest.raises(ValidationError, match="the table's own key schema"):
        store.create_index("orders", Index("dup", "customer_id", "order_id"))
    with pytest.raises(ValidationError, match="the table's own key schema"):
        store.create_index("orders", Index("dup", "customer_id"))
    with pytest.raises(ValidationError, match="already used"):
        store.create_index("orders", Index("by_status", "status"))
    with pytest.raises(ValidationError, match="must be an engine.Index"):
        store.create_index("orders", "by_x")  # type: ignore[arg-type]
    with pytest.raises(engine.TableNotFound):
        store.create_index("nope", Index("x", "y"))
    with pytest.raises(ValidationError, match="used twice"):
        store.create_table("t2", "id", indexes=[Index("a", "x"), Index("a", "y")])
    with pytest.raises(ValidationError, match="list of engine.Index"):
        store.create_table("t2", "id", indexes=Index("a", "x"))  # type: ignore[arg-type]
    assert "t2" not in store.tables()
    with pytest.raises(ValidationError, match="no index 'nope'"):
        store.drop_index("orders", "nope")
    with pytest.raises(ValidationError, match="no index 'nope'"):
        list(orders.query("x", index="nope"))
    with pytest.raises(ValidationError, match="index 'by_region' has no sort key"):
        list(orders.query("x", index="by_region", gt=1))
    with pytest.raises(ValidationError, match="key attribute 'status'"):
        list(orders.query([1], index="by_status"))  # type: ignore[arg-type]
    # the same definition again is a no-op, as create_table is
    before = store.position()
    store.create_index("orders", Index("by_status", "status", "placed_at"))
    assert store.position() == before


def test_inverted_and_local_indexes(store: engine.Store) -> None:
    t = store.create_table("t", "pk", "sk", indexes=[Index("inv", "sk", "pk"),
                                                     Index("lsi", "pk", "n")])
    t.put({"pk": "a", "sk": "x", "n": 2})
    t.put({"pk": "b", "sk": "x", "n": 1})
    t.put({"pk": "a", "sk": "y", "n": 1})
    assert [i["pk"] for i in t.query("x", index="inv")] == ["a", "b"]
    assert [i["sk"] for i in t.query("a", index="lsi")] == ["y", "x"]


def test_create_index_backfills_in_chunks(store: engine.Store,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    t = store.create_table("t", "id")
    with store.batch() as b:
        for i in range(250):
            b.put(t, {"id": i, "g": i % 3, "v": i})
    calls: list[tuple[int, int | None]] = []
    commits: list[int] = []
    orig = store._e().write

    def counting(fn: Any) -> Any:
        commits.append(1)
        return orig(fn)

    monkeypatch.setattr(store._e(), "write", counting)
    monkeypatch.setattr(index_mod, "BUILD_CHUNK", 40)
    store.create_index("t", Index("by_g", "g", "v"), progress=lambda d, n: calls.append((d, n)))
    monkeypatch.undo()
    assert len(commits) >= 250 // 40 + 1  # one transaction per chunk, not one for all
    assert calls[-1] == (250, 250)
    assert [i["v"] for i in t.query(1, index="by_g", limit=3)] == [1, 4, 7]
    assert store.integrity_check().ok


def test_interrupted_backfill_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s"
    with engine.open(path, region="r") as store:
        t = store.create_table("t", "id")
        with store.batch() as b:
            for i in range(100):
                b.put(t, {"id": i, "g": "x"})
        real = index_mod._step
        steps = 0

        def failing(*a: Any) -> Any:
            nonlocal steps
            steps += 1
            if steps == 3:
                raise KeyboardInterrupt
            return real(*a)

        monkeypatch.setattr(index_mod, "_step", failing)
        monkeypatch.setattr(index_mod, "BUILD_CHUNK", 10)
        with pytest.raises(KeyboardInterrupt):
            store.create_index("t", Index("by_g", "g"))
        monkeypatch.undo()
        with pytest.raises(ValidationError, match="being backfilled"):
            list(t.query("x", index="by_g"))
        t.put({"id": 1000, "g": "x"})  # written during the fill: maintained at once
        report = store.integrity_check()
        assert report.ok, report.problems
        assert t.indexes() == [Index("by_g", "g")]
    with engine.open(path) as store:  # reopening finishes the fill
        assert len(list(store.table("t").query("x", index="by_g"))) == 101
        assert store.integrity_check().ok


def test_drop_index_and_recreate(store: engine.Store, orders: engine.Table) -> None:
    for i in range(20):
        orders.put(_order("c", f"o{i}", status="NEW", placed_at=i, region="eu"))
    store.drop_index("orders", "by_region")
    assert [ix.name for ix in orders.indexes()] == ["by_status", "by_total"]
    env = store._e()
    prefix = index_mod.table_prefix("orders") + engine.keys.encode_value("by_region")
    assert not env.read(lambda txn: [k for k, _ in txn.cursor(db=env.idx)
                                     if bytes(k).startswith(prefix)])
    store.create_index("orders", Index("by_region", "region", "placed_at"))
    assert [o["placed_at"] for o in orders.query("eu", index="by_region", gte=18)] == [18, 19]
    assert store.integrity_check().ok


def test_definitions_replicate_and_receivers_backfill(make_store: Any) -> None:
    a, b = make_store("a"), make_store("b")
    ta = a.create_table("orders", "customer_id", "order_id")
    for i in range(30):
        ta.put(_order("c", f"o{i}", status="NEW" if i % 2 else "OLD", placed_at=i))
    pull(b, a)
    a.create_index("orders", Index("by_status", "status", "placed_at"))
    assert pull(b, a).applied == 1
    tb = b.table("orders")
    assert tb.indexes() == ta.indexes()
    assert list(tb.query("NEW", index="by_status")) == list(ta.query("NEW", index="by_status"))
    # later writes on either side keep both indexes in step
    tb.update("c", "o1", set={"status": "OLD"})
    ta.put(_order("c", "o99", status="NEW", placed_at=99))
    pull(a, b)
    pull(b, a)
    assert list(tb.query("NEW", index="by_status")) == list(ta.query("NEW", index="by_status"))
    a.drop_index("orders", "by_status")
    pull(b, a)
    assert tb.indexes() == []
    for s in (a, b):
        assert s.integrity_check().ok, s.integrity_check().problems
    kinds = [c.kind for c in b.changes() if c.kind.endswith("_index")]
    assert kinds == ["create_index", "drop_index"]


def test_merged_non_key_value_is_not_indexed(make_store: Any) -> None:
    a, b = make_store("a"), make_store("b")
    a.create_table("t", "id")
    pull(b, a)
    b.create_index("t", Index("by_g", "g"))
    a.table("t").put({"id": 1, "g": [1, 2]})  # a has no index: the write is fine there
    a.table("t").put({"id": 2, "g": "ok"})
    pull(b, a)  # b merges a list where its index wants a key: left out, not refused
    assert [i["id"] for i in b.table("t").query("ok", index="by_g")] == [2]
    assert b.table("t").get(1) == {"id": 1, "g": [1, 2]}
    assert b.integrity_check().ok
    pull(a, b)  # the definition reaches a, which already holds the list: sparse there too
    assert a.table("t").indexes() == [Index("by_g", "g")]
    assert a.integrity_check().ok


def test_concurrent_definitions_larger_version_wins(make_store: Any, clock: Any) -> None:
    a, b = make_store("a", wall_clock=clock), make_store("b", wall_clock=clock)
    a.create_table("t", "id")
    pull(b, a)
    for s in (a, b):
        s.table("t").put({"id": s.region, "x": 1, "y": 2})
    pull(a, b)
    pull(b, a)
    a.create_index("t", Index("i", "x"))
    clock.advance(5)
    b.create_index("t", Index("i", "y"))  # later: wins everywhere
    pull(a, b)
    pull(b, a)
    for s in (a, b):
        assert s.table("t").indexes() == [Index("i", "y")]
        assert len(list(s.table("t").query(2, index="i"))) == 2
        assert s.integrity_check().ok


def test_snapshot_merge_maintains_indexes(make_store: Any) -> None:
    a, b = make_store("a"), make_store("b")
    ta = a.create_table("t", "id", indexes=[Index("by_g", "g")])
    pull(b, a)
    for i in range(10):
        ta.put({"id": i, "g": i % 2})
    snap = a.snapshot()
    b.merge_snapshot(snap.vv, snap.tables, snap.items())
    assert [i["id"] for i in b.table("t").query(1, index="by_g")] == [1, 3, 5, 7, 9]
    assert b.integrity_check().problems == []


def test_integrity_check_finds_damage(store: engine.Store, orders: engine.Table) -> None:
    orders.put(_order("c1", "o1", status="NEW", placed_at=1))
    assert store.integrity_check().ok
    env = store._e()

    def damage(txn: Any) -> None:
        for k, _ in list(txn.cursor(db=env.idx)):
            txn.delete(bytes(k), db=env.idx)
        txn.put(b"\x30orders\x00\x01\x30stale\x00\x01", b"", db=env.idx)

    env.write(damage)
    report = store.integrity_check()
    assert not report.ok
    assert any("items without their entry" in p for p in report.problems)
    assert report.as_dict()["problems"] == report.problems



def test_definitions_travel_in_snapshots(make_store: Any) -> None:
    from replication.exchange import apply_segment, snapshot_segments
    from replication.segment import decode_segment

    a, b = make_store("a"), make_store("b")
    ta = a.create_table("t", "id", indexes=[Index("by_g", "g", projection=["v"]),
                                            Index("gone", "v")])
    a.drop_index("t", "gone")
    for i in range(10):
        ta.put({"id": i, "g": i % 2, "v": i})
    snap = a.snapshot()
    assert sorted((d.index.name, d.dropped) for d in snap.indexes) == [
        ("by_g", False), ("gone", True)]
    for _, data in snapshot_segments(a, max_records=4):  # several parts: defs in part 0
        apply_segment(b, decode_segment(data))
    tb = b.table("t")
    assert tb.indexes() == [Index("by_g", "g", projection=["v"])]
    assert list(tb.query(1, index="by_g")) == list(ta.query(1, index="by_g"))
    assert b.integrity_check().ok


def test_bad_snapshot_index_definitions_merge_nothing(make_store: Any) -> None:
    a, b = make_store("a"), make_store("b")
    a.create_table("t", "id", indexes=[Index("by_g", "g")])
    a.table("t").put({"id": 1, "g": "x"})
    snap = a.snapshot()
    good = snap.indexes[0]
    before = b.digest()
    for bad, message in ((["nope"], "not an IndexDef"), ("by_g", "iterable of IndexDef"),
                         ([index_mod.snapshot_def("t", "x", Index("x", "g"), (1, -1))],
                          "bad version")):
        with pytest.raises(ValidationError, match=message):
            b.merge_snapshot(snap.vv, snap.tables, snap.items(), bad)  # type: ignore[arg-type]
        assert b.digest() == before and b.tables() == []
    b.merge_snapshot(snap.vv, snap.tables, snap.items(), [good])
    assert [i["id"] for i in b.table("t").query("x", index="by_g")] == [1]


def test_writes_during_a_backfill_are_kept(store: engine.Store,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Another thread writes (moving items in and out of the index, ahead of and behind the
    fill's cursor) while create_index fills in small chunks: the result equals the items."""
    import threading

    t = store.create_table("t", "id")
    with store.batch() as b:
        for i in range(600):
            b.put(t, {"id": i, "g": i % 3})
    monkeypatch.setattr(index_mod, "BUILD_CHUNK", 25)
    done = threading.Event()
    writes = 0

    def writer() -> None:
        nonlocal writes
        n = 0
        while not done.is_set() or writes < 200:
            k = (n * 37) % 600
            if n % 4 == 0:
                t.update(k, remove=["g"])
            else:
                t.update(k, set={"g": n % 5})
            n += 1
            writes += 1

    th = threading.Thread(target=writer)
    th.start()
    try:
        store.create_index("t", Index("by_g", "g"))
        during = writes
    finally:
        done.set()
        th.join(timeout=60)
    assert during > 0, "no write landed while the index was being filled"
    report = store.integrity_check()
    assert report.ok, report.problems
    assert sum(len(list(t.query(g, index="by_g"))) for g in range(5)) == \
        sum(1 for i in t.scan() if "g" in i)


def test_delete_table_takes_its_indexes(store: engine.Store) -> None:
    t = store.create_table("t", "id", indexes=[Index("by_g", "g")])
    keep = store.create_table("u", "id", indexes=[Index("by_g", "g")])
    for i in range(5):
        t.put({"id": i, "g": "a"})
        keep.put({"id": i, "g": "a"})
    store.delete_table("t")
    report = store.integrity_check()
    assert report.ok and report.index_entries == 5, report.problems
    t = store.create_table("t", "id")  # a new table: no index of the old one
    assert t.indexes() == []
    store.create_index("t", Index("by_g", "g"))
    t.put({"id": 9, "g": "a"})
    assert [i["id"] for i in t.query("a", index="by_g")] == [9]
    assert store.integrity_check().ok
