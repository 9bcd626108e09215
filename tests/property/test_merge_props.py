"""Hypothesis: the item merge is a join — commutative, associative, idempotent — and any order
of delivery of the same deltas, with duplicates, converges to byte-identical state."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

from engine.clock import BOTTOM, Version
from engine.codec import canonical
from engine.item import (
    ABSENT,
    ItemState,
    delete_delta,
    max_version,
    merge,
    merge_change,
    put_delta,
    update_delta,
    visible,
)

NAMES = ["k", "a", "b", "c"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.floats(-2, 2, allow_nan=False),
    st.sampled_from([0.0, -0.0, 1.0, Decimal("1"), Decimal("1.0")]),
    st.text(max_size=3), st.binary(max_size=3),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(["p", "q"]), inner, max_size=2)),
    max_leaves=5,
)
attr_maps = st.dictionaries(st.sampled_from(NAMES), values, max_size=4)


def norm(state: ItemState) -> bytes:
    """Byte-level identity of a state: equal bytes on every replica, or it diverged."""
    attrs = sorted(
        (name, list(ver), None if val is ABSENT else [canonical(val)])
        for name, (ver, val) in state.attrs.items()
    )
    return canonical([list(state.cleared), attrs])


@st.composite
def delta_for(draw: st.DrawFn, version: Version) -> ItemState:
    kind = draw(st.sampled_from(["put", "update", "delete"]))
    if kind == "put":
        return put_delta(draw(attr_maps), version)
    if kind == "delete":
        return delete_delta(version)
    setting = draw(attr_maps)
    removing = draw(st.lists(st.sampled_from(NAMES), max_size=2))
    return update_delta(setting, [n for n in removing if n not in setting], version)


# distinct versions: the normal case
distinct_versions = st.lists(
    st.tuples(st.integers(1, 40), st.integers(1, 3)), min_size=1, max_size=8, unique=True)
# few versions, so several deltas share one with different content: the tie-break
shared_versions = st.lists(
    st.tuples(st.integers(1, 3), st.integers(1, 2)), min_size=1, max_size=8)


@st.composite
def deltas(draw: st.DrawFn, versions: st.SearchStrategy[list[Version]] = distinct_versions
           ) -> list[ItemState]:
    return [draw(delta_for(v)) for v in draw(versions)]


@st.composite
def states(draw: st.DrawFn) -> ItemState:
    state = ItemState()
    for d in draw(deltas(st.one_of(distinct_versions, shared_versions))):
        state = merge(state, d, canonical)
    return state


def m(a: ItemState, b: ItemState) -> ItemState:
    return merge(a, b, canonical)


@given(states(), states())
def test_commutative(a: ItemState, b: ItemState) -> None:
    assert norm(m(a, b)) == norm(m(b, a))


@given(states(), states(), states())
def test_associative(a: ItemState, b: ItemState, c: ItemState) -> None:
    assert norm(m(m(a, b), c)) == norm(m(a, m(b, c)))


@given(states())
def test_idempotent(a: ItemState) -> None:
    assert norm(m(a, a)) == norm(a)
    assert norm(m(m(a, ItemState()), a)) == norm(a)


@given(states(), states())
def test_merge_absorbs(a: ItemState, b: ItemState) -> None:
    ab = m(a, b)
    assert norm(m(ab, a)) == norm(ab)
    assert norm(m(ab, b)) == norm(ab)


def _delivery(draw: st.DrawFn, ds: list[ItemState]) -> list[ItemState]:
    order = draw(st.permutations(range(len(ds))))
    dups = draw(st.lists(st.integers(0, len(ds) - 1), max_size=len(ds)))
    seq = [ds[i] for i in order]
    for i in dups:
        seq.insert(draw(st.integers(0, len(seq))), ds[i])
    return seq


def _apply(seq: list[ItemState]) -> ItemState:
    state = ItemState()
    for d in seq:
        state = m(state, d)
    return state


@given(st.data(), deltas())
def test_any_order_with_duplicates_converges(data: st.DataObject, ds: list[ItemState]) -> None:
    reference = _apply(ds)
    for _ in range(3):
        assert norm(_apply(_delivery(data.draw, ds))) == norm(reference)


@given(st.data(), deltas(shared_versions))
def test_any_order_converges_with_equal_versions(data: st.DataObject, ds: list[ItemState]) -> None:
    reference = _apply(ds)
    for _ in range(3):
        assert norm(_apply(_delivery(data.draw, ds))) == norm(reference)


@given(deltas())
def test_last_writer_wins_per_attribute(ds: list[ItemState]) -> None:
    """The visible item is what replaying the deltas in version order gives."""
    by_version = sorted(ds, key=lambda d: max([d.cleared, *(e[0] for e in d.attrs.values())]))
    expected: dict[str, Any] = {}
    for d in by_version:
        if d.cleared != (0, 0):  # put or delete: start over
            expected = {}
        for name, (_, val) in d.attrs.items():
            if val is ABSENT:
                expected.pop(name, None)
            else:
                expected[name] = val
    got = visible(_apply(ds))
    assert (got or {}) == expected


@given(states(), deltas(), st.tuples(st.integers(0, 45), st.integers(0, 3)))
def test_merge_change_is_merge_and_reports_only_above_seen(
    local: ItemState, ds: list[ItemState], seen: Version
) -> None:
    delta = ds[0]
    version = max([delta.cleared, *(e[0] for e in delta.attrs.values())])
    merged, lost = merge_change(local, delta, version, seen, canonical)
    assert norm(merged) == norm(m(local, delta))
    for c in lost:
        # neither writer had seen the other: a lost local value is above the incoming
        # writer's ``seen``; a lost incoming value lost to the local latest write, whose
        # writer's ``seen`` is below the incoming version
        if c.local_lost:
            assert c.loser > seen
        else:
            assert c.winner == max_version(local) and version > local.seen
        assert c.value is not ABSENT
        if c.local_lost:
            assert local.attrs[c.attribute] == (c.loser, c.value)
        else:
            assert delta.attrs[c.attribute] == (c.loser, c.value)


@given(states(), deltas())
def test_merge_change_with_everything_seen_reports_nothing(
    local: ItemState, ds: list[ItemState]
) -> None:
    """A change written after its writer had seen all of the local state is no conflict."""
    delta = ds[0]
    version = max([delta.cleared, *(e[0] for e in delta.attrs.values())])
    assume(version > max_version(local))
    _, lost = merge_change(local, delta, version, max_version(local), canonical)
    assert lost == []


@given(states(), deltas())
def test_merge_change_older_change_the_local_writer_saw_reports_nothing(
    local: ItemState, ds: list[ItemState]
) -> None:
    """A change arriving late, after a local write whose writer had seen it, is no conflict."""
    delta = ds[0]
    version = max([delta.cleared, *(e[0] for e in delta.attrs.values())])
    local.seen = max(local.seen, version)
    _, lost = merge_change(local, delta, version, BOTTOM, canonical)
    assert [c for c in lost if not c.local_lost] == []


equal_but_different = st.sampled_from(
    [0, 0.0, -0.0, False, Decimal(0), Decimal("-0"), 1, 1.0, True, Decimal("1.0"), [1], [1.0],
     {"p": 0}, {"p": False}, "1", b"1"])


@given(equal_but_different, equal_but_different, st.booleans())
def test_tie_break_is_byte_exact(x: Any, y: Any, put: bool) -> None:
    """Values Python calls equal (1 == 1.0 == True) still converge to the same bytes."""
    make = put_delta if put else (lambda attrs, v: update_delta(attrs, [], v))
    a, b = make({"x": x}, (5, 1)), make({"x": y}, (5, 1))
    assert norm(m(a, b)) == norm(m(b, a))
