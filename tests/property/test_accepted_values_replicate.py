"""Hypothesis: whatever put/update/batch accept, a fresh peer accepts from the exported segment.

Writer and receiver run one validator (:func:`engine.codec.check_value`) and the receiver's
CBOR depth bound is derived from it, so a value the API takes can never stall its origin's
replication at every peer (issue 10 item 4). Values are drawn to sit at the edges: nesting
depth 29-33 with tagged leaves (Decimal, bignums, sets of them), odd strings and names,
non-finite numbers, int map keys.
"""

from __future__ import annotations

import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import engine
from replication import exchange as ex
from replication.segment import decode_segment

LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2**63, max_value=2**80),
    st.integers(max_value=-(2**70)), st.integers(min_value=2**7990, max_value=2**8010),
    st.floats(), st.decimals(),
    st.sampled_from([Decimal(2**80) / 7, Decimal("-0"), Decimal("1e400")]),
    st.text(max_size=4), st.sampled_from(["\ud800", "a\x00b", "é", "\U0001f600"]),
    st.binary(max_size=4),
    st.frozensets(st.integers(min_value=-(2**70), max_value=2**70), max_size=3),
    st.frozensets(st.decimals(allow_nan=False, allow_infinity=False), max_size=2),
    st.frozensets(st.text(max_size=2), max_size=2),
    st.sets(st.one_of(st.integers(), st.text(max_size=2)), max_size=2),
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=3), st.integers(0, 3)), inner, max_size=2),
    ),
    max_leaves=6,
)


def _nest(value: Any, depth: int) -> Any:
    for _ in range(depth):
        value = [value]
    return value


DEEP = st.builds(_nest, LEAVES, st.integers(28, 33))
ATTR = st.one_of(st.sampled_from(["a", "b", "\ud800", "x" * 256, ""]), st.text(max_size=3))
ITEMS = st.dictionaries(ATTR, st.one_of(VALUES, DEEP), max_size=3)


def _replicates(write: Any) -> None:
    with tempfile.TemporaryDirectory() as d, \
            engine.open(Path(d) / "a", region="a", durable=False) as a, \
            engine.open(Path(d) / "b", region="b", durable=False) as b:
        t = a.create_table("t", partition_key="k")
        try:
            write(a, t)
        except engine.ValidationError:
            return  # refused at the writer: nothing to replicate
        for _, data in ex.iter_segments(a, {}):
            r = ex.apply_segment(b, decode_segment(data))
            assert not r.refused, r.refused
        assert b.version_vector() == a.version_vector()
        assert b.digest() == a.digest()
        for _, data in ex.iter_segments(a, {}, force_snapshot=True):  # and as a snapshot
            ex.apply_segment(b, decode_segment(data))
        assert b.digest() == a.digest()


@given(ITEMS)
@example({"v": _nest(Decimal("1.5"), 31)})
@example({"v": _nest(Decimal(2**80) / 7, 32)})
@example({"v": _nest(frozenset({1, 2}), 31)})
@example({"v": _nest(frozenset({Decimal(2**70) / 3}), 31)})
@example({"v": _nest(2**70, 32)})
@example({"v": _nest(-(2**70), 32)})
def test_whatever_put_accepts_a_fresh_peer_accepts(item: dict[str, Any]) -> None:
    _replicates(lambda a, t: t.put({"k": 1, **item}))


@given(ITEMS)
def test_whatever_update_accepts_a_fresh_peer_accepts(attrs: dict[str, Any]) -> None:
    _replicates(lambda a, t: t.update(1, set=attrs))


@given(st.lists(ITEMS, min_size=1, max_size=3))
def test_whatever_a_batch_accepts_a_fresh_peer_accepts(items: list[dict[str, Any]]) -> None:
    def write(a: engine.Store, t: engine.Table) -> None:
        with a.batch() as b:
            for i, item in enumerate(items):
                b.put(t, {**item, "k": i})

    _replicates(write)


@pytest.mark.parametrize("mutate", [
    lambda v: v.append(float("nan")),
    lambda v: v.append(2**9000),
    lambda v: v.append({1: "int map key"}),
    lambda v: v.append(_nest(Decimal(1), 40)),
])
def test_a_batch_captures_its_ops_when_added(tmp_path: Path, mutate: Any) -> None:
    """A value mutated after ``batch.put``/``update`` cannot commit unvalidated."""
    with engine.open(tmp_path / "a", region="a") as a, engine.open(tmp_path / "b", region="b") as b:
        t = a.create_table("t", partition_key="k")
        v: list[Any] = [1]
        w: list[Any] = [2]
        with a.batch() as batch:
            batch.put(t, {"k": 1, "v": v})
            batch.update(t, 2, set={"w": w})
            mutate(v)
            mutate(w)
        assert t.get(1) == {"k": 1, "v": [1]} and t.get(2) == {"k": 2, "w": [2]}
        for _, data in ex.iter_segments(a, {}):
            ex.apply_segment(b, decode_segment(data))
        assert b.digest() == a.digest()
