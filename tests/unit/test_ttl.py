"""TTL: the table's TTL attribute (replicated), expiry on the read paths, ``store.expire``.

Time is the store's injectable wall clock (``engine.open(..., wall_clock=...)``), never a sleep.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

import engine
from engine.ttl import expired

NOW_MS = 1_800_000_000_000
NOW_S = NOW_MS // 1000


@pytest.fixture()
def clock() -> engine.ManualClock:
    return engine.ManualClock(NOW_MS)


@pytest.fixture()
def store(tmp_path: Path, clock: engine.ManualClock) -> Iterator[engine.Store]:
    with engine.open(tmp_path / "a", region="a", wall_clock=clock) as s:
        yield s


@pytest.fixture()
def other(tmp_path: Path, clock: engine.ManualClock) -> Iterator[engine.Store]:
    with engine.open(tmp_path / "b", region="b", wall_clock=clock) as s:
        yield s


def sync(src: engine.Store, dst: engine.Store) -> None:
    for origin, seq in src.version_vector().items():
        dst.apply_changes(src.log_range(origin, dst.version_vector().get(origin, 0)))
        assert dst.version_vector().get(origin, 0) == seq


def test_expired_is_a_number_at_or_before_now() -> None:
    assert expired({"e": NOW_S}, "e", NOW_S)
    assert expired({"e": Decimal(NOW_S) - Decimal("0.5")}, "e", NOW_S)
    assert expired({"e": float(NOW_S - 1)}, "e", NOW_S)
    assert not expired({"e": NOW_S + 1}, "e", NOW_S)
    for never in ("1", True, None, b"1", [1], {1}):
        assert not expired({"e": never}, "e", NOW_S)
    assert not expired({}, "e", NOW_S) and not expired(None, "e", NOW_S)
    assert not expired({"e": 1}, None, NOW_S)


def test_ttl_attribute_is_set_replicated_and_latest_wins(store: engine.Store,
                                                          other: engine.Store) -> None:
    store.create_table("t", partition_key="k", ttl_attribute="expires")
    assert store.table_defs()[0].ttl_attribute == "expires"
    sync(store, other)
    assert other.table_defs()[0].ttl_attribute == "expires"
    other.set_ttl("t", "gone_at")
    store.set_ttl("t", None)  # concurrent: the later version wins on both
    sync(store, other)
    sync(other, store)
    assert store.table_defs()[0].ttl_attribute == other.table_defs()[0].ttl_attribute
    assert store.digest() == other.digest()
    feed = [c for c in store.changes() if c.kind == "set_ttl"]
    assert [c.delta["ttl_attribute"] for c in feed] == ["expires", None, "gone_at"]


def test_set_ttl_errors(store: engine.Store) -> None:
    with pytest.raises(engine.TableNotFound, match="'nope'"):
        store.set_ttl("nope", "e")
    store.create_table("t", partition_key="k")
    with pytest.raises(engine.ValidationError, match="attribute names"):
        store.set_ttl("t", "")
    before = store.position()
    store.set_ttl("t", None)  # no TTL already: nothing changes, nothing is logged
    assert store.position() == before


def test_a_ttl_that_arrives_before_its_table_waits_for_it(store: engine.Store,
                                                          other: engine.Store) -> None:
    store.create_table("t", partition_key="k")
    sync(store, other)
    other.set_ttl("t", "e")
    with engine.open(store.path.parent / "c", region="c", wall_clock=store._wall) as third:
        third.apply_changes(other.log_range(other.node_id, 0))  # the TTL, not the table
        assert third.tables() == []
        third.apply_changes(store.log_range(store.node_id, 0))
        assert third.table_defs()[0].ttl_attribute == "e"


def test_snapshot_carries_the_ttl(store: engine.Store, other: engine.Store) -> None:
    store.create_table("t", partition_key="k", ttl_attribute="e")
    snap = store.snapshot()
    other.merge_snapshot(snap.vv, snap.tables, snap.items())
    assert other.table_defs()[0].ttl_attribute == "e"
    assert other.digest() == store.digest()


def ttl_table(store: engine.Store) -> engine.Table:
    t = store.create_table("sessions", partition_key="user", sort_key="id",
                           ttl_attribute="expires_at")
    t.put({"user": "u", "id": "old", "expires_at": NOW_S - 10})
    t.put({"user": "u", "id": "now", "expires_at": NOW_S})
    t.put({"user": "u", "id": "later", "expires_at": NOW_S + 60})
    t.put({"user": "u", "id": "text", "expires_at": str(NOW_S - 10)})  # not a number: never
    t.put({"user": "u", "id": "none"})
    return t


LIVE = ["later", "none", "text"]


def test_expired_items_vanish_from_every_read_at_once(store: engine.Store,
                                                      clock: engine.ManualClock) -> None:
    t = ttl_table(store)
    assert t.get("u", "old") is None and t.get("u", "now") is None
    assert t.get("u", "later") is not None
    assert [it["id"] for it in t.query("u")] == LIVE
    assert [it["id"] for it in t.scan()] == LIVE
    page = t.query_page("u", limit=10)
    assert [it["id"] for it in page.items] == LIVE
    assert [it["id"] for it in t.scan_page().items] == LIVE
    assert store.get_many([("sessions", "u", "old"), ("sessions", "u", "later")])[0] is None
    clock.advance(61_000)  # time passes: "later" expires too, without any write
    assert t.get("u", "later") is None
    assert [it["id"] for it in t.scan()] == ["none", "text"]


def test_expired_items_vanish_from_indexes(store: engine.Store) -> None:
    t = store.create_table("s", partition_key="k", ttl_attribute="exp",
                           indexes=[engine.Index("by_group", partition_key="group")])
    t.put({"k": "a", "group": "g", "exp": NOW_S - 1})
    t.put({"k": "b", "group": "g", "exp": NOW_S + 100})
    assert [it["k"] for it in t.query("g", index="by_group")] == ["b"]


def test_expire_deletes_them_as_ttl_deletes_that_replicate(store: engine.Store,
                                                           other: engine.Store) -> None:
    t = ttl_table(store)
    sync(store, other)
    pos = store.position()
    assert store.expire() == 2
    assert store.expire() == 0  # idempotent
    feed = list(store.changes(since=pos))
    assert sorted(c.key["id"] for c in feed) == ["now", "old"]
    assert all(c.kind == "delete" and c.ttl for c in feed)
    assert not any(c.ttl for c in store.changes() if c.position <= pos)
    sync(store, other)
    other_feed = [c for c in other.changes() if c.kind == "delete"]
    assert len(other_feed) == 2 and all(c.ttl for c in other_feed)
    assert other.digest() == store.digest()
    assert other.expire() == 0  # several regions expiring one item is harmless
    assert t.get("u", "later") is not None


def test_expire_limit_and_a_refreshed_item_survives(store: engine.Store,
                                                    clock: engine.ManualClock) -> None:
    t = ttl_table(store)
    assert store.expire(limit=1) == 1  # "now" (key order): "old" is still there, expired
    store.table("sessions").update("u", "old", set={"expires_at": NOW_S + 3600})  # refreshed
    assert store.expire() == 0
    assert t.get("u", "old") is not None and t.get("u", "now") is None
    with pytest.raises(engine.ValidationError, match="limit"):
        store.expire(limit=0)


def test_turning_ttl_off_shows_items_again(store: engine.Store) -> None:
    t = ttl_table(store)
    store.set_ttl("sessions", None)
    assert len(list(store.table("sessions").scan())) == 5
    assert t.name == "sessions"


def test_expirer_runs_expire_in_the_background(store: engine.Store) -> None:
    ttl_table(store)
    from engine.ttl import Expirer

    with Expirer(store, interval=0.01) as e:
        deadline = time.monotonic() + 10
        while e.expired < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert e.expired == 2
    with pytest.raises(engine.ValidationError, match="interval"):
        Expirer(store, interval=0)
