"""The hybrid logical clock: table-driven SEND/RECV histories (after CockroachDB's TestHLCClock)
and monotonicity of a real store's versions across restarts and backwards wall clocks."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

import engine
from engine.clock import (
    BOTTOM,
    LOGICAL_BITS,
    ManualClock,
    format_hlc,
    logical,
    observe,
    pack,
    physical_ms,
    tick,
)
from engine.errors import ClockExhausted

MAX_OFFSET = 500

# Each step: (event, wall_ms, remote_hlc or None, expected last hlc after the step).
# SEND issues a version (tick); RECV observes a remote version.
HISTORY = [
    # the wall clock moves: the counter resets
    ("SEND", 1, None, pack(1, 0)),
    ("SEND", 1, None, pack(1, 1)),
    ("SEND", 2, None, pack(2, 0)),
    # a remote version behind us changes nothing
    ("RECV", 2, pack(1, 7), pack(2, 0)),
    ("SEND", 2, None, pack(2, 1)),
    # a remote version ahead of us (within the offset) is adopted ...
    ("RECV", 3, pack(10, 5), pack(10, 5)),
    # ... and the next send is strictly above it although the wall clock is behind
    ("SEND", 4, None, pack(10, 6)),
    ("SEND", 10, None, pack(10, 7)),
    ("SEND", 11, None, pack(11, 0)),
    # the wall clock steps backwards: physical stays, counter climbs
    ("SEND", 5, None, pack(11, 1)),
    ("SEND", 5, None, pack(11, 2)),
    # equal remote: stays
    ("RECV", 5, pack(11, 2), pack(11, 2)),
    ("SEND", 5, None, pack(11, 3)),
    # remote exactly at the maximum offset is accepted
    ("RECV", 100, pack(100 + MAX_OFFSET, 0), pack(100 + MAX_OFFSET, 0)),
    ("SEND", 100, None, pack(100 + MAX_OFFSET, 1)),
    # wall catches up and passes
    ("SEND", 2000, None, pack(2000, 0)),
]


def test_history() -> None:
    last = 0
    for i, (event, wall, remote, expected) in enumerate(HISTORY):
        if event == "SEND":
            nxt = tick(last, wall)
            assert nxt > last, f"step {i}: send did not advance"
            assert physical_ms(nxt) >= wall, f"step {i}: send behind the wall clock"
            last = nxt
        else:
            assert remote is not None
            last = observe(last, remote, wall, MAX_OFFSET, origin=7)
            assert last >= remote
        assert last == expected, f"step {i} {event}: {format_hlc(last)} != {format_hlc(expected)}"


def test_counter_overflow_borrows_a_millisecond() -> None:
    full = pack(100, (1 << LOGICAL_BITS) - 1)
    nxt = tick(full, 50)
    assert nxt == pack(101, 0)
    assert nxt > full
    assert physical_ms(nxt) == 101 and logical(nxt) == 0
    # many ticks at a stuck wall clock keep increasing and never wrap
    last = pack(100, 0)
    for _ in range((1 << LOGICAL_BITS) + 10):
        n = tick(last, 100)
        assert n > last
        last = n
    assert physical_ms(last) == 101


def test_exhausted_range_raises_its_own_error_not_a_skew() -> None:
    with pytest.raises(ClockExhausted, match="exhausted") as info:
        tick((1 << 64) - 1, 0)
    assert not isinstance(info.value, engine.ClockSkewError)
    assert isinstance(info.value, engine.Error)


@pytest.mark.parametrize("ahead", [MAX_OFFSET + 1, 10_000, 10**9])
def test_observe_beyond_max_offset(ahead: int) -> None:
    wall = 1_000_000
    remote = pack(wall + ahead, 3)
    last = pack(wall, 0)
    with pytest.raises(engine.ClockSkewError) as info:
        observe(last, remote, wall, MAX_OFFSET, origin=0xABC)
    assert info.value.origin == 0xABC
    assert info.value.skew_ms == ahead
    assert "0000000000000abc" in str(info.value)
    assert f"{ahead} ms ahead" in str(info.value)


def test_observe_without_origin_names_a_peer() -> None:
    with pytest.raises(engine.ClockSkewError) as info:
        observe(0, pack(10_000, 0), 0, 0)
    assert info.value.origin is None
    assert "a peer" in str(info.value)


def test_observe_far_behind_is_fine() -> None:
    assert observe(pack(5000, 1), pack(1, 0), 5000, 0) == pack(5000, 1)


def test_format_and_parts() -> None:
    h = pack(1_700_000_000_123, 42)
    assert physical_ms(h) == 1_700_000_000_123
    assert logical(h) == 42
    assert format_hlc(h) == "1700000000.123,42"
    assert BOTTOM == (0, 0)
    assert tick(0, 1) > 0  # real HLCs are positive: above ⊥


def test_manual_clock() -> None:
    c = ManualClock(1000)
    assert c() == 1000
    c.advance(5)
    assert c() == 1005
    c.advance(-10)
    assert c() == 995
    c.set(7)
    assert c() == 7
    assert repr(c) == "ManualClock(7)"


# -- the clock inside a store ---------------------------------------------------------------


def _hlcs(store: engine.Store) -> list[int]:
    return [c.hlc for c in store.changes()]


def test_store_versions_monotonic_across_restarts_with_clock_stepping_back(tmp_path: Path) -> None:
    clock = ManualClock(1_700_000_000_000)
    path = tmp_path / "s"
    with engine.open(path, region="r1", wall_clock=clock) as s:
        t = s.create_table("t", partition_key="k")
        for i in range(5):
            t.put({"k": i})
    with engine.open(path, wall_clock=clock) as s:
        before = _hlcs(s)
    engine.open(path).close()  # a reopen with the system clock in between
    clock.advance(-400)  # backwards, within the maximum offset (beyond: fail-stop, below)
    with engine.open(path, wall_clock=clock) as s:
        t = s.table("t")
        for i in range(5):
            t.put({"k": i, "again": True})
        t.update(0, set={"x": 1})
        t.delete(1)
        hlcs = _hlcs(s)
    assert hlcs[: len(before)] == before
    assert all(a < b for a, b in pairwise(hlcs)), "versions went backwards"
    assert physical_ms(hlcs[-1]) >= 1_700_000_000_000


def test_store_counter_climbs_while_wall_clock_stands_still(store_with_clock: tuple) -> None:
    s, clock = store_with_clock
    t = s.create_table("t", partition_key="k")
    for i in range(20):
        t.put({"k": i})
    hlcs = _hlcs(s)
    assert len(set(physical_ms(h) for h in hlcs)) == 1
    assert [logical(h) for h in hlcs] == list(range(21))
    clock.advance(1)
    t.put({"k": "next"})
    assert _hlcs(s)[-1] == pack(clock(), 0)


def test_store_tick_persists(tmp_path: Path) -> None:
    clock = ManualClock(1_000_000)
    with engine.open(tmp_path / "s", region="r", wall_clock=clock) as s:
        a = s.tick()
        b = s.tick()
        assert b == a + 1
    clock.set(10)
    with engine.open(tmp_path / "s", wall_clock=clock) as s:
        assert s.tick() > b


@pytest.fixture
def store_with_clock(tmp_path: Path) -> tuple:
    clock = ManualClock(1_700_000_000_000)
    s = engine.open(tmp_path / "s", region="r", wall_clock=clock)
    yield s, clock
    s.close()


def test_local_write_fails_while_own_clock_is_far_ahead(tmp_path: Path) -> None:
    """A wall clock that jumped forward and back leaves the HLC ahead: local writes fail with
    ClockSkewError naming the skew (they would be held by every peer), status shows it, and
    writes resume once wall time has caught up."""
    clock = ManualClock(1_700_000_000_000)
    with engine.open(tmp_path / "s", region="r", wall_clock=clock) as s:
        t = s.create_table("t", partition_key="k")
        clock.advance(10_000)  # the wall clock jumps ten seconds ahead …
        t.put({"k": "ahead"})
        clock.advance(-10_000)  # … and back
        assert s.stats()["clock_ahead_ms"] == 10_000
        before = s.version_vector(), s.digest()
        for write in (lambda: t.put({"k": 1}), lambda: t.update(1, set={"a": 1}),
                      lambda: t.delete(1), lambda: s.create_table("u", partition_key="k")):
            with pytest.raises(engine.ClockSkewError, match="10000 ms ahead") as info:
                write()
            assert info.value.skew_ms == 10_000
        with pytest.raises(engine.ClockSkewError), s.batch() as b:
            b.put(t, {"k": 2})
        assert (s.version_vector(), s.digest()) == before
        clock.advance(9_600)  # within the maximum offset again
        t.put({"k": 1})
        assert t.get(1) == {"k": 1}
        assert s.stats()["clock_ahead_ms"] == 400


def test_own_clock_ahead_within_the_offset_still_writes(tmp_path: Path) -> None:
    clock = ManualClock(1_700_000_000_000)
    with engine.open(tmp_path / "s", region="r", wall_clock=clock,
                     max_clock_offset=2.0) as s:
        t = s.create_table("t", partition_key="k")
        clock.advance(1_900)
        t.put({"k": 0})
        clock.advance(-1_900)
        t.put({"k": 1})
        assert s.stats()["clock_ahead_ms"] == 1_900
