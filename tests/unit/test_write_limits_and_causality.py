"""Conflicts need real concurrency whatever the delivery order; writes must stay replicable."""

from __future__ import annotations

from typing import Any

import engine


def _ship(src: engine.Store, dst: engine.Store, origin: int | None = None) -> engine.ApplyReport:
    origin = src.node_id if origin is None else origin
    have = dst.version_vector().get(origin, 0)
    return dst.apply_changes(src.log_range(origin, have))


def _setup(make_store: Any) -> tuple[engine.Store, ...]:
    clock = engine.ManualClock()
    stores = tuple(make_store(n, wall_clock=clock) for n in "abc")
    t = stores[0].create_table("orders", partition_key="id")
    for s in stores[1:]:
        _ship(stores[0], s)
    t.put({"id": "o1", "status": "NEW"})
    for s in stores[1:]:
        _ship(stores[0], s)
    clock.advance(5)
    return stores


def test_late_older_change_the_winner_had_seen_is_no_conflict(make_store: Any) -> None:
    a, b, c = _setup(make_store)
    a.table("orders").update("o1", set={"status": "PAID"})
    _ship(a, b)
    b.table("orders").update("o1", set={"status": "SHIPPED"})  # b saw PAID first
    _ship(b, c)                     # c gets b's newer write before a's older one
    _ship(a, c)
    assert c.table("orders").get("o1")["status"] == "SHIPPED"
    assert [x.attribute for x in c.conflicts()] == []
    assert c.conflict_count() == 0


def test_concurrent_writes_are_recorded_on_both_sides_and_at_a_third_node(make_store: Any) -> None:
    a, b, c = _setup(make_store)
    a.table("orders").update("o1", set={"status": "PAID"})
    b.table("orders").update("o1", set={"status": "CANCELLED"})  # neither saw the other
    _ship(a, b)
    _ship(b, a)
    _ship(b, c)
    _ship(a, c)
    final = a.table("orders").get("o1")["status"]
    assert b.table("orders").get("o1")["status"] == c.table("orders").get("o1")["status"] == final
    for s in (a, b, c):
        [conflict] = list(s.conflicts())
        assert conflict.attribute == "status"
        assert conflict.winner_value == final
        assert conflict.value == ({"PAID", "CANCELLED"} - {final}).pop()


def test_items_and_transactions_too_large_to_replicate_are_refused(store: engine.Store) -> None:
    import pytest

    t = store.create_table("blobs", partition_key="id")
    before = (store.digest(), store.version_vector())
    with pytest.raises(engine.ValidationError, match="limit"):
        t.put({"id": 1, "blob": b"x" * (5 << 20)})
    with pytest.raises(engine.ValidationError, match="split the batch"), store.batch() as b:
        for i in range(6):
            b.put(t, {"id": i, "blob": b"x" * (3 << 20)})
    assert (store.digest(), store.version_vector()) == before
