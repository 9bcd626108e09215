"""Counters and sets through the store: local ADD/DELETE, replication, conflicts, the feed."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

import engine
from replication import exchange as ex
from replication.segment import decode_segment


@pytest.fixture()
def nodes(tmp_path: Path) -> Iterator[list[engine.Store]]:
    clock = engine.ManualClock()
    stores = [engine.open(tmp_path / r, region=r, durable=False, wall_clock=clock)
              for r in ("mumbai", "virginia", "ireland")]
    try:
        stores[0].create_table("stock", partition_key="sku")
        stores[0].table("stock").put({"sku": "tea", "stock": 100, "tags": {"new"}})
        sync_all(stores)
        yield stores
    finally:
        for s in stores:
            s.close()


def sync(src: engine.Store, dst: engine.Store) -> None:
    """One segment exchange src -> dst, through the real segment encoding."""
    for data in ex.segments_for(src, dst.version_vector()):
        ex.apply_segment(dst, decode_segment(data))


def sync_all(stores: list[engine.Store]) -> None:
    for _ in range(2):
        for a in stores:
            for b in stores:
                if a is not b:
                    sync(a, b)


def test_concurrent_decrements_in_three_regions_all_count(nodes: list[engine.Store]) -> None:
    for i, s in enumerate(nodes):
        for _ in range(i + 1):
            assert s.table("stock").update("tea", add={"stock": -1})["stock"] <= 99
    sync_all(nodes)
    assert [s.table("stock").get("tea")["stock"] for s in nodes] == [94, 94, 94]
    assert len({s.digest() for s in nodes}) == 1
    assert [s.conflict_count() for s in nodes] == [0, 0, 0]  # increments never conflict


def test_the_feed_carries_the_add_and_values_read_as_numbers(nodes: list[engine.Store]) -> None:
    a, b = nodes[0], nodes[1]
    pos = b.position()
    a.table("stock").update("tea", add={"stock": 5, "tags": {"gift"}})
    a.table("stock").update("tea", delete={"tags": {"new"}})
    sync(a, b)
    feed = [c for c in b.changes(since=pos) if c.kind == "update"]
    assert feed[0].delta["add"] == {"stock": 5, "tags": {"gift"}}
    assert feed[1].delta["delete"] == {"tags": {"new"}}
    assert feed[-1].new_image == {"sku": "tea", "stock": 105, "tags": {"gift"}}
    t = b.table("stock")
    assert t.get("tea") == {"sku": "tea", "stock": 105, "tags": {"gift"}}
    assert [it["sku"] for it in t.scan(filter="stock > :n", values={":n": 104})] == ["tea"]
    with pytest.raises(engine.ConditionFailed):
        t.update("tea", add={"stock": 1}, condition="stock < :n", values={":n": 100})


def test_a_set_resets_and_keeps_the_adds_it_had_not_seen(nodes: list[engine.Store]) -> None:
    a, b = nodes[0], nodes[1]
    a.table("stock").update("tea", add={"stock": -3})      # not yet seen by b
    b.table("stock").update("tea", set={"stock": 50})      # a stocktake on b
    sync_all(nodes)
    assert [s.table("stock").get("tea")["stock"] for s in nodes] == [47, 47, 47]
    b.table("stock").update("tea", set={"stock": 10})      # b has now seen every ADD
    sync_all(nodes)
    assert [s.table("stock").get("tea")["stock"] for s in nodes] == [10, 10, 10]


def test_concurrent_set_overwrites_are_still_conflicts(nodes: list[engine.Store]) -> None:
    a, b = nodes[0], nodes[1]
    a.table("stock").update("tea", set={"stock": 1})
    b.table("stock").update("tea", set={"stock": 2})
    sync(a, b)
    sync(b, a)
    assert a.conflict_count() + b.conflict_count() >= 1
    assert a.table("stock").get("tea") == b.table("stock").get("tea")


def test_wrong_types_are_refused_before_anything_is_written(nodes: list[engine.Store]) -> None:
    t = nodes[0].table("stock")
    t.put({"sku": "mug", "name": "Mug"})
    before = nodes[0].position()
    with pytest.raises(engine.ValidationError):
        t.update("mug", add={"name": 1})
    with pytest.raises(engine.ValidationError):
        t.update("tea", add={"tags": {1}})  # a number into a string set
    assert nodes[0].position() == before


def test_decimal_counters_and_snapshots(nodes: list[engine.Store], tmp_path: Path) -> None:
    a = nodes[0]
    a.table("stock").update("tea", add={"weight": Decimal("0.25")})
    a.table("stock").update("tea", add={"weight": Decimal("0.5")})
    snap = a.snapshot()
    with engine.open(tmp_path / "new", region="new", durable=False) as fresh:
        fresh.merge_snapshot(snap.vv, snap.tables, snap.items())
        assert fresh.table("stock").get("tea")["weight"] == Decimal("0.75")
        assert fresh.digest() == a.digest()


def test_put_and_delete_are_observed_resets(nodes: list[engine.Store]) -> None:
    a, b = nodes[0], nodes[1]
    a.table("stock").update("tea", add={"stock": -1})
    sync(a, b)
    b.table("stock").put({"sku": "tea", "stock": 7})       # saw the -1: it is gone
    a.table("stock").update("tea", add={"stock": -2})      # concurrent: survives the put
    sync_all(nodes)
    assert {s.table("stock").get("tea")["stock"] for s in nodes} == {5}
    b.table("stock").delete("tea")
    sync_all(nodes)
    assert {s.table("stock").get("tea") is None for s in nodes} == {True}
    a.table("stock").update("tea", add={"stock": 1})       # a new item: starts from 0
    sync_all(nodes)
    assert {s.table("stock").get("tea")["stock"] for s in nodes} == {1}
