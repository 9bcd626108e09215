"""Store: lifecycle, identity, copies, map growth, tables, the change feed, vv, digest, stats."""

from __future__ import annotations

import shutil
import threading
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

import engine
from engine.clock import ManualClock

# -- lifecycle -----------------------------------------------------------------------------


def test_open_creates_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "store"
    with engine.open(path, region="ap-south-1") as s:
        assert s.region == "ap-south-1"
        assert 0 < s.node_id < 2**64
        node = s.node_id
        s.create_table("t", partition_key="k").put({"k": 1})
        assert not s.closed
        assert "ap-south-1" in repr(s) and f"{node:016x}" in repr(s)
    assert s.closed and "closed" in repr(s)
    with engine.open(path) as s:  # region may be omitted once it exists
        assert s.node_id == node
        assert s.region == "ap-south-1"
        assert s.table("t").get(1) == {"k": 1}
    with engine.open(str(path), region="ap-south-1") as s:
        assert s.node_id == node


def test_new_store_needs_region(tmp_path: Path) -> None:
    with pytest.raises(engine.ValidationError, match="region="):
        engine.open(tmp_path / "s")
    assert not (tmp_path / "s" / "data.mdb").exists()
    with pytest.raises(engine.ValidationError, match="not a regiondb store"):
        engine.open(tmp_path / "s", region="r", create=False)


def test_region_mismatch(tmp_path: Path) -> None:
    engine.open(tmp_path / "s", region="us-east-1").close()
    with pytest.raises(engine.ValidationError, match="'us-east-1', not 'eu-west-1'"):
        engine.open(tmp_path / "s", region="eu-west-1")
    with engine.open(tmp_path / "s") as s:  # the failed open left it usable
        assert s.region == "us-east-1"


def test_path_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(engine.ValidationError, match="not a directory"):
        engine.open(tmp_path / "f", region="r")


def test_close_twice_and_context_manager(tmp_path: Path) -> None:
    s = engine.open(tmp_path / "s", region="r")
    s.close()
    s.close()
    with engine.open(tmp_path / "s") as s2:
        assert s2.tables() == []


def _closed_calls(s: engine.Store, t: engine.Table) -> dict[str, Any]:
    return {
        "create_table": lambda: s.create_table("u", partition_key="k"),
        "table": lambda: s.table("t"),
        "tables": lambda: s.tables(),
        "table_defs": lambda: s.table_defs(),
        "batch": lambda: s.batch(),
        "changes": lambda: list(s.changes()),
        "version_vector": lambda: s.version_vector(),
        "digest": lambda: s.digest(),
        "conflicts": lambda: list(s.conflicts()),
        "conflict_count": lambda: s.conflict_count(),
        "stats": lambda: s.stats(),
        "log_range": lambda: s.log_range(s.node_id, 0),
        "log_floor": lambda: s.log_floor(),
        "apply_changes": lambda: s.apply_changes([]),
        "snapshot": lambda: s.snapshot(),
        "merge_snapshot": lambda: s.merge_snapshot({}, [], []),
        "compact": lambda: s.compact({}),
        "forget": lambda: s.forget(12345),
        "forgotten": lambda: s.forgotten(),
        "position": lambda: s.position(),
        "tick": lambda: s.tick(),
        "get_meta": lambda: s.get_meta("x"),
        "set_meta": lambda: s.set_meta("x", 1),
        "put": lambda: t.put({"k": 2}),
        "get": lambda: t.get(1),
        "update": lambda: t.update(1, set={"a": 1}),
        "delete": lambda: t.delete(1),
        "query": lambda: list(t.query(1)),
        "scan": lambda: list(t.scan()),
    }


@pytest.mark.parametrize("method", list(_closed_calls(None, None)))  # type: ignore[arg-type]
def test_every_method_raises_store_closed(tmp_path: Path, method: str) -> None:
    s = engine.open(tmp_path / "s", region="r")
    t = s.create_table("t", partition_key="k")
    t.put({"k": 1})
    s.close()
    with pytest.raises(engine.StoreClosed, match="closed"):
        _closed_calls(s, t)[method]()


def test_batch_commit_after_close(store: engine.Store) -> None:
    t = store.create_table("t", partition_key="k")
    b = store.batch()
    b.put(t, {"k": 1})
    store.close()
    with pytest.raises(engine.StoreClosed):
        b.__exit__(None, None, None)


def test_iteration_interrupted_by_close(store: engine.Store) -> None:
    t = store.create_table("t", partition_key="k")
    with store.batch() as b:
        for i in range(600):
            b.put(t, {"k": i})
    it = t.scan()
    next(it)
    store.close()
    with pytest.raises(engine.StoreClosed):
        list(it)


# -- identity -------------------------------------------------------------------------------


def test_same_path_twice_in_one_process_shares_the_environment(tmp_path: Path) -> None:
    a = engine.open(tmp_path / "s", region="r")
    b = engine.open(tmp_path / "s" / ".." / "s")
    try:
        assert a.node_id == b.node_id
        ta = a.create_table("t", partition_key="k")
        ta.put({"k": 1})
        assert b.table("t").get(1) == {"k": 1}
        a.close()
        assert b.table("t").get(1) == {"k": 1}  # still open through b
        with pytest.raises(engine.ValidationError, match="durable"):
            engine.open(tmp_path / "s", durable=False)
    finally:
        a.close()
        b.close()


def test_copied_directory_becomes_a_new_node(tmp_path: Path) -> None:
    with engine.open(tmp_path / "orig", region="r") as s:
        t = s.create_table("t", partition_key="k")
        for i in range(5):
            t.put({"k": i})
        old, old_vv, old_digest = s.node_id, s.version_vector(), s.digest()
    assert old_vv == {old: 6}
    shutil.copytree(tmp_path / "orig", tmp_path / "copy")
    with engine.open(tmp_path / "copy") as c:
        assert c.node_id != old
        assert c.region == "r"
        assert c.digest() == old_digest  # keeps the data
        assert c.version_vector() == {old: 6}  # the old node's writes, now as a remote origin
        assert [r[1] for r in c.log_range(old, 0)] == [1, 2, 3, 4, 5, 6]
        c.table("t").put({"k": "new"})
        assert c.version_vector() == {old: 6, c.node_id: 1}
        new = c.node_id
    with engine.open(tmp_path / "copy") as c:  # and stays that new node
        assert c.node_id == new
    with engine.open(tmp_path / "orig") as s:  # the original is unaffected
        assert s.node_id == old


def test_copy_receiving_the_originals_later_writes(tmp_path: Path) -> None:
    with engine.open(tmp_path / "orig", region="r") as s:
        s.create_table("t", partition_key="k").put({"k": 1})
    shutil.copytree(tmp_path / "orig", tmp_path / "copy")
    with engine.open(tmp_path / "orig") as s, engine.open(tmp_path / "copy") as c:
        s.table("t").put({"k": 2})
        report = c.apply_changes(s.log_range(s.node_id, 0))
        assert (report.applied, report.skipped) == (1, 2)
        assert c.digest() == s.digest()


# -- map growth ----------------------------------------------------------------------------


def test_map_grows_by_itself(tmp_path: Path) -> None:
    with engine.open(tmp_path / "s", region="r", map_size=256 << 10, durable=False) as s:
        t = s.create_table("t", partition_key="k")
        start = s.stats()["map_size"]
        blob = b"x" * 4000
        for i in range(1000):  # ~4 MiB of values plus the log's copy
            t.put({"k": i, "blob": blob, "n": i})
        with s.batch() as b:  # one large transaction too
            for i in range(1000, 1500):
                b.put(t, {"k": i, "blob": blob})
        assert s.stats()["map_size"] > start
        assert sum(1 for _ in t.scan()) == 1500
        assert t.get(999) == {"k": 999, "blob": blob, "n": 999}
    # reopen with the small size
    with engine.open(tmp_path / "s", map_size=256 << 10, durable=False) as s:
        assert s.table("t").get(1400)["blob"] == blob
        s.table("t").put({"k": "after", "blob": blob * 10})


def test_map_grows_while_another_thread_reads(tmp_path: Path) -> None:
    with engine.open(tmp_path / "s", region="r", map_size=256 << 10, durable=False) as s:
        t = s.create_table("t", partition_key="k")
        t.put({"k": -1, "v": "first"})
        stop = threading.Event()
        errors: list[BaseException] = []
        reads = [0]

        def reader() -> None:
            try:
                while not stop.is_set():
                    assert t.get(-1) == {"k": -1, "v": "first"}
                    sum(1 for _ in t.scan(limit=20))
                    reads[0] += 1
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=reader) for _ in range(2)]
        for th in threads:
            th.start()
        try:
            blob = b"y" * 8000
            for i in range(400):
                t.put({"k": i, "blob": blob})
        finally:
            stop.set()
            for th in threads:
                th.join(timeout=30)
        assert not errors, errors
        assert reads[0] > 0
        assert s.stats()["map_size"] >= 2 << 20
        assert sum(1 for _ in t.scan()) == 401


# -- tables --------------------------------------------------------------------------------


def test_create_table_idempotent_and_schema_error(store: engine.Store) -> None:
    t = store.create_table("orders", partition_key="customer_id", sort_key="order_id")
    assert (t.name, t.partition_key, t.sort_key) == ("orders", "customer_id", "order_id")
    seq = store.version_vector()[store.node_id]
    again = store.create_table("orders", partition_key="customer_id", sort_key="order_id")
    assert again.sort_key == "order_id"
    assert store.version_vector()[store.node_id] == seq  # no second log entry
    with pytest.raises(engine.SchemaError, match="orders"):
        store.create_table("orders", partition_key="customer_id")
    with pytest.raises(engine.SchemaError):
        store.create_table("orders", partition_key="order_id", sort_key="customer_id")
    assert "orders" in repr(t)


def test_table_not_found(store: engine.Store) -> None:
    with pytest.raises(engine.TableNotFound, match="'nope'") as info:
        store.table("nope")
    assert isinstance(info.value, KeyError)
    assert str(info.value).startswith("table 'nope'")


def test_tables_sorted_and_persisted(tmp_path: Path) -> None:
    with engine.open(tmp_path / "s", region="r") as s:
        for name in ("b", "a", "c.d-e_f"):
            s.create_table(name, partition_key="k")
        assert s.tables() == ["a", "b", "c.d-e_f"]
        defs = {d.name: d for d in s.table_defs()}
        assert defs["a"].partition_key == "k" and defs["a"].sort_key is None
        assert defs["a"].version[1] == s.node_id
    with engine.open(tmp_path / "s") as s:
        assert s.tables() == ["a", "b", "c.d-e_f"]
        assert s.table("b").partition_key == "k"


def test_table_definitions_are_changes(store: engine.Store) -> None:
    store.create_table("t", partition_key="pk", sort_key="sk")
    (change,) = list(store.changes())
    assert change.kind == "create_table"
    assert change.table == "t" and change.key == {}
    assert change.delta == {"partition_key": "pk", "sort_key": "sk"}
    assert change.new_image is None
    assert change.origin == store.node_id and change.seq == 1


# -- the change feed -------------------------------------------------------------------------


def test_changes_feed(store: engine.Store) -> None:
    t = store.create_table("t", partition_key="k", sort_key="s")
    t.put({"k": "a", "s": 1, "x": 1})
    t.update("a", 1, set={"y": 2}, remove=["x"])
    t.delete("a", 1)
    t.delete("never", 0)
    with store.batch() as b:
        b.put(t, {"k": "b", "s": 1})
        b.update(t, "b", 2, set={"z": 3})
    ch = list(store.changes())
    assert [c.kind for c in ch] == [
        "create_table", "put", "update", "delete", "delete", "put", "update"]
    assert [c.position for c in ch] == [1, 2, 3, 4, 5, 6, 6]
    assert [c.seq for c in ch] == [1, 2, 3, 4, 5, 6, 6]
    assert all(c.origin == store.node_id and c.version[1] == store.node_id for c in ch)
    assert all(a.hlc < b.hlc for a, b in pairwise(ch[:6]))
    put, upd, dele = ch[1], ch[2], ch[3]
    assert put.key == {"k": "a", "s": 1}
    assert put.delta == {"item": {"k": "a", "s": 1, "x": 1}}
    assert put.new_image == {"k": "a", "s": 1, "x": 1}
    # an update writes its key attributes too (they mark the item as present)
    assert upd.delta == {"set": {"k": "a", "s": 1, "y": 2}, "remove": ["x"]}
    assert upd.new_image == {"k": "a", "s": 1, "y": 2}
    assert dele.delta == {} and dele.new_image is None
    assert ch[5].txid == ch[6].txid == (store.node_id, 6)
    assert ch[5].version == ch[6].version
    assert ch[6].new_image == {"k": "b", "s": 2, "z": 3}


def test_changes_since_and_limit(tmp_path: Path) -> None:
    store = engine.open(tmp_path / "s", region="r", durable=False)
    t = store.create_table("t", partition_key="k")
    for i in range(600):  # more than one internal chunk
        t.put({"k": i})
    everything = list(store.changes())
    assert len(everything) == 601
    assert [c.position for c in everything] == list(range(1, 602))
    assert [c.position for c in store.changes(since=599)] == [600, 601]
    assert list(store.changes(since=601)) == []
    assert [c.position for c in store.changes(since=10, limit=3)] == [11, 12, 13]
    assert len(list(store.changes(limit=300))) == 300
    assert store.position() == 601
    store.close()


def test_changes_image_is_state_after_that_transaction(store: engine.Store) -> None:
    t = store.create_table("t", partition_key="k")
    t.put({"k": 1, "a": 1})
    t.update(1, set={"b": 2})
    t.put({"k": 1, "c": 3})
    images = [c.new_image for c in store.changes()][1:]
    assert images == [{"k": 1, "a": 1}, {"k": 1, "a": 1, "b": 2}, {"k": 1, "c": 3}]


def test_listeners(store: engine.Store) -> None:
    seen: list[int] = []

    def bad(pos: int) -> None:
        raise RuntimeError("listener failure must not fail the write")

    store.add_listener(seen.append)
    store.add_listener(bad)
    t = store.create_table("t", partition_key="k")
    t.put({"k": 1})
    store.remove_listener(bad)
    store.remove_listener(bad)  # absent: fine
    t.put({"k": 2})
    assert seen == [1, 2, 3]


# -- version vector, log, digest, stats, meta -------------------------------------------------


def test_version_vector_and_log_range(store: engine.Store) -> None:
    assert store.version_vector() == {}
    t = store.create_table("t", partition_key="k")
    for i in range(4):
        t.put({"k": i})
    assert store.version_vector() == {store.node_id: 5}
    rng = store.log_range(store.node_id, 2)
    assert [(o, s) for o, s, _ in rng] == [(store.node_id, 3), (store.node_id, 4),
                                           (store.node_id, 5)]
    assert all(isinstance(raw, bytes) for _, _, raw in rng)
    assert [s for _, s, _ in store.log_range(store.node_id, 0, limit=2)] == [1, 2]
    assert store.log_range(store.node_id, 5) == []
    assert store.log_range(12345, 0) == []
    assert store.log_floor() == {}


def test_digest_depends_on_visible_state_only(make_store: Any) -> None:
    a, b = make_store("a"), make_store("b")
    assert a.digest() == b.digest()
    ta, tb = (s.create_table("t", partition_key="k") for s in (a, b))
    assert a.digest() == b.digest()  # tables are part of it; node and versions are not
    ta.put({"k": 1, "x": 1})
    assert a.digest() != b.digest()
    tb.put({"k": 1, "x": 2})
    assert a.digest() != b.digest()
    tb.update(1, set={"x": 1})
    assert a.digest() == b.digest()
    tb.put({"k": 2})
    tb.delete(2)  # a tombstone is not visible
    assert a.digest() == b.digest()
    ta.update(1, set={"y": 1})
    assert a.digest() != b.digest()
    ta.update(1, remove=["y"])  # a removed attribute is not visible either
    assert a.digest() == b.digest()


def test_digest_differs_by_table_schema(make_store: Any) -> None:
    a, b = make_store("a"), make_store("b")
    a.create_table("t", partition_key="k")
    b.create_table("t", partition_key="k", sort_key="s")
    assert a.digest() != b.digest()


def test_digest_is_stable_across_reopen(tmp_path: Path) -> None:
    with engine.open(tmp_path / "s", region="r") as s:
        t = s.create_table("t", partition_key="k")
        t.put({"k": 1, "v": {"nested": [1, 2.5, None]}, "s": {"b", "a"}})
        before = s.digest()
    with engine.open(tmp_path / "s") as s:
        assert s.digest() == before


def test_stats(store: engine.Store) -> None:
    t = store.create_table("t", partition_key="k")
    t.put({"k": 1})
    t.put({"k": 2})
    t.delete(2)
    st = store.stats()
    assert st["items"] == 2  # the tombstone is a record until compaction
    assert st["log_entries"] == 4
    assert st["local_seq"] == 4 and st["position"] == 4
    assert st["node_id"] == store.node_id and st["region"] == "test-1"
    assert st["durable"] is True
    assert st["conflicts_total"] == 0 and st["conflicts_stored"] == 0
    assert st["file_bytes"] > 0 and st["map_size"] >= st["file_bytes"]
    assert st["hlc"] == list(store.changes())[-1].hlc


def test_meta_values(tmp_path: Path) -> None:
    with engine.open(tmp_path / "s", region="r") as s:
        assert s.get_meta("peers") is None
        s.set_meta("peers", {"a": [1, 2]})
        v0 = s.version_vector()
    with engine.open(tmp_path / "s") as s:
        assert s.get_meta("peers") == {"a": [1, 2]}
        assert s.version_vector() == v0  # not a change


def test_non_durable_store(tmp_path: Path) -> None:
    with engine.open(tmp_path / "s", region="r", durable=False) as s:
        assert s.durable is False
        s.create_table("t", partition_key="k").put({"k": 1})
        assert "non-durable" in repr(s)
    with engine.open(tmp_path / "s") as s:
        assert s.table("t").get(1) == {"k": 1}


def test_manual_clock_injected(tmp_path: Path) -> None:
    clock = ManualClock(1_000_000)
    with engine.open(tmp_path / "s", region="r", wall_clock=clock) as s:
        s.create_table("t", partition_key="k")
        assert [c.hlc >> 16 for c in s.changes()] == [1_000_000]
