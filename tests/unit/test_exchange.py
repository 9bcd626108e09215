"""replication.exchange: segments a peer lacks, applying them, acks, snapshots and GC."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import engine
from replication import exchange as ex
from replication import vv as V
from replication.segment import decode_segment

MakeStore = Callable[..., engine.Store]


@pytest.fixture
def nodes(make_store: MakeStore) -> Callable[..., list[engine.Store]]:
    def make(*names: str, skew: dict[str, int] | None = None) -> list[engine.Store]:
        out = []
        for n in names:
            clock = engine.ManualClock(1_700_000_000_000 + (skew or {}).get(n, 0))
            out.append(make_store(n, wall_clock=clock))
        return out

    return make


def ship(src: engine.Store, dst: engine.Store, **kw: object) -> list[ex.SegmentReport]:
    """Everything ``dst`` lacks from ``src``, applied; then ``src`` learns ``dst``'s state."""
    reports = [ex.apply_segment(dst, decode_segment(d))
               for d in ex.segments_for(src, dst.version_vector(), **kw)]  # type: ignore[arg-type]
    tell(dst, src)
    return reports


def tell(src: engine.Store, dst: engine.Store) -> None:
    """``dst`` hears ``src``'s state (what a handshake or a state file carries)."""
    vv, acks, forgotten = ex.local_state(src)
    ex.record_peer(dst, src.node_id, vv, acks, forgotten)


def orders(store: engine.Store) -> engine.Table:
    return store.create_table("orders", partition_key="customer_id", sort_key="order_id")


def fill(store: engine.Store, n: int = 20) -> None:
    t = orders(store)
    for i in range(n):
        t.put({"customer_id": f"c{i % 3}", "order_id": f"o{i}", "total": i, "status": "NEW"})
    t.update("c0", "o0", set={"status": "SHIPPED"}, remove=["total"])
    t.delete("c1", "o1")
    with store.batch() as b:
        b.put("orders", {"customer_id": "c9", "order_id": "b1", "total": 1})
        b.delete("orders", "c2", "o2")


def test_round_trip_and_idempotence(nodes: Callable[..., list[engine.Store]]) -> None:
    a, b = nodes("a", "b")
    fill(a)
    segs = list(ex.segments_for(a, b.version_vector()))
    reports = [ex.apply_segment(b, decode_segment(d)) for d in segs]
    assert sum(r.applied for r in reports) == a.version_vector()[a.node_id]
    assert b.digest() == a.digest() and b.version_vector() == a.version_vector()
    again = [ex.apply_segment(b, decode_segment(d)) for d in segs]
    assert not any(r.new for r in again)
    assert sum(r.skipped for r in again) == sum(r.applied for r in reports)
    assert list(ex.segments_for(a, b.version_vector())) == []


def test_segments_are_bounded(nodes: Callable[..., list[engine.Store]]) -> None:
    a, b = nodes("a", "b")
    fill(a, 200)
    segs = list(ex.iter_segments(a, {}, max_bytes=4000, max_records=50, compress=False))
    assert len(segs) > 5
    assert all(h.record_count <= 50 and len(d) < 4000 + 2000 for h, d in segs)
    for _, d in segs:
        ex.apply_segment(b, decode_segment(d))
    assert b.digest() == a.digest()


def test_relay_through_a_node_that_never_met_the_origin(
    nodes: Callable[..., list[engine.Store]],
) -> None:
    a, b, c = nodes("a", "b", "c")
    fill(a)
    ship(a, b)
    ship(b, c)
    assert c.digest() == a.digest()
    # c learned a's acknowledgement through b's ack table, though it never met a
    assert V.load_acks(c)[a.node_id] == a.version_vector()


def test_gap_is_refused_whole(nodes: Callable[..., list[engine.Store]]) -> None:
    a, b = nodes("a", "b")
    fill(a)
    late = list(ex.segments_for(a, {a.node_id: 3}))
    before = (b.digest(), b.version_vector())
    with pytest.raises(ex.GapError, match="seqs 1..3 must come first"):
        ex.apply_segment(b, decode_segment(late[0]))
    assert (b.digest(), b.version_vector()) == before
    assert V.load_acks(b) == {}


def test_clock_skew_is_reported_and_applies_later(nodes: Callable[..., list[engine.Store]]) -> None:
    a, b = nodes("a", "b", skew={"a": 10_000})
    orders(a).put({"customer_id": "c", "order_id": "o", "total": 1})
    segs = list(ex.segments_for(a, {}))
    r = ex.apply_segment(b, decode_segment(segs[0]))
    assert isinstance(r.refused[a.node_id], engine.ClockSkewError) and not r.new
    assert b.version_vector() == {}
    b._wall.advance(10_000)  # type: ignore[attr-defined]
    r = ex.apply_segment(b, decode_segment(segs[0]))
    assert r.applied == 2 and b.digest() == a.digest()


def test_forgotten_sender_is_refused_and_forget_propagates(
    nodes: Callable[..., list[engine.Store]],
) -> None:
    a, b, c = nodes("a", "b", "c")
    fill(c)
    seg = next(ex.segments_for(c, {}))
    b.forget(c.node_id)
    before = b.digest()
    with pytest.raises(engine.ForgottenNodeError):
        ex.apply_segment(b, decode_segment(seg))
    assert b.digest() == before
    with pytest.raises(engine.ForgottenNodeError):
        tell(c, b)
    orders(b).put({"customer_id": "x", "order_id": "y"})
    ship(b, a)
    assert c.node_id in a.forgotten()


def test_gc_waits_for_every_member_then_truncates(nodes: Callable[..., list[engine.Store]]) -> None:
    a, b, c = nodes("a", "b", "c")
    fill(a)
    ship(a, b)
    tell(c, a)  # a now knows c, which has nothing
    assert ex.collect_garbage(a) == (0, 0)
    ship(a, c)
    removed, _ = ex.collect_garbage(a)
    assert removed == a.version_vector()[a.node_id]
    assert a.log_floor() == a.version_vector()


def test_peer_below_the_floor_gets_a_snapshot_then_changes(
    nodes: Callable[..., list[engine.Store]],
) -> None:
    a, b, c = nodes("a", "b", "c")
    fill(a)
    ship(a, b)
    ex.collect_garbage(a)  # a knows only b: everything is stable
    t = a.table("orders")
    t.put({"customer_id": "late", "order_id": "1"})
    segs = list(ex.iter_segments(a, c.version_vector()))
    assert [h.kind for h, _ in segs] == ["snapshot"]  # the snapshot's vv already covers the put
    for _, d in segs:
        ex.apply_segment(c, decode_segment(d))
    assert c.digest() == a.digest() and c.version_vector() == a.version_vector()
    assert c.log_floor() == a.version_vector()
    # c can serve b only above its own floor; b already has it all
    assert list(ex.segments_for(c, b.version_vector())) != []  # "late" is new to b
    ship(c, b)
    assert b.digest() == a.digest()


def test_large_snapshot_in_chained_parts(nodes: Callable[..., list[engine.Store]]) -> None:
    a, b, c, d = nodes("a", "b", "c", "d")
    fill(a, 300)
    parts = list(ex.iter_segments(a, {}, max_bytes=3000, force_snapshot=True))
    assert len(parts) > 4 and all(h.kind == "snapshot" for h, _ in parts)
    assert [bool(h.vv) for h, _ in parts] == [False] * (len(parts) - 1) + [True]
    for _, data in parts:
        r = ex.apply_segment(b, decode_segment(data))
    assert r.snapshot_complete and b.digest() == a.digest()
    assert b.version_vector() == a.version_vector()

    # a lost middle part: items merge, the vv does not advance
    for i, (_, data) in enumerate(parts):
        if i != 2:
            r = ex.apply_segment(c, decode_segment(data))
    assert r.snapshot_complete is False and r.warnings and c.version_vector() == {}
    for _, data in parts:  # sending it again completes it
        r = ex.apply_segment(c, decode_segment(data))
    assert r.snapshot_complete and c.version_vector() == a.version_vector()

    # the last part first: no vv either
    r = ex.apply_segment(d, decode_segment(parts[-1][1]))
    assert r.snapshot_complete is False and d.version_vector() == {}


def _item_records(store: engine.Store) -> int:
    return int(store.stats()["items"])


def test_tombstones_kept_until_stable_then_purged(nodes: Callable[..., list[engine.Store]]) -> None:
    a, b = nodes("a", "b")
    t = orders(a)
    t.put({"customer_id": "c", "order_id": "1", "total": 1})
    t.put({"customer_id": "c", "order_id": "2", "total": 2, "coupon": "X"})
    ship(a, b)
    ship(b, a)
    ex.collect_garbage(a)
    t.delete("c", "1")
    t.update("c", "2", remove=["coupon"])
    assert ex.collect_garbage(a) == (0, 0)  # b has not acknowledged the delete
    assert _item_records(a) == 2
    ship(a, b)
    ship(b, a)
    removed, purged = ex.collect_garbage(a)
    assert (removed, purged) == (2, 2)
    assert _item_records(a) == 1
    assert t.get("c", "2") == {"customer_id": "c", "order_id": "2", "total": 2}


def test_no_purge_while_a_concurrent_write_is_in_flight(
    nodes: Callable[..., list[engine.Store]],
) -> None:
    # b's clock is behind: its update is concurrent with a's delete and has a lower version.
    a, b = nodes("a", "b", skew={"b": -100})
    orders(a).put({"customer_id": "c", "order_id": "1", "total": 1})
    ship(a, b)
    ship(b, a)
    a.table("orders").delete("c", "1")
    b.table("orders").update("c", "1", set={"note": "late"})
    in_flight = list(ex.segments_for(b, a.version_vector()))
    ship(a, b)  # b now has the delete: the update lost there
    assert b.table("orders").get("c", "1") is None
    tell(b, a)  # a hears b's acknowledgement before b's update arrives
    assert V.plan_gc(a.node_id, a.version_vector(), V.load_acks(a), ()).stable is None
    assert ex.collect_garbage(a) == (0, 0)
    for d in in_flight:
        ex.apply_segment(a, decode_segment(d))
    assert a.table("orders").get("c", "1") is None
    ship(b, a)
    ship(a, b)
    assert ex.collect_garbage(a)[1] >= 1 and ex.collect_garbage(b) is not None
    for d in in_flight:  # a stale duplicate after the purge is still harmless
        ex.apply_segment(a, decode_segment(d))
    assert a.table("orders").get("c", "1") is None and a.digest() == b.digest()


def test_peer_vv_is_validated(nodes: Callable[..., list[engine.Store]]) -> None:
    (a,) = nodes("a")
    with pytest.raises(engine.ValidationError):
        list(ex.segments_for(a, {"x": 1}))  # type: ignore[dict-item]
    with pytest.raises(engine.ValidationError):
        ex.record_peer(a, 5, {1: -1}, {}, frozenset())
    # node ids in the ack table and the forgotten set are u64s too; nothing is recorded
    for acks, gone in [({"zz": {}}, ()), ({-5: {}}, ()), ({1.5: {}}, ()), ({1 << 64: {}}, ()),
                       ({}, (-1,)), ({}, (0,)), ({}, ("x",))]:
        with pytest.raises(engine.ValidationError):
            ex.record_peer(a, 5, {5: 1}, acks, frozenset(gone))  # type: ignore[arg-type]
    assert V.load_acks(a) == {} and a.forgotten() == frozenset()


def test_stale_snapshot_cannot_resurrect_a_purged_delete(
    nodes: Callable[..., list[engine.Store]],
) -> None:
    a, b = nodes("a", "b")
    orders(a).put({"customer_id": "c", "order_id": "1", "total": 1})
    stale = list(ex.iter_segments(a, {}, force_snapshot=True))
    a.table("orders").delete("c", "1")
    ship(a, b)
    ship(b, a)
    assert ex.collect_garbage(a)[1] == 1 and ex.collect_garbage(b)[1] == 1
    for _, data in stale:
        r = ex.apply_segment(b, decode_segment(data))
        assert not r.new and "stale snapshot" in r.warnings[0]
    assert b.table("orders").get("c", "1") is None and b.digest() == a.digest()


def test_two_groups_that_collected_garbage_apart_still_converge(
    nodes: Callable[..., list[engine.Store]],
) -> None:
    a, b = nodes("a", "b")
    fill(a)
    fill(b, 7)
    assert ex.collect_garbage(a)[0] > 0 and ex.collect_garbage(b)[0] > 0  # each alone: all stable
    for _ in range(2):
        ship(a, b)
        ship(b, a)
    assert a.digest() == b.digest() and a.version_vector() == b.version_vector()


def test_snapshot_from_a_clock_far_ahead_is_held_not_raised(
    nodes: Callable[..., list[engine.Store]],
) -> None:
    a, b = nodes("a", "b", skew={"a": 10_000})
    fill(a, 5)
    parts = list(ex.iter_segments(a, {}, force_snapshot=True))
    r = ex.apply_segment(b, decode_segment(parts[0][1]))
    assert isinstance(r.refused[a.node_id], engine.ClockSkewError) and r.held and not r.new
    assert b.version_vector() == {} and b.tables() == []
    b._wall.advance(10_000)  # type: ignore[attr-defined]
    r = ex.apply_segment(b, decode_segment(parts[0][1]))
    assert r.snapshot_complete and b.digest() == a.digest()


def test_snapshot_parts_of_two_snapshots_never_make_one_chain(
    nodes: Callable[..., list[engine.Store]],
) -> None:
    """Two snapshots of one sender split at the same keys: the first parts of the older one
    followed by the later parts of the newer one (its part 0 lost, e.g. half-copied) bridge
    key for key, but the older parts lack what changed in between. The vv must not advance."""
    a, b = nodes("a", "b")
    t = orders(a)
    for i in range(30):
        t.put({"customer_id": "c", "order_id": f"o{i:02}", "total": i})
    old = [d for _, d in ex.snapshot_segments(a, max_records=10)]
    t.update("c", "o00", set={"total": 100})  # in part 0's key range; no key added
    new = [d for _, d in ex.snapshot_segments(a, max_records=10)]
    assert len(old) == len(new) > 2
    for d in old[:2] + new[2:]:
        ex.apply_segment(b, decode_segment(d))
    assert b.table("orders").get("c", "o00")["total"] == 0  # type: ignore[index]
    assert b.version_vector() != a.version_vector()  # it does not claim the update
    ship(a, b)  # so the next exchange still brings it
    assert b.digest() == a.digest()


# ------------------------------------------------------------------ authoritative snapshots


def _deleted_and_purged_at_a(nodes: Callable[..., list[engine.Store]]
                             ) -> tuple[engine.Store, engine.Store, engine.Store]:
    """a and b hold 40 items; c took a copy of them and then fell silent. a deletes the first,
    a middle and the last item and removes an attribute, and a and b purge those tombstones
    (they do not know c). Returns ``(a, b, c)``."""
    a, b, c = nodes("a", "b", "c")
    t = orders(a)
    for i in range(40):
        t.put({"customer_id": "c", "order_id": f"o{i:02}", "total": i, "coupon": "X"})
    ship(a, b)
    for d in ex.segments_for(a, {}):  # a never hears of c
        ex.apply_segment(c, decode_segment(d))
    for i in (0, 17, 39):
        t.delete("c", f"o{i:02}")
    t.update("c", "o05", remove=["coupon"])
    ship(a, b)
    ship(b, a)
    assert ex.collect_garbage(a)[1] == 4 and ex.collect_garbage(b)[1] == 4
    return a, b, c


@pytest.mark.parametrize("max_bytes", [ex.DEFAULT_MAX_BYTES, 400])
def test_a_snapshot_deletes_what_its_sender_deleted_and_purged(
    nodes: Callable[..., list[engine.Store]], max_bytes: int,
) -> None:
    a, _, c = _deleted_and_purged_at_a(nodes)
    own = {"customer_id": "c", "order_id": "mine", "total": 1}
    c.table("orders").put(own)
    reports = ship(a, c, max_bytes=max_bytes)
    assert reports[0].kind == "snapshot" and (max_bytes > 400 or len(reports) > 3)
    t = c.table("orders")
    assert [t.get("c", f"o{i:02}") for i in (0, 17, 39)] == [None] * 3
    assert "coupon" not in t.get("c", "o05")  # type: ignore[operator]
    assert t.get("c", "mine") == own  # what only c had seen stays
    ship(c, a)
    assert c.digest() == a.digest()


def test_tombstones_that_came_through_a_snapshot_are_purged_once_stable(
    nodes: Callable[..., list[engine.Store]],
) -> None:
    a, b = nodes("a", "b")
    t = orders(a)
    t.put({"customer_id": "c", "order_id": "1", "total": 1})
    t.put({"customer_id": "c", "order_id": "2", "total": 2, "coupon": "X"})
    t.delete("c", "1")
    t.update("c", "2", remove=["coupon"])
    for _, data in ex.iter_segments(a, {}, force_snapshot=True):
        ex.apply_segment(b, decode_segment(data))
    assert _item_records(b) == 2 and b.log_floor() == a.version_vector()
    tell(b, a)
    tell(a, b)
    assert ex.collect_garbage(b)[1] == 2  # no log entry here: purged by version
    assert _item_records(b) == 1 and ex.collect_garbage(b) == (0, 0)
    assert b.table("orders").get("c", "2") == {"customer_id": "c", "order_id": "2", "total": 2}
    ex.collect_garbage(a)
    assert b.digest() == a.digest() and _item_records(a) == 1


def test_an_old_replicas_snapshot_brings_nothing_back(
    nodes: Callable[..., list[engine.Store]],
) -> None:
    """c, unknown to a and b, still holds what they deleted and purged; its snapshot is merged
    (nobody knew c had held more), but b had seen the changes behind those entries itself."""
    a, b, c = _deleted_and_purged_at_a(nodes)
    c.table("orders").put({"customer_id": "c", "order_id": "mine", "total": 1})
    for _, data in ex.iter_segments(c, {}, force_snapshot=True, max_bytes=400):
        ex.apply_segment(b, decode_segment(data))
    t = b.table("orders")
    assert [t.get("c", f"o{i:02}") for i in (0, 17, 39)] == [None] * 3
    assert "coupon" not in t.get("c", "o05")  # type: ignore[operator]
    assert t.get("c", "mine") is not None
    ship(b, a)
    ship(a, c)
    assert a.digest() == b.digest() == c.digest()


def test_forget_cut_evens_out_the_prefixes_members_received(
    nodes: Callable[..., list[engine.Store]],
) -> None:
    """x dies; a had received 10 of its changes, b 7, and d 12 (more than a's cut). Whoever
    forgets first, everyone ends holding x's changes up to 12 and nothing after."""
    a, b, d, x = nodes("a", "b", "d", "x")
    t = orders(x)
    for i in range(1, 16):
        t.put({"customer_id": "x", "order_id": f"o{i:02}", "total": i})
    log = [r for r in x.log_range(x.node_id, 0)]
    a.apply_changes(log[:11])  # the create_table and 10 puts
    b.apply_changes(log[:8])
    d.apply_changes(log[:13])
    assert a.forget(x.node_id) == 11  # the cut: what a holds
    ship(a, b)   # b adopts the forget at a's cut and takes a's later changes of x
    assert b.forget_cuts() == {x.node_id: 11} and b.version_vector()[x.node_id] == 11
    tell(b, d)   # d hears of it (a handshake names no cut); d holds more: its cut is its own
    assert d.forget_cuts() == {x.node_id: 13}
    for src, dst in [(d, a), (d, b), (a, b), (b, a)]:
        ship(src, dst)
    assert a.digest() == b.digest() == d.digest()
    assert {s.version_vector()[x.node_id] for s in (a, b, d)} == {13}
    late = x.log_range(x.node_id, 13)  # x's changes after every cut are refused everywhere
    assert a.apply_changes(late).refused and a.version_vector()[x.node_id] == 13
