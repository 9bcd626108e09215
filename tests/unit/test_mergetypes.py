"""Counters and sets in the item CRDT and their encodings: named cases (pure, no I/O)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from engine import codec
from engine.codec import canonical
from engine.errors import ValidationError
from engine.item import (
    ABSENT,
    ItemState,
    attribute_value,
    delete_delta,
    max_version,
    merge,
    merge_change,
    plan_write,
    purge,
    put_delta,
    set_element,
    update_delta,
    visible,
)
from engine.keys import encode_value
from engine.mergewire import op_wire

A, B, C = 0xA, 0xB, 0xC
KEY = {"k": 1}


def apply(*deltas: ItemState) -> ItemState:
    state = ItemState()
    for d in deltas:
        state = merge(state, d, canonical)
    return state


def add(local: ItemState | None, node: int, hlc: int, **amounts: Any) -> ItemState:
    ext = plan_write(local, node, add=amounts, reset=[])
    return update_delta(KEY, [], (hlc, node), ext=ext)


def test_concurrent_adds_in_three_regions_all_count() -> None:
    base = put_delta({"k": 1, "stock": 100}, (1, A))
    deltas = [add(base, A, 2, stock=-1), add(base, B, 3, stock=-1), add(base, C, 4, stock=-2)]
    for order in (deltas, deltas[::-1], [deltas[1], deltas[0], deltas[2]]):
        assert visible(apply(base, *order)) == {"k": 1, "stock": 96}


def test_one_origin_accumulates_its_total() -> None:
    s = apply(put_delta({"k": 1, "n": 0}, (1, A)))
    for hlc in range(2, 7):
        s = merge(s, add(s, A, hlc, n=1), canonical)
    assert visible(s) == {"k": 1, "n": 5}
    assert s.extra["n"].incs == {A: (6, 5)}  # one entry per origin, however many ADDs
    # an old ADD delivered again changes nothing (idempotent)
    assert visible(merge(s, add(None, A, 2, n=1), canonical)) == {"k": 1, "n": 5}


def test_set_resets_and_keeps_the_adds_it_had_not_seen() -> None:
    s = apply(put_delta({"k": 1, "n": 10}, (1, A)))
    a1 = add(s, A, 2, n=5)                   # A adds 5; B sees it
    seen_by_b = merge(s, a1, canonical)
    a2 = add(seen_by_b, A, 3, n=7)           # A adds 7 more; B does not see this one
    reset = update_delta({"k": 1, "n": 0}, [], (4, B),
                         ext=plan_write(seen_by_b, B, reset=["n"]))
    for order in ([a1, a2, reset], [reset, a2, a1], [a2, reset, a1]):
        assert attribute_value(apply(s, *order), "n") == 7  # 0 + the unseen 7


def test_remove_and_delete_are_observed_resets() -> None:
    s = apply(put_delta({"k": 1, "n": 1}, (1, A)), add(None, A, 2, n=4))
    unseen = add(s, B, 3, n=2)
    removed = update_delta(KEY, ["n"], (4, A), ext=plan_write(s, A, reset=["n"]))
    assert visible(apply(s, unseen, removed)) == {"k": 1, "n": 2}
    assert visible(apply(s, removed)) == {"k": 1}
    deleted = delete_delta((4, A), ext=plan_write(s, A))
    gone = apply(s, deleted, unseen)
    assert visible(gone) is None  # the item stays deleted: its keys went with the delete
    assert attribute_value(gone, "n") == 2  # but the unseen ADD was not lost
    # a writer that sees the item as missing starts it afresh: its counters reset too
    again = update_delta({"k": 1}, [], (5, A), ext=plan_write(gone, A, add={"n": 1}, reset=[]))
    assert visible(merge(gone, again, canonical)) == {"k": 1, "n": 1}


def test_put_resets_counters_with_observed_reset() -> None:
    s = apply(put_delta({"k": 1, "n": 1}, (1, A)), add(None, A, 2, n=4))
    unseen = add(s, B, 3, n=-1)
    put = put_delta({"k": 1, "n": 50}, (4, A), ext=plan_write(s, A))
    assert visible(apply(s, put, unseen)) == visible(apply(s, unseen, put)) == {"k": 1, "n": 49}
    assert visible(apply(s, put)) == {"k": 1, "n": 50}


def test_counter_arithmetic_is_decimal_when_not_all_ints() -> None:
    s = apply(put_delta({"k": 1, "n": 1.5}, (1, A)), add(None, B, 2, n=Decimal("0.25")))
    assert visible(s) == {"k": 1, "n": Decimal("1.75")}
    assert add(None, A, 3, n=1).extra["n"].incs == {A: (3, 1)}


def test_an_add_on_a_value_that_is_no_number_leaves_the_value() -> None:
    s = apply(put_delta({"k": 1, "n": "text"}, (1, A)), add(None, B, 2, n=1))
    assert visible(s) == {"k": 1, "n": "text"}


def sets(node: int, hlc: int, *, add_: set[Any] | None = None,
         delete: set[Any] | None = None) -> ItemState:
    ext = plan_write(None, node, add_elems={"tags": add_} if add_ else None,
                     del_elems={"tags": delete} if delete else None, reset=[])
    return update_delta(KEY, [], (hlc, node), ext=ext)


def test_concurrent_set_additions_all_survive() -> None:
    base = put_delta({"k": 1, "tags": {"new"}}, (1, A))
    a, b = sets(A, 2, add_={"gift"}), sets(B, 2, add_={"sale"})
    assert visible(apply(base, a, b)) == visible(apply(base, b, a)) == {
        "k": 1, "tags": {"new", "gift", "sale"}}


def test_element_add_and_delete_follow_their_versions() -> None:
    base = put_delta({"k": 1, "tags": {"x", "y"}}, (1, A))
    assert visible(apply(base, sets(A, 2, delete={"x"}), sets(B, 3, add_={"x"}))) == {
        "k": 1, "tags": {"x", "y"}}
    assert visible(apply(base, sets(A, 3, delete={"x"}), sets(B, 2, add_={"x"}))) == {
        "k": 1, "tags": {"y"}}
    # deleting the last element removes the attribute
    assert visible(apply(base, sets(A, 2, delete={"x", "y"}))) == {"k": 1}
    # equal versions (only a hostile peer): the add wins, on every replica
    a, d = sets(A, 2, add_={"z"}), sets(A, 2, delete={"z"})
    assert visible(apply(a, d)) == visible(apply(d, a))


def test_a_set_of_the_whole_attribute_replaces_it() -> None:
    base = put_delta({"k": 1, "tags": {"x"}}, (1, A))
    older = sets(B, 2, add_={"lost"})
    replace = update_delta({"k": 1, "tags": {"fresh"}}, [], (3, A))
    s = apply(base, replace, older)
    assert visible(s) == {"k": 1, "tags": {"fresh"}}
    assert "tags" not in s.extra  # the older element entry is gone, not just hidden


def test_numeric_set_elements_are_one_element() -> None:
    assert set_element(1.0) == 1 and type(set_element(1.0)) is int
    half = set_element(Decimal("2.50"))
    assert type(half) is Decimal and str(half) == "2.5"
    a = update_delta(KEY, [], (2, A), ext=plan_write(None, A, add_elems={"s": {1.0}}, reset=[]))
    b = update_delta(KEY, [], (3, B), ext=plan_write(None, B, del_elems={"s": {Decimal(1)}},
                                                      reset=[]))
    assert visible(apply(a, b)) == {"k": 1}


def test_increments_never_conflict_but_an_overwritten_value_does() -> None:
    base = apply(put_delta({"k": 1, "n": 1}, (1, A)))
    local = merge(base, add(base, A, 5, n=1), canonical)
    incoming = add(base, B, 4, n=1)
    _, lost = merge_change(local, incoming, (4, B), max_version(base), canonical)
    assert lost == []
    local = merge(base, update_delta({"k": 1, "n": 7}, [], (5, A)), canonical)
    reset = update_delta({"k": 1, "n": 9}, [], (6, B), ext=plan_write(base, B, reset=["n"]))
    _, lost = merge_change(local, reset, (6, B), max_version(base), canonical)
    assert [(c.attribute, c.value, c.winner_value) for c in lost] == [("n", 7, 9)]


def test_max_version_and_purge_see_the_counter_parts() -> None:
    s = apply(put_delta({"k": 1}, (1, A)), add(None, B, 9, n=1))
    assert max_version(s) == (9, B)
    removed = merge(s, update_delta(KEY, ["n"], (10, A), ext=plan_write(s, A, reset=["n"])),
                    canonical)
    kept = purge(removed, (10, A))
    assert kept is not None and attribute_value(kept, "n") is ABSENT
    assert kept.extra["n"].incs == {B: (9, 1)}  # never folded away (see the README)


# -- encodings ------------------------------------------------------------------------------


def rich_state() -> ItemState:
    s = apply(put_delta({"k": 1, "n": 1, "tags": {"a"}}, (1, A)), add(None, B, 2, n=3),
              sets(C, 3, add_={"b", 2.5}, delete={"a"}))
    return merge(s, update_delta(KEY, ["n"], (4, A), ext=plan_write(s, A, reset=["n"])),
                 canonical)


def test_state_round_trips_through_the_store_encoding() -> None:
    s = rich_state()
    raw = codec.encode_state(s)
    assert raw[:1] == b"\x87" and codec.has_extra_raw(raw)
    back = codec.decode_state(raw)
    assert back.extra == s.extra and back.attrs == s.attrs
    assert codec.visible_from_raw(raw) == visible(s)
    assert codec.max_version_raw(raw) == max_version(s)
    assert codec.decode_state_untrusted(raw, "peer").extra == s.extra
    # plain states keep their old (format 2) encoding
    assert codec.encode_state(apply(put_delta({"k": 1}, (1, A))))[:1] == b"\x84"


@pytest.mark.parametrize("ext, reason", [
    ({"n": [0, 0, [], [[0, 1, 1]], []]}, "not ascending non-zero"),
    ({"n": [0, 0, [], [[2, 1, 1], [1, 1, 1]]]}, "is not \\[obs_hlc"),
    ({"n": [0, 0, [], [[2, 1, True]], []]}, "total is not a number"),
    ({"s": [0, 0, [], [], [[1.0, 5, 1, True]]]}, "not canonical"),
    ({"s": [0, 0, [], [], [["a", 5, 1, True], ["a", 6, 1, True]]]}, "appears twice"),
    ({"s": [0, 0, [], [], [[["nested"], 5, 1, True]]]}, "set elements are strings"),
    ({"s": [0, 0, [], [], [["a", 0, 0, True]]]}, "older than the clear point"),
])
def test_hostile_state_ext_is_refused(ext: dict[str, Any], reason: str) -> None:
    raw = codec.dumps([1, 1, {"k": 1}, {}, 0, 0, ext])
    with pytest.raises(ValidationError, match=reason):
        codec.decode_state_untrusted(raw, "peer item")


def key() -> bytes:
    return encode_value("t") + encode_value(1)


def test_ops_with_ext_round_trip_and_old_ops_still_decode() -> None:
    base = apply(put_delta({"k": 1, "n": 1}, (1, A)), add(None, B, 2, n=3))
    ext = plan_write(base, A, add={"n": 2}, add_elems={"s": {"x"}}, del_elems={"t": {1}},
                     reset=[])
    reset = plan_write(base, A)
    ops = [op_wire("U", "t", key(), {"k": 1}, [], (2, B), ext),
           op_wire("D", "t", key(), {}, [], (2, B), reset, ttl=True),
           op_wire("P", "t", key(), {"k": 1}, [], (2, B), reset),
           ["U", "t", key(), {"k": 1}, ["x"], 0, 0], ["L", "t", "expires"], ["L", "t", None]]
    _, decoded = codec.decode_txn(codec.encode_txn(9, ops))
    u, d, p, old, ttl_on, ttl_off = decoded
    assert u.ext.add == {"n": (2, 2)} and u.ext.add_elems == {"s": frozenset({"x"})}
    assert u.ext.del_elems == {"t": frozenset({1})} and not u.ttl
    assert d.ttl and d.ext.observed == {"n": {B: (2, 3)}}
    assert p.ext.observed == d.ext.observed
    assert not old.ext and old.remove == ("x",)
    assert ttl_on.attrs == {"ttl_attribute": "expires"} and ttl_off.attrs == {"ttl_attribute": None}


@pytest.mark.parametrize("extw, reason", [
    ({}, "non-empty map"),
    ({"z": 1}, "non-empty map"),
    ({"a": {"n": [1]}}, "an ADD is \\[n, total\\]"),
    ({"a": {"n": ["1", 1]}}, "ADD amount is not a number"),
    ({"s": {"tags": []}}, "non-empty array"),
    ({"s": {"tags": [None]}}, "set elements are strings"),
    ({"a": {"n": [1, 1]}, "s": {"n": ["x"]}}, "one attribute in two"),
    ({"t": False}, "'t' must be true"),
    ({"o": {"n": [[1, 1, 1], [1, 2, 2]]}}, "not ascending"),
])
def test_hostile_op_ext_is_refused(extw: dict[str, Any], reason: str) -> None:
    raw = codec.encode_txn(9, [["U", "t", key(), {"k": 1}, [], 0, 0, extw]])
    with pytest.raises(ValidationError, match=reason):
        codec.decode_txn(raw)


def test_an_update_may_not_set_and_add_one_attribute() -> None:
    raw = codec.encode_txn(9, [["U", "t", key(), {"k": 1, "n": 1}, [], 0, 0,
                                {"a": {"n": [1, 1]}}]])
    with pytest.raises(ValidationError, match="also adds to"):
        codec.decode_txn(raw)
    raw = codec.encode_txn(9, [["D", "t", key(), 0, 0, {"a": {"n": [1, 1]}}]])
    with pytest.raises(ValidationError, match="a delete carries no ADD"):
        codec.decode_txn(raw)
