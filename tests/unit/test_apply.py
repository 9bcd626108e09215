"""Issue items 9, 12, 13: stores exchanging log ranges — convergence, idempotence, gaps, forgotten
nodes, clock skew, batches as units, conflicts, snapshots and compaction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import engine
from engine import codec
from engine.clock import ManualClock
from engine.item import ABSENT
from engine.keys import encode_value

T0 = 1_700_000_000_000


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def nodes(tmp_path: Path, clock: ManualClock) -> Any:
    opened: list[engine.Store] = []

    def make(name: str, wall: ManualClock | None = None, **kw: Any) -> engine.Store:
        s = engine.open(tmp_path / name, region=f"r-{name}", wall_clock=wall or clock,
                        durable=False, **kw)
        opened.append(s)
        return s

    yield make
    for s in opened:
        s.close()


def pull(dst: engine.Store, src: engine.Store) -> engine.ApplyReport:
    """What a peer exchange does: for each origin src knows, send what dst lacks."""
    have = dst.version_vector()
    records = []
    for origin in sorted(src.version_vector()):
        if origin != dst.node_id:
            records += src.log_range(origin, have.get(origin, 0))
    return dst.apply_changes(records)


def sync_all(stores: list[engine.Store]) -> None:
    for _ in range(2):
        for a in stores:
            for b in stores:
                if a is not b:
                    pull(a, b)


def _key(table: str, *values: Any) -> bytes:
    return b"".join(encode_value(v) for v in (table, *values))


def _state(s: engine.Store, key: bytes) -> Any:
    env = s._e()
    raw = env.get(key, env.items)
    return None if raw is None else codec.decode_state(raw)


# -- convergence and idempotence ----------------------------------------------------------------


def test_three_stores_converge(nodes: Any, clock: ManualClock) -> None:
    a, b, c = nodes("a"), nodes("b"), nodes("c")
    ta = a.create_table("orders", partition_key="pk", sort_key="sk")
    pull(b, a)
    pull(c, a)
    tb, tc = b.table("orders"), c.table("orders")
    ta.put({"pk": "c1", "sk": 1, "total": 10})
    clock.advance(1)
    tb.put({"pk": "c1", "sk": 2, "total": 20})
    tc.update("c1", 1, set={"status": "NEW"})
    clock.advance(1)
    tb.delete("c1", 2)
    ta.update("c1", 3, set={"x": 1}, remove=["y"])
    with c.batch() as batch:
        batch.put(tc, {"pk": "c2", "sk": 1})
        batch.update(tc, "c1", 1, set={"total": 11})
    # deliver in a chain c -> b -> a, then a star from a
    pull(b, c)
    pull(a, b)
    pull(b, a)
    pull(c, a)
    assert a.digest() == b.digest() == c.digest()
    assert a.version_vector() == b.version_vector() == c.version_vector()
    assert ta.get("c1", 1) == {"pk": "c1", "sk": 1, "total": 11, "status": "NEW"}
    assert tb.get("c1", 2) is None
    assert [i["sk"] for i in tc.query("c1")] == [1, 3]


def test_reapply_is_a_noop(nodes: Any) -> None:
    a, b = nodes("a"), nodes("b")
    t = a.create_table("t", partition_key="k")
    for i in range(3):
        t.put({"k": i})
    records = a.log_range(a.node_id, 0)
    first = b.apply_changes(records)
    assert (first.applied, first.skipped, first.held) == (4, 0, 0)
    digest, pos, vv = b.digest(), b.position(), b.version_vector()
    again = b.apply_changes(records + records)
    assert (again.applied, again.skipped, again.held) == (0, 8, 0)
    assert (b.digest(), b.position(), b.version_vector()) == (digest, pos, vv)
    assert b.version_vector() == {a.node_id: 4}


def test_apply_relays_exact_bytes(nodes: Any) -> None:
    a, b, c = nodes("a"), nodes("b"), nodes("c")
    a.create_table("t", partition_key="k").put({"k": 1, "v": [1.5, {"x"}]})
    pull(b, a)
    assert b.log_range(a.node_id, 0) == a.log_range(a.node_id, 0)
    pull(c, b)  # c never talks to a
    assert c.digest() == a.digest()
    assert c.version_vector() == {a.node_id: 2}


def test_remote_changes_in_the_feed(nodes: Any) -> None:
    a, b = nodes("a"), nodes("b")
    t = a.create_table("t", partition_key="k")
    t.put({"k": 1, "a": 1})
    pull(b, a)
    b.table("t").update(1, set={"b": 2})
    pull(a, b)
    feed = list(a.changes())
    assert [(c.kind, c.origin) for c in feed] == [
        ("create_table", a.node_id), ("put", a.node_id), ("update", b.node_id)]
    assert feed[2].new_image == {"k": 1, "a": 1, "b": 2}
    assert feed[2].seq == 1 and feed[2].position == 3
    assert b.tables() == ["t"]


def test_remote_versions_advance_the_local_clock(nodes: Any) -> None:
    fast_clock = ManualClock(T0 + 400)  # ahead, but within the 500 ms offset
    a, b = nodes("a"), nodes("b", fast_clock)
    b.create_table("t", partition_key="k").put({"k": 1})
    pull(a, b)
    a.table("t").put({"k": 2})
    remote = max(c.hlc for c in a.changes() if c.origin == b.node_id)
    assert list(a.changes())[-1].hlc > remote


# -- gaps, forgotten nodes, own id -----------------------------------------------------------------


def test_gap_is_held(nodes: Any) -> None:
    a, b = nodes("a"), nodes("b")
    t = a.create_table("t", partition_key="k")
    t.put({"k": 1})
    t.put({"k": 2})
    recs = a.log_range(a.node_id, 0)
    report = b.apply_changes(recs[1:])
    assert report.gaps == {a.node_id: (0, 2)}
    assert (report.applied, report.held) == (0, 2)
    assert b.version_vector() == {} and b.position() == 0
    report = b.apply_changes(recs)
    assert report.applied == 3 and report.gaps == {}
    assert b.digest() == a.digest()


def test_gap_in_one_origin_does_not_hold_another(nodes: Any) -> None:
    a, b, c = nodes("a"), nodes("b"), nodes("c")
    a.create_table("t", partition_key="k").put({"k": 1})
    b.create_table("u", partition_key="k").put({"k": 2})
    recs = a.log_range(a.node_id, 1) + b.log_range(b.node_id, 0)
    report = c.apply_changes(recs)
    assert report.gaps == {a.node_id: (0, 2)}
    assert report.applied == 2
    assert c.version_vector() == {b.node_id: 2}


def test_forgotten_origin_refused(nodes: Any) -> None:
    a, b, c = nodes("a"), nodes("b"), nodes("c")
    a.create_table("t", partition_key="k").put({"k": 1})
    c.create_table("u", partition_key="k")
    b.forget(a.node_id)
    assert b.forgotten() == frozenset({a.node_id})
    report = b.apply_changes(a.log_range(a.node_id, 0) + c.log_range(c.node_id, 0))
    assert isinstance(report.refused[a.node_id], engine.ForgottenNodeError)
    assert f"{a.node_id:016x}" in str(report.refused[a.node_id])
    assert report.held == 2 and report.applied == 1
    assert b.tables() == ["u"]


def test_own_changes_come_back(nodes: Any) -> None:
    a, b = nodes("a"), nodes("b")
    a.create_table("t", partition_key="k")
    pull(b, a)
    report = pull(a, b)
    assert (report.applied, report.skipped) == (0, 0)  # pull() does not send a its own
    report = a.apply_changes(b.log_range(a.node_id, 0))
    assert report.skipped == 1
    # a record under our own id that we never wrote: someone runs a copy of this store
    forged = [(a.node_id, 5, a.log_range(a.node_id, 0)[0][2])]
    report = a.apply_changes(forged)
    assert report.held == 1 and "copy of this store" in str(report.refused[a.node_id])


# -- clock skew ---------------------------------------------------------------------------------


def test_clock_skew_refused_then_applied(nodes: Any, clock: ManualClock) -> None:
    ahead = ManualClock(T0 + 2_000)  # 2 s ahead, the limit is 500 ms
    a, b, c = nodes("a"), nodes("b", ahead), nodes("c")
    tb = b.create_table("t", partition_key="k")
    tb.put({"k": 1})
    c.create_table("u", partition_key="k").put({"k": 2})
    records = b.log_range(b.node_id, 0) + c.log_range(c.node_id, 0)
    report = a.apply_changes(records)
    err = report.refused[b.node_id]
    assert isinstance(err, engine.ClockSkewError)
    assert err.origin == b.node_id and err.skew_ms == 2_000
    assert f"{b.node_id:016x}" in str(err)
    assert report.held == 2  # b's first change refused, its second held behind it
    assert report.applied == 2  # c's changes apply in the same exchange
    assert a.version_vector() == {c.node_id: 2}
    clock.advance(1_000)  # now 1 s behind: still refused
    assert b.node_id in a.apply_changes(records).refused
    clock.advance(600)  # within 500 ms
    report = a.apply_changes(records)
    assert report.refused == {} and report.applied == 2 and report.skipped == 2
    assert a.table("t").get(1) == {"k": 1}
    assert a.version_vector() == {b.node_id: 2, c.node_id: 2}


def test_max_clock_offset_is_configurable(nodes: Any) -> None:
    ahead = ManualClock(T0 + 2_000)
    a, b = nodes("a", max_clock_offset=5), nodes("b", ahead)
    b.create_table("t", partition_key="k")
    assert pull(a, b).applied == 1
    strict = nodes("strict", max_clock_offset=0)
    assert isinstance(pull(strict, b).refused[b.node_id], engine.ClockSkewError)


# -- batches ------------------------------------------------------------------------------------


def test_batch_replicates_as_one_unit(nodes: Any) -> None:
    a, b = nodes("a"), nodes("b")
    t = a.create_table("t", partition_key="k")
    pull(b, a)
    with a.batch() as batch:
        for i in range(5):
            batch.put(t, {"k": i})
        batch.delete(t, "missing")
    recs = a.log_range(a.node_id, 1)
    assert len(recs) == 1  # one log entry for the batch
    report = b.apply_changes(recs)
    assert report.applied == 1
    feed = list(b.changes(since=1))
    assert len(feed) == 6
    assert {c.txid for c in feed} == {(a.node_id, 2)}
    assert {c.version for c in feed} == {feed[0].version}
    assert b.digest() == a.digest()


def test_batch_never_applied_in_part(nodes: Any) -> None:
    a, b = nodes("a"), nodes("b")
    t = a.create_table("t", partition_key="k")
    with a.batch() as batch:
        batch.put(t, {"k": 1})
        batch.put(t, {"k": 2})
    good = a.log_range(a.node_id, 0)
    hlc, ops = codec.decode_txn(good[1][2])
    # the same batch with its second op corrupted: refused whole, nothing applied
    bad_ops = [["P", "t", ops[0].key, ops[0].attrs, 0, 0], ["P", "t", ops[1].key, {"": 1}, 0, 0]]
    bad = [good[0], (a.node_id, 2, codec.encode_txn(hlc, bad_ops))]
    with pytest.raises(engine.ValidationError):
        b.apply_changes(bad)
    assert b.version_vector() == {} and b.tables() == []
    assert b.apply_changes(good).applied == 2


# -- conflicts ----------------------------------------------------------------------------------


def _two_with_item(nodes: Any, clock: ManualClock, **kw: Any) -> tuple[engine.Store, engine.Store]:
    a, b = nodes("a", **kw), nodes("b", **kw)
    a.create_table("orders", partition_key="id").put({"id": "o1", "status": "NEW", "n": 0})
    pull(b, a)
    clock.advance(1)
    return a, b


def test_concurrent_writes_recorded_on_both_sides(nodes: Any, clock: ManualClock) -> None:
    a, b = _two_with_item(nodes, clock)
    a.table("orders").update("o1", set={"status": "SHIPPED"})
    clock.advance(1)
    b.table("orders").update("o1", set={"status": "CANCELLED"})
    ra, rb = pull(a, b), pull(b, a)
    assert ra.conflicts == rb.conflicts == 1
    assert a.digest() == b.digest()
    assert a.table("orders").get("o1")["status"] == "CANCELLED"  # b wrote later
    (ca,), (cb,) = list(a.conflicts()), list(b.conflicts())
    assert (ca.table, ca.key, ca.attribute) == ("orders", {"id": "o1"}, "status")
    assert (ca.value, ca.winner_value, ca.local_lost) == ("SHIPPED", "CANCELLED", True)
    assert (cb.value, cb.winner_value, cb.local_lost) == ("SHIPPED", "CANCELLED", False)
    assert ca.origin == cb.origin == a.node_id  # the node whose write lost
    assert ca.winner == cb.winner and ca.winner[1] == b.node_id
    assert ca.loser == cb.loser and ca.loser[1] == a.node_id
    assert "SHIPPED" in str(ca) and "CANCELLED" in str(ca)
    assert a.conflict_count() == b.conflict_count() == 1
    assert a.stats()["conflicts_total"] == 1
    # conflicts never replicate: a third node holds only what it detects itself
    c = nodes("c")
    pull(c, a)
    assert [(x.value, x.local_lost) for x in c.conflicts()] == [("SHIPPED", True)]


def test_relayed_out_of_order_is_not_a_conflict(nodes: Any, clock: ManualClock) -> None:
    """B updated after seeing A's put; a relay sends B's update before A's put."""
    a, b, c = nodes("a"), nodes("b"), nodes("c")
    a.create_table("orders", partition_key="id").put({"id": "o1", "status": "NEW"})
    pull(b, a)
    clock.advance(1)
    b.table("orders").update("o1", set={"status": "PAID"})
    records = b.log_range(b.node_id, 0) + a.log_range(a.node_id, 0)  # b's first
    report = c.apply_changes(records)
    assert report.applied == 3 and report.conflicts == 0
    assert c.conflict_count() == 0
    assert c.table("orders").get("o1") == {"id": "o1", "status": "PAID"}


def test_sequential_writes_record_nothing(nodes: Any, clock: ManualClock) -> None:
    a, b = _two_with_item(nodes, clock)
    a.table("orders").update("o1", set={"status": "SHIPPED"})
    pull(b, a)  # b sees a's write before writing
    clock.advance(1)
    b.table("orders").update("o1", set={"status": "DELIVERED"})
    b.table("orders").put({"id": "o1", "status": "REPLACED"})
    b.table("orders").delete("o1")
    pull(a, b)
    pull(b, a)
    assert a.conflict_count() == b.conflict_count() == 0
    assert list(a.conflicts()) == [] and a.digest() == b.digest()


def test_concurrent_different_attributes_merge_without_conflict(nodes: Any,
                                                                clock: ManualClock) -> None:
    a, b = _two_with_item(nodes, clock)
    a.table("orders").update("o1", set={"status": "SHIPPED"})
    b.table("orders").update("o1", set={"n": 5})
    pull(a, b)
    pull(b, a)
    assert a.conflict_count() == b.conflict_count() == 0
    assert a.table("orders").get("o1") == {"id": "o1", "status": "SHIPPED", "n": 5}


def test_concurrent_delete_and_update(nodes: Any, clock: ManualClock) -> None:
    a, b = _two_with_item(nodes, clock)
    a.table("orders").update("o1", set={"status": "SHIPPED"})
    clock.advance(1)
    b.table("orders").delete("o1")
    pull(a, b)
    pull(b, a)
    assert a.table("orders").get("o1") is None and a.digest() == b.digest()
    lost = list(a.conflicts())
    # the key attribute (the item's existence marker) is not reported on its own
    assert [(c.attribute, c.value, c.winner_value) for c in lost] == [("status", "SHIPPED", None)]
    assert b.conflict_count() == 1


def test_conflicts_bounded(nodes: Any, clock: ManualClock) -> None:
    a, b = _two_with_item(nodes, clock, max_conflicts=3)
    for i in range(5):
        a.table("orders").update("o1", set={"status": f"a{i}"})
        clock.advance(1)
        b.table("orders").update("o1", set={"status": f"b{i}"})
        clock.advance(1)
        pull(a, b)
        pull(b, a)
    assert a.conflict_count() == 5  # the counter counts every one
    kept = list(a.conflicts())
    assert [c.id for c in kept] == [3, 4, 5]  # the oldest were dropped
    assert [c.value for c in kept] == ["a2", "a3", "a4"]
    assert [c.id for c in a.conflicts(since=4)] == [5]
    assert a.stats()["conflicts_stored"] == 3


# -- snapshots and compaction ---------------------------------------------------------------------


def _busy_store(a: engine.Store, clock: ManualClock) -> engine.Table:
    t = a.create_table("t", partition_key="k", sort_key="s")
    for i in range(10):
        t.put({"k": "p", "s": i, "v": i})
    clock.advance(1)
    t.delete("p", 3)
    t.update("p", 4, set={"extra": True}, remove=["v"])
    return t


def test_snapshot_into_a_new_store(nodes: Any, clock: ManualClock) -> None:
    a, b = nodes("a"), nodes("b")
    _busy_store(a, clock)
    b.create_table("other", partition_key="id").put({"id": 1})
    pull(a, b)
    snap = a.snapshot()
    assert snap.vv == a.version_vector()
    assert {t.name for t in snap.tables} == {"t", "other"}
    fresh = nodes("fresh")
    merged = fresh.merge_snapshot(snap.vv, snap.tables, snap.items())
    assert merged == 11  # ten items (one a tombstone) and b's
    assert fresh.digest() == a.digest()
    assert fresh.version_vector() == a.version_vector()
    assert fresh.log_floor() == a.version_vector()
    assert list(fresh.changes()) == []  # a snapshot is not in the feed
    # below the floor, the log cannot serve: a third node needs a snapshot from fresh too
    with pytest.raises(engine.LogTruncated, match="snapshot"):
        fresh.log_range(a.node_id, 0)
    assert fresh.log_range(a.node_id, a.version_vector()[a.node_id]) == []
    # later changes flow as usual on top of the snapshot
    a.table("t").put({"k": "p", "s": 99})
    assert pull(fresh, a).applied == 1
    assert fresh.digest() == a.digest()
    fresh.table("t").put({"k": "q", "s": 1})  # and its own writes go after
    assert max(c.hlc for c in fresh.changes()) > max(c.hlc for c in a.changes())


def test_snapshot_merge_is_idempotent_and_commutes_with_changes(nodes: Any,
                                                               clock: ManualClock) -> None:
    a, b = nodes("a"), nodes("b")
    _busy_store(a, clock)
    pull(b, a)
    b.table("t").update("p", 1, set={"from_b": 1})
    snap = a.snapshot()
    b.merge_snapshot(snap.vv, snap.tables, snap.items())
    b.merge_snapshot(snap.vv, snap.tables, list(snap.items()))
    pull(a, b)
    assert a.digest() == b.digest()


def test_snapshot_is_chunked(nodes: Any, clock: ManualClock) -> None:
    a = nodes("a")
    t = a.create_table("t", partition_key="k")
    with a.batch() as batch:
        for i in range(2500):
            batch.put(t, {"k": i})
    snap = a.snapshot()
    keys = [k for k, _ in snap.items()]
    assert len(keys) == 2500 and keys == sorted(keys)
    fresh = nodes("fresh")
    assert fresh.merge_snapshot(snap.vv, snap.tables, snap.items()) == 2500
    assert fresh.digest() == a.digest()


def test_compact_truncates_and_purges(nodes: Any, clock: ManualClock) -> None:
    a, b = nodes("a"), nodes("b")
    _busy_store(a, clock)
    pull(b, a)
    digest = a.digest()
    k3, k4 = _key("t", "p", 3), _key("t", "p", 4)
    assert _state(a, k3) is not None  # the tombstone record is there
    assert _state(a, k4).attrs["v"][1] is ABSENT
    seq = a.version_vector()[a.node_id]
    removed, purged = a.compact({a.node_id: seq})
    assert removed == seq and purged == 2
    assert _state(a, k3) is None  # deleted item's record gone
    assert "v" not in _state(a, k4).attrs  # removed attribute's ABSENT entry gone
    assert a.table("t").get("p", 4) == {"k": "p", "s": 4, "extra": True}
    assert a.digest() == digest  # live data kept
    assert a.log_floor() == {a.node_id: seq}
    assert a.stats()["log_entries"] == 0
    with pytest.raises(engine.LogTruncated):
        a.log_range(a.node_id, 0)
    assert a.log_range(a.node_id, seq) == []
    assert a.version_vector() == {a.node_id: seq}  # the vv does not go back
    # new writes continue the sequence
    a.table("t").put({"k": "p", "s": 100})
    assert [s for _, s, _ in a.log_range(a.node_id, seq)] == [seq + 1]
    assert pull(b, a).applied == 1 and b.digest() == a.digest()


def test_compact_partially(nodes: Any, clock: ManualClock) -> None:
    a = nodes("a")
    t = a.create_table("t", partition_key="k")
    t.put({"k": 1})
    t.delete(1)
    t.put({"k": 2})
    t.delete(2)
    removed, purged = a.compact({a.node_id: 3})  # up to the first delete only
    assert (removed, purged) == (3, 1)
    assert _state(a, _key("t", 1)) is None and _state(a, _key("t", 2)) is not None
    assert [s for _, s, _ in a.log_range(a.node_id, 3)] == [4, 5]
    assert a.compact({a.node_id: 5}) == (2, 1)
    assert a.compact({a.node_id: 5}) == (0, 0)
    assert a.compact({12345: 7}) == (0, 0)


def test_compact_keeps_tombstone_overwritten_later(nodes: Any, clock: ManualClock) -> None:
    a = nodes("a")
    t = a.create_table("t", partition_key="k")
    t.put({"k": 1, "x": 1})
    t.update(1, remove=["x"])
    t.update(1, set={"x": 2})
    a.compact({a.node_id: 3}, purge_tombstones=True)
    assert t.get(1) == {"k": 1, "x": 2}


def test_compact_without_purging(nodes: Any, clock: ManualClock) -> None:
    a = nodes("a")
    t = a.create_table("t", partition_key="k")
    t.put({"k": 1})
    t.delete(1)
    assert a.compact({a.node_id: 3}, purge_tombstones=False) == (3, 0)
    assert _state(a, _key("t", 1)) is not None


def test_tombstone_keeps_concurrent_older_put_away(nodes: Any, clock: ManualClock) -> None:
    """Before compaction, the tombstone's clear point beats an older concurrent put."""
    a, b = nodes("a"), nodes("b")
    a.create_table("t", partition_key="k").put({"k": 1, "v": "a"})
    pull(b, a)
    b.table("t").put({"k": 1, "v": "b-old"})  # concurrent, earlier HLC (same ms, lower seq?)
    clock.advance(5)
    a.table("t").delete(1)
    pull(a, b)
    pull(b, a)
    assert a.table("t").get(1) is None and b.table("t").get(1) is None


def test_reapplying_a_large_batch_skips_every_known_record(make_store) -> None:  # type: ignore[no-untyped-def]
    a, b = make_store("ra"), make_store("rb")
    t = a.create_table("t", partition_key="id")
    for i in range(100):
        t.put({"id": i, "n": i})
    recs = a.log_range(a.node_id, 0)
    assert b.apply_changes(recs).applied == len(recs)
    before = (b.digest(), b.version_vector(), b.position())
    again = b.apply_changes(recs)
    assert (again.applied, again.skipped, again.held) == (0, len(recs), 0)
    assert (b.digest(), b.version_vector(), b.position()) == before


# -- several lists in one commit (Store.apply_change_lists) ---------------------------------


def _remote_puts(tmp_path: Path, name: str, n: int) -> tuple[int, list[engine.RawChange]]:
    with engine.open(tmp_path / name, region=name) as src:
        src.create_table("g", partition_key="id")
        for i in range(n):
            src.table("g").put({"id": f"{name}{i}", "n": i})
        return src.node_id, src.log_range(src.node_id, 0)


def test_change_lists_share_one_commit_each_with_its_own_report(tmp_path: Path) -> None:
    a_id, a = _remote_puts(tmp_path, "a", 3)
    b_id, b = _remote_puts(tmp_path, "b", 2)
    with engine.open(tmp_path / "dst", region="dst") as dst:
        before = dst.stats()["commits"]
        reports = dst.apply_change_lists([a[:2], b, a[2:], a])
        assert dst.stats()["commits"] - before == 1  # one LMDB commit for all four lists
        assert [(r.applied, r.skipped) for r in reports] == [(2, 0), (3, 0), (2, 0), (0, 4)]
        assert dst.version_vector() == {a_id: 4, b_id: 3}
        assert {i["id"] for i in dst.table("g").scan()} == {"a0", "a1", "a2", "b0", "b1"}


def test_a_malformed_list_is_refused_alone(tmp_path: Path) -> None:
    a_id, a = _remote_puts(tmp_path, "a", 2)
    b_id, b = _remote_puts(tmp_path, "b", 2)
    bad = [(b_id, b[-1][1] + 1, b"\x82\x00not a transaction")]
    with engine.open(tmp_path / "dst", region="dst") as dst:
        out = dst.apply_change_lists([a, bad, b])
        assert isinstance(out[1], engine.ValidationError)
        assert f"{b_id:016x}" in str(out[1])
        assert isinstance(out[0], engine.ApplyReport) and out[0].applied == 3
        assert isinstance(out[2], engine.ApplyReport) and out[2].applied == 3
        assert dst.version_vector() == {a_id: 3, b_id: 3}


def test_decoding_a_batch_leaves_the_collector_as_it_was() -> None:
    """The collector pauses while changes decode (engine.apply._gc_paused), on errors too,
    and one the application disabled is not turned back on."""
    import gc

    from engine.apply import _gc_paused

    assert gc.isenabled()
    with _gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ZeroDivisionError), _gc_paused():
        1 / 0  # noqa: B018
    assert gc.isenabled()
    gc.disable()
    try:
        with _gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_overlapping_pauses_leave_the_collector_on() -> None:
    """Two threads decoding at once, the first to start finishing first: the collector stays
    off until the last one ends, then is on again (one pause must not see the other's "off"
    as the application's setting)."""
    import gc
    import threading

    from engine.apply import _gc_paused

    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[bool] = []

    def second() -> None:
        first_in.wait(5)
        with _gc_paused():
            second_in.set()
            first_out.wait(5)
            seen.append(gc.isenabled())  # the first pause ended: still off for this one

    worker = threading.Thread(target=second)
    worker.start()
    with _gc_paused():
        first_in.set()
        assert second_in.wait(5)
    first_out.set()
    worker.join(5)
    assert seen == [False]
    assert gc.isenabled()
