"""replication.vv: version-vector algebra, the ack table, and the causal-stability decision."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

import engine
from replication import vv as V

NODES = st.integers(1, 6)
VVS = st.dictionaries(NODES, st.integers(0, 20), max_size=6)


@given(VVS, VVS, VVS)
def test_merge_is_a_join(a: dict[int, int], b: dict[int, int], c: dict[int, int]) -> None:
    m = V.merge(a, b)
    assert V.merge(a, b) == V.merge(b, a)
    assert V.merge(V.merge(a, b), c) == V.merge(a, V.merge(b, c))
    assert V.merge(m, m) == m
    assert V.dominates(m, a) and V.dominates(m, b)
    assert 0 not in m.values()


@given(VVS, VVS)
def test_diff_ranges_is_exactly_what_is_missing(have: dict[int, int], want: dict[int, int]) -> None:
    ranges = V.diff_ranges(have, want)
    filled = dict(have)
    for o, (first, last) in ranges.items():
        assert first == have.get(o, 0) + 1 and first <= last
        filled[o] = last
    assert V.dominates(filled, want)
    assert (not ranges) == V.dominates(have, want)


@given(st.lists(VVS, max_size=4))
def test_minimum_is_dominated_by_all(vvs: list[dict[int, int]]) -> None:
    low = V.minimum(vvs)
    assert all(V.dominates(x, low) for x in vvs)


@pytest.mark.parametrize("bad", [{0: 1}, {1: -1}, {"a": 1}, {1: True}, [1, 2], {1: 2**64}])
def test_check_vv_refuses_garbage(bad: object) -> None:
    with pytest.raises(engine.ValidationError):
        V.check_vv(bad)


def test_merge_acks_skips_self_and_forgotten() -> None:
    table = V.merge_acks({2: {1: 3}}, {1: {1: 9}, 2: {1: 5, 2: 1}, 3: {3: 4}}, self_id=1,
                         forgotten={3})
    assert table == {2: {1: 5, 2: 1}}


def test_ack_table_persists_and_only_grows(make_store: Callable[..., engine.Store]) -> None:
    s = make_store("a")
    V.update_acks(s, {7: {7: 5, 8: 2}})
    V.update_acks(s, {7: {7: 3, 8: 4}, s.node_id: {7: 1}})
    assert V.load_acks(s) == {7: {7: 5, 8: 4}}
    s.forget(7)
    assert V.update_acks(s, {}) == {}


# ----------------------------------------------------------------- plan_gc, table-driven

ME, P, Q = 1, 2, 3

GC_CASES = [
    # (name, our vv, ack rows, forgotten, expected stable or None)
    ("alone: everything is stable", {ME: 4}, {}, (), {ME: 4}),
    ("unknown member blocks", {ME: 4, P: 2}, {}, (), None),
    ("member known only through acks blocks", {ME: 4}, {P: {ME: 4}, Q: None}, (), None),
    ("min over members", {ME: 4, P: 3}, {P: {ME: 2, P: 3}}, (), {ME: 2, P: 3}),
    ("peer acked its own seq 5, we hold 3: blocked", {ME: 4, P: 3}, {P: {ME: 4, P: 5}}, (), None),
    ("forgotten peer does not count", {ME: 4, P: 3}, {P: {ME: 4, P: 3}, Q: {ME: 1}}, (Q,),
     {ME: 4, P: 3}),
    ("capped at our own vv", {ME: 4, P: 1}, {P: {ME: 9, P: 1}}, (), {ME: 4, P: 1}),
    ("third party's row counts", {ME: 4, P: 2, Q: 1}, {P: {ME: 4, P: 2, Q: 1}, Q: {ME: 1, Q: 1}},
     (), {ME: 1, Q: 1}),
]


@pytest.mark.parametrize("name,vv,acks,forgotten,expected", GC_CASES, ids=[c[0] for c in GC_CASES])
def test_plan_gc(name: str, vv: dict[int, int], acks: dict[int, dict[int, int] | None],
                 forgotten: tuple[int, ...], expected: dict[int, int] | None) -> None:
    rows = {n: r for n, r in acks.items() if r is not None}
    if any(r is None for r in acks.values()):  # a member learned of, with no row yet
        vv = {**vv, **{n: 1 for n, r in acks.items() if r is None}}
    plan = V.plan_gc(ME, vv, rows, forgotten)
    assert plan.stable == expected, plan.reason
    if expected is None:
        assert plan.reason


@given(VVS, st.dictionaries(NODES, VVS, max_size=5))
def test_plan_gc_never_passes_what_a_member_lacks(
    vv: dict[int, int], acks: dict[int, dict[int, int]],
) -> None:
    plan = V.plan_gc(ME, vv, acks, ())
    if plan.stable is None:
        return
    for n in V.members(ME, vv, acks, ()):
        row = vv if n == ME else acks[n]
        assert V.dominates(row, plan.stable)
        assert vv.get(n, 0) >= row.get(n, 0)


def test_range_gaps_is_the_one_rule_for_both_transports() -> None:
    """A range starting past what we hold is a gap, except for origins skipped (ourselves,
    forgotten nodes): the mailbox/segment path (exchange) and live sessions share this rule."""
    have = {1: 3, 2: 1}
    ranges = {1: (4, 9), 2: (5, 6), 3: (2, 2), 4: (1, 1)}
    assert V.range_gaps(have, ranges) == {2: (1, 5), 3: (0, 2)}
    assert V.range_gaps(have, ranges, skip={3}) == {2: (1, 5)}
    assert V.range_gaps(have, {2: (2, 2)}) == {}
