"""The relabel law (engine.relabel): renaming a restored node's state after its forked
changes equals merging the relabeled changes instead, for every merge type — so the node and
the world agree without any peer state. And the V op and the voids record refuse bad input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import codec
from engine.apply import op_delta
from engine.errors import ValidationError
from engine.item import ItemState, merge, plan_write, visible
from engine.keys import encode_value
from engine.mergewire import op_wire
from engine.relabel import Chains, Fork, relabel_txn, rename_state
from engine.voids import check_wire

OLD, OTHER, NEW = 0xA1, 0xB2, 0x05  # NEW below OLD: a tie on the version would show
KEY = encode_value("t") + encode_value("k")

OPS = st.lists(st.one_of(
    st.tuples(st.just("add"), st.sampled_from(["n", "m"]), st.integers(-3, 5)),
    st.tuples(st.just("set"), st.sampled_from(["n", "x"]), st.integers(0, 3)),
    st.tuples(st.just("remove"), st.sampled_from(["n", "x"]), st.none()),
    st.tuples(st.just("tag"), st.sampled_from(["red", "big"]), st.booleans()),
    st.tuples(st.just("put"), st.none(), st.integers(0, 3)),
    st.tuples(st.just("delete"), st.none(), st.none()),
), max_size=6)


def _write(state: ItemState | None, origin: int, hlc: int, op: tuple[str, Any, Any],
           ) -> tuple[bytes, ItemState]:
    """One write by ``origin`` on ``state``: its transaction bytes and the merged state."""
    kind, name, value = op
    seen = (0, 0) if state is None else max(
        [state.cleared, *(v for v, _ in state.attrs.values())])
    if kind == "add":
        ext = plan_write(state, origin, add={name: value}, reset=[])
        w = op_wire("U", "t", KEY, {"id": "k"}, [], seen, ext)
    elif kind == "tag":
        ext = plan_write(state, origin, **{"add_elems" if value else "del_elems":
                                           {"tags": [name]}}, reset=[])
        w = op_wire("U", "t", KEY, {"id": "k"}, [], seen, ext)
    elif kind in ("set", "remove"):
        ext = plan_write(state, origin, reset=[name])
        attrs = {"id": "k", **({name: value} if kind == "set" else {})}
        w = op_wire("U", "t", KEY, attrs, [name] if kind == "remove" else [], seen, ext)
    elif kind == "put":
        w = op_wire("P", "t", KEY, {"id": "k", "n": value}, [], seen, plan_write(state, origin))
    else:
        w = op_wire("D", "t", KEY, {}, [], seen, plan_write(state, origin))
    raw = codec.encode_txn(hlc, [w])
    return raw, _merge_txn(state, raw, origin)


def _merge_txn(state: ItemState | None, raw: bytes, origin: int) -> ItemState:
    hlc, ops = codec.decode_txn(raw)
    for op in ops:
        if op.kind in "PUD":
            delta = op_delta(op, (hlc, origin))
            state = delta if state is None else merge(state, delta, codec.canonical)
    assert state is not None
    return state


@settings(max_examples=300, deadline=None)
@given(before=OPS, others=OPS, forked=OPS.filter(bool))
def test_renaming_equals_merging_the_relabeled_changes(
    before: list[Any], others: list[Any], forked: list[Any]
) -> None:
    """``before``: the old id's writes the world holds (the backup); ``others``: another
    node's, interleaved; ``forked``: the old id's writes after the restore."""
    hlc = 100
    state: ItemState | None = None
    for a, b in zip(before, others + [None] * len(before), strict=False):
        hlc += 1
        state = _write(state, OLD, hlc, a)[1]
        if b is not None:
            hlc += 1
            state = _write(state, OTHER, hlc, b)[1]
    world = state
    mine, txns = state, []
    for op in forked:
        hlc += 1
        raw, mine = _write(mine, OLD, hlc, op)
        txns.append((hlc, raw))
    fork = Fork(OLD, {h: NEW for h, _ in txns})
    chains: Chains = {}
    relabeled = [relabel_txn(raw, seq, fork, chains) for seq, (_, raw) in enumerate(txns, 1)]
    for raw in relabeled:
        world = _merge_txn(world, raw, NEW)
    assert mine is not None and world is not None
    renamed = rename_state(mine, fork, {name: c for (_, name), c in chains.items()})
    assert renamed == world
    assert visible(renamed) == visible(world)


def test_a_relabeled_change_names_the_entry_it_was() -> None:
    raw, state = _write(None, OLD, 7, ("add", "n", 2))
    out = relabel_txn(raw, 3, Fork(OLD, {7: NEW}), {})
    hlc, ops = codec.decode_txn(out)
    assert hlc == 7 and ops[-1].kind == "V"
    assert ops[-1].attrs["origin"] == OLD and ops[-1].attrs["seq"] == 3
    assert ops[-1].attrs["bases"] == [[KEY, "n", 0, 0]]  # the first ADD of the chain


@pytest.mark.parametrize("bad,why", [
    (["V", 0, 3, []], "non-zero"),
    (["V", OLD, 0, []], "non-zero"),
    (["V", OLD, 3, {}], "not an array"),
    (["V", OLD, 3, [[KEY, "n", 0]]], "void base is"),
    (["V", OLD, 3, [[b"junk", "n", 0, 0]]], "malformed key"),
    (["V", OLD, 3, [[KEY, "", 0, 0]]], "attribute names"),
    (["V", OLD, 3, [[KEY, "n", -1, 0]]], "hlc"),
    (["V", OLD, 3, [[KEY, "n", 0, True]]], "not a number"),
    (["V", OLD, 3, [[KEY, "n", 0, float("nan")]]], "finite"),
])
def test_a_bad_void_op_is_refused(bad: list[Any], why: str) -> None:
    raw = codec.encode_txn(5, [["U", "t", KEY, {"id": "k"}, [], 0, 0], bad])
    with pytest.raises(ValidationError, match=why):
        codec.decode_txn(raw)


@pytest.mark.parametrize("bad", [
    {}, [[OLD]], [[OLD, {}, []]], [[0, [], []]], [[OLD, [[1, 2]], []]],
    [[OLD, [[1, 2, 0]], []]], [[OLD, [], [[KEY, "n", 0]]]],
])
def test_bad_voids_from_a_peer_are_refused(bad: Any) -> None:
    with pytest.raises(ValidationError):
        check_wire(bad)
