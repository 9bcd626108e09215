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
    WriteExt,
    attribute_value,
    counter_names,
    delete_delta,
    max_version,
    merge,
    merge_change,
    plan_write,
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
    extra = sorted(
        (name, list(e.obs_v),
         sorted([o, h, canonical(t)] for o, (h, t) in e.obs.items()),
         sorted([o, h, canonical(t)] for o, (h, t) in e.incs.items()),
         sorted([canonical(el), list(ver), present] for el, (ver, present) in e.elems.items()))
        for name, e in state.extra.items()
    )
    return canonical([list(state.cleared), attrs, extra])


# counters ("n", "m") and sets ("s") in generated histories; their names may also be set,
# removed or put like any attribute (a reset)
COUNTERS, SETS = ["n", "m"], ["s"]
numbers = st.one_of(st.integers(-3, 3), st.sampled_from([Decimal("0.5"), 1.5, 1.0]))
elements = st.sampled_from(["a", "b", 1, 1.0, Decimal("1.0"), 2, b"a"])
observed = st.dictionaries(
    st.sampled_from(COUNTERS),
    st.dictionaries(st.integers(1, 3), st.tuples(st.integers(1, 40), numbers), max_size=2),
    max_size=2,
)


@st.composite
def exts(draw: st.DrawFn) -> WriteExt:
    return WriteExt(
        add=draw(st.dictionaries(st.sampled_from(COUNTERS), st.tuples(numbers, numbers),
                                 max_size=2)),
        add_elems=draw(st.dictionaries(st.sampled_from(SETS), st.frozensets(elements, max_size=3),
                                       max_size=1)),
        del_elems=draw(st.dictionaries(st.sampled_from(SETS), st.frozensets(elements, max_size=2),
                                       max_size=1)),
        observed=draw(observed),
    )


ALL_NAMES = NAMES + COUNTERS + SETS
all_attr_maps = st.dictionaries(st.sampled_from(ALL_NAMES), values, max_size=4)


@st.composite
def delta_for(draw: st.DrawFn, version: Version) -> ItemState:
    kind = draw(st.sampled_from(["put", "update", "delete", "update"]))
    ext = draw(st.one_of(st.just(WriteExt()), exts()))
    if kind == "put":
        return put_delta(draw(all_attr_maps), version, ext=ext._replace(
            add={}, add_elems={}, del_elems={}))
    if kind == "delete":
        return delete_delta(version, ext=ext._replace(add={}, add_elems={}, del_elems={}))
    setting = draw(all_attr_maps)
    removing = draw(st.lists(st.sampled_from(ALL_NAMES), max_size=2))
    busy = {*ext.add, *ext.add_elems, *ext.del_elems}
    setting = {n: x for n, x in setting.items() if n not in busy}
    removing = [n for n in removing if n not in setting and n not in busy]
    return update_delta(setting, removing, version, ext=ext)


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
    ds = [d for d in ds if not d.extra]  # plain registers only: counters and sets below
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


# -- counters and sets written by replicas that see each other's changes late ---------------

REPLICAS = 3
sim_ops = st.lists(
    st.tuples(
        st.integers(0, REPLICAS - 1),   # the writing replica
        st.sampled_from(["add", "add", "add", "set", "remove", "put", "delete", "tag", "untag",
                         "deliver", "deliver"]),
        st.integers(-2, 3),             # amount / value / which delta to deliver
    ),
    max_size=25,
)


def observed_by(log: list[Any], j: int) -> set[int]:
    """The writes whose ADDs the write ``j`` had observed: those its writer had merged, and
    (transitively) those observed by any reset it had merged, whose value absorbed them."""
    out: set[int] = set()
    for i in log[j][4]:
        out.add(i)
        if log[i][5]:
            out |= observed_by(log, i)
    return out


@given(sim_ops, st.randoms(use_true_random=False))
def test_counters_count_every_add_with_observed_reset(
    ops: list[tuple[int, str, int]], rnd: Any
) -> None:
    """Replicas writing on what they have seen converge; the counter is the oracle's:
    the winning reset's value plus every ADD that reset had not seen; sets per element."""
    local = [ItemState() for _ in range(REPLICAS)]
    had: list[set[int]] = [set() for _ in range(REPLICAS)]   # delta ids merged per replica
    log: list[tuple[ItemState, Version, str, int, frozenset[int], bool]] = []
    hlc = 0
    for r, kind, x in ops:
        if kind == "deliver":
            if log:
                # as a log delivers: a change of an origin comes after that origin's earlier
                # ones (an origin's ADD totals are cumulative)
                i = abs(x) % len(log)
                for j in range(i + 1):
                    if log[j][1][1] == log[i][1][1] and j not in had[r]:
                        local[r] = m(local[r], log[j][0])
                        had[r].add(j)
            continue
        hlc += 1
        v = (hlc, r + 1)
        state = local[r]
        invisible = visible(state) is None
        if kind == "put":
            ext = plan_write(state, r + 1)
            d = put_delta({"k": 1, "n": x}, v, ext=ext)
        elif kind == "delete":
            d = delete_delta(v, ext=plan_write(state, r + 1))
        elif kind == "set":
            d = update_delta({"k": 1, "n": x}, [], v, ext=plan_write(state, r + 1, reset=["n"]))
        elif kind == "remove":
            d = update_delta({"k": 1}, ["n"], v, ext=plan_write(state, r + 1, reset=["n"]))
        elif kind == "add":
            d = update_delta({"k": 1}, [], v, ext=plan_write(state, r + 1, add={"n": x}, reset=[]))
        else:
            el = {"tag": "add_elems", "untag": "del_elems"}[kind]
            d = update_delta({"k": 1}, [], v, ext=plan_write(
                state, r + 1, **{el: {"s": {f"e{x % 2}"}}}, reset=[]))
        # a write on an item its writer sees as missing resets every counter it holds
        resets = kind in ("put", "delete", "set", "remove") or (
            invisible and "n" in counter_names(state))
        log.append((d, v, kind, x, frozenset(had[r]), resets))
        had[r].add(len(log) - 1)
        local[r] = m(state, d)
    # deliver everything everywhere, each replica in its own random order, with duplicates
    finals = []
    for r in range(REPLICAS):
        seq = [e[0] for e in log] * 2
        rnd.shuffle(seq)
        state = local[r]
        for d in seq:
            state = m(state, d)
        finals.append(state)
    assert len({norm(f) for f in finals}) == 1
    final = finals[0]
    # the counter oracle
    resets = [(i, e) for i, e in enumerate(log) if e[5]]
    if resets:
        ri, (_, _, rkind, rx, _, _) = max(resets, key=lambda ie: ie[1][1])
        base: Any = rx if rkind in ("put", "set") else ABSENT
        seen = observed_by(log, ri)
    else:
        seen, base = set(), ABSENT
    unseen = [e[3] for i, e in enumerate(log) if e[2] == "add" and i not in seen]
    expected: Any = base
    if unseen:
        expected = sum(unseen) + (0 if base is ABSENT else base)
    assert attribute_value(final, "n") == expected
    # the set oracle: per element, the last of its tag/untag and the clears (put, delete)
    tags = set()
    for e in ("e0", "e1"):
        last = max((entry for entry in log if entry[2] in ("put", "delete")
                    or (entry[2] in ("tag", "untag") and f"e{entry[3] % 2}" == e)),
                   key=lambda entry: entry[1], default=None)
        if last is not None and last[2] == "tag":
            tags.add(e)
    assert attribute_value(final, "s") == (tags or ABSENT)
