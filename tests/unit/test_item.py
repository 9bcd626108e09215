"""The item CRDT: named merge, tie-break and conflict-detection cases (pure, no I/O)."""

from __future__ import annotations

from engine.clock import BOTTOM
from engine.codec import canonical
from engine.item import (
    ABSENT,
    ItemState,
    delete_delta,
    max_version,
    merge,
    merge_change,
    purge,
    put_delta,
    update_delta,
    visible,
)

A, B, C = 0xA, 0xB, 0xC  # node ids


def v(hlc: int, node: int = A) -> tuple[int, int]:
    return (hlc, node)


def apply(*deltas: ItemState) -> ItemState:
    state = ItemState()
    for d in deltas:
        state = merge(state, d, canonical)
    return state


def test_put_sets_everything_and_clears() -> None:
    s = apply(put_delta({"k": 1, "a": 1, "b": 2}, v(1)))
    assert s.cleared == v(1)
    assert visible(s) == {"k": 1, "a": 1, "b": 2}
    s = apply(s, put_delta({"k": 1, "c": 3}, v(2)))
    assert visible(s) == {"k": 1, "c": 3}  # a put replaces the whole item


def test_update_sets_and_removes() -> None:
    s = apply(put_delta({"k": 1, "a": 1, "b": 2}, v(1)),
              update_delta({"k": 1, "a": 10}, ["b", "missing"], v(2)))
    assert visible(s) == {"k": 1, "a": 10}
    assert s.attrs["b"] == (v(2), ABSENT)
    assert s.attrs["missing"] == (v(2), ABSENT)


def test_update_on_missing_item_creates_it() -> None:
    assert visible(apply(update_delta({"k": 1, "x": 2}, [], v(1)))) == {"k": 1, "x": 2}


def test_delete_is_a_tombstone() -> None:
    s = apply(put_delta({"k": 1, "a": 1}, v(1)), delete_delta(v(2)))
    assert visible(s) is None
    assert s.cleared == v(2) and s.attrs == {}
    assert visible(None) is None
    assert visible(apply(delete_delta(v(1)))) is None  # deleting a missing item is fine


def test_put_then_concurrent_update_on_other_attribute() -> None:
    # A puts at 10; B, having seen the put, updates b at 12; C concurrently puts at 11
    put_a = put_delta({"k": 1, "a": 1}, v(10, A))
    upd_b = update_delta({"k": 1, "b": 2}, [], v(12, B))
    put_c = put_delta({"k": 1, "c": 3}, v(11, C))
    for order in ([put_a, upd_b, put_c], [put_c, upd_b, put_a], [upd_b, put_a, put_c]):
        assert visible(apply(*order)) == {"k": 1, "c": 3, "b": 2}


def test_update_older_than_put_is_cleared() -> None:
    s = apply(update_delta({"k": 1, "b": 2}, [], v(5, B)), put_delta({"k": 1, "a": 1}, v(6, A)))
    assert visible(s) == {"k": 1, "a": 1}
    assert "b" not in s.attrs  # entries below the clear point are dropped, not just hidden


def test_delete_vs_concurrent_update() -> None:
    put = put_delta({"k": 1, "a": 1}, v(1))
    # update after the delete (higher version) resurrects the item with only its attributes
    s = apply(put, delete_delta(v(5, A)), update_delta({"k": 1, "b": 2}, [], v(6, B)))
    assert visible(s) == {"k": 1, "b": 2}
    # update before the delete is gone
    s = apply(put, update_delta({"k": 1, "b": 2}, [], v(4, B)), delete_delta(v(5, A)))
    assert visible(s) is None
    # same, in the other order
    s = apply(put, delete_delta(v(5, A)), update_delta({"k": 1, "b": 2}, [], v(4, B)))
    assert visible(s) is None


def test_ties_broken_by_node_id() -> None:
    a = update_delta({"x": "from A"}, [], v(7, A))
    b = update_delta({"x": "from B"}, [], v(7, B))
    assert visible(apply(a, b)) == visible(apply(b, a)) == {"x": "from B"}


def test_equal_versions_different_values_use_order() -> None:
    # only a buggy or hostile peer can make this; every replica must still pick the same
    a = update_delta({"x": 1}, [], v(7))
    b = update_delta({"x": "one"}, [], v(7))
    first = visible(apply(a, b))
    assert first == visible(apply(b, a))
    expected = max((1, "one"), key=canonical)
    assert first == {"x": expected}


def test_equal_version_present_beats_absent() -> None:
    a = update_delta({"x": 1}, [], v(7))
    b = update_delta({}, ["x"], v(7))
    assert visible(apply(a, b)) == visible(apply(b, a)) == {"x": 1}


def test_equal_versions_equal_but_differently_typed_values_converge() -> None:
    # 1 == 1.0 == True in Python, but replicas must hold byte-identical values
    for left, right in ((1, 1.0), (1, True), (0.0, -0.0), ([1], [1.0]), ({"a": 0}, {"a": False})):
        a = update_delta({"x": left}, [], v(7))
        b = update_delta({"x": right}, [], v(7))
        ab, ba = apply(a, b), apply(b, a)
        assert canonical(ab.attrs["x"][1]) == canonical(ba.attrs["x"][1]), (left, right)


def test_merge_keeps_larger_clear_point() -> None:
    s = merge(ItemState(v(3), {}), ItemState(v(5), {"a": (v(4), 1), "b": (v(6), 2)}), canonical)
    assert s.cleared == v(5)
    assert s.attrs == {"b": (v(6), 2)}


def test_max_version() -> None:
    assert max_version(None) == BOTTOM
    assert max_version(ItemState()) == BOTTOM
    s = ItemState(v(3), {"a": (v(9, B), 1), "b": (v(4), ABSENT)})
    assert max_version(s) == v(9, B)


def test_purge() -> None:
    deleted = ItemState(v(5), {})
    assert purge(deleted, v(5)) is None
    assert purge(deleted, v(4)) is deleted  # not the delete's version: kept
    removed = ItemState(v(1), {"k": (v(1), 1), "x": (v(3), ABSENT)})
    after = purge(removed, v(3))
    assert after is not None and after.attrs == {"k": (v(1), 1)}
    assert purge(removed, v(2)) is removed
    # an update-created item whose only attributes were removed
    assert purge(ItemState(BOTTOM, {"x": (v(3), ABSENT)}), v(3)) is None


# -- conflict detection ---------------------------------------------------------------------


def test_concurrent_write_same_attribute_reports_on_both_sides() -> None:
    base = put_delta({"k": 1, "x": 0}, v(1, A))
    seen = v(1, A)
    wa = update_delta({"x": "a"}, [], v(10, A))
    wb = update_delta({"x": "b"}, [], v(11, B))
    at_a = apply(base, wa)
    at_b = apply(base, wb)
    # A receives B's write: A's local value loses
    merged_a, lost_a = merge_change(at_a, wb, v(11, B), seen, canonical)
    assert [(c.attribute, c.value, c.winner_value, c.local_lost) for c in lost_a] == [
        ("x", "a", "b", True)]
    assert lost_a[0].winner == v(11, B) and lost_a[0].loser == v(10, A)
    # B receives A's write: the incoming value loses
    merged_b, lost_b = merge_change(at_b, wa, v(10, A), seen, canonical)
    assert [(c.attribute, c.value, c.winner_value, c.local_lost) for c in lost_b] == [
        ("x", "a", "b", False)]
    assert visible(merged_a) == visible(merged_b) == {"k": 1, "x": "b"}


def test_sequential_write_reports_nothing() -> None:
    at_a = apply(put_delta({"k": 1, "x": "a"}, v(10, A)))
    # B had seen A's write (seen = v(10, A)) before overwriting
    _, lost = merge_change(at_a, update_delta({"x": "b"}, [], v(11, B)), v(11, B), v(10, A),
                           canonical)
    assert lost == []


def test_concurrent_writes_to_different_attributes_are_not_conflicts() -> None:
    at_a = apply(put_delta({"k": 1}, v(1)), update_delta({"a": 1}, [], v(10, A)))
    _, lost = merge_change(at_a, update_delta({"b": 2}, [], v(11, B)), v(11, B), v(1), canonical)
    assert lost == []


def test_concurrent_same_value_is_not_a_conflict() -> None:
    at_a = apply(update_delta({"x": 5}, [], v(10, A)))
    _, lost = merge_change(at_a, update_delta({"x": 5}, [], v(11, B)), v(11, B), BOTTOM,
                           canonical)
    assert lost == []


def test_concurrent_delete_vs_update_conflicts() -> None:
    at_a = apply(put_delta({"k": 1}, v(1)), update_delta({"x": "a"}, [], v(10, A)))
    _, lost = merge_change(at_a, delete_delta(v(11, B)), v(11, B), v(1), canonical)
    # x was written after what the deleter had seen; k (at the seen version) was not
    assert [(c.attribute, c.local_lost, c.value) for c in lost] == [("x", True, "a")]
    assert lost[0].winner_value is ABSENT and lost[0].winner == v(11, B)


def test_incoming_loses_to_unseen_newer_local() -> None:
    at_a = apply(update_delta({"x": "new"}, [], v(20, A)))
    merged, lost = merge_change(at_a, update_delta({"x": "old"}, [], v(11, B)), v(11, B),
                                BOTTOM, canonical)
    assert visible(merged) == {"x": "new"}
    assert [(c.value, c.winner, c.loser, c.local_lost) for c in lost] == [
        ("old", v(20, A), v(11, B), False)]


def test_conflicts_only_above_seen() -> None:
    # local entry at 10 is at or below what the writer had seen: no conflict either way
    at_a = apply(update_delta({"x": "a"}, [], v(10, A)))
    for seen in (v(10, A), v(15, C)):
        _, lost = merge_change(at_a, update_delta({"x": "b"}, [], v(11, B)), v(11, B), seen,
                               canonical)
        assert lost == []
    _, lost = merge_change(at_a, update_delta({"x": "b"}, [], v(11, B)), v(11, B), v(9, A),
                           canonical)
    assert len(lost) == 1


def test_merge_change_into_nothing() -> None:
    merged, lost = merge_change(None, put_delta({"k": 1}, v(1)), v(1), BOTTOM, canonical)
    assert visible(merged) == {"k": 1} and lost == []


def test_reprs() -> None:
    assert repr(ABSENT) == "ABSENT"
    s = ItemState(v(1), {"a": (v(1), 1)})
    assert repr(s) == "ItemState(cleared=(1, 10), attrs={'a': ((1, 10), 1)})"
    import pickle

    assert pickle.loads(pickle.dumps(ABSENT)) is ABSENT
