"""TTL: the table's TTL attribute (replicated), expiry on the read paths, ``store.expire``.

Time is the store's injectable wall clock (``engine.open(..., wall_clock=...)``), never a sleep.
"""

from __future__ import annotations

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

