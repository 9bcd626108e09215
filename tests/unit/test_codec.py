"""The CBOR boundary: value validation, compact item states, the transaction format and its
untrusted decoder."""

from __future__ import annotations

import contextlib
import enum
from decimal import Decimal
from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import ValidationError, codec
from engine.clock import BOTTOM
from engine.item import ABSENT, ItemState, merge, put_delta, update_delta
from engine.keys import encode_value

KEY = encode_value("t") + encode_value("k1")


# -- values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["", "é", 0, -(2**63), 2**100, 1.5, -0.0, Decimal("1.25"), b"\x00", True, None, [], {},
     [1, "a", [None]], {"a": {"b": [1.5]}}, {"x"}, frozenset({1, 2.5, Decimal("3")}), {b"a"},
     set()],
)
def test_accepted_values(value: Any) -> None:
    codec.check_value(value, "attr")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (float("nan"), "finite"), (float("inf"), "finite"), (Decimal("NaN"), "finite"),
        (Decimal("-Infinity"), "finite"), ("\udc80", "Unicode"), ((1, 2), "tuple"),
        (object(), "object"), (1j, "complex"), ({1: "a"}, "map keys"),
        ({True}, "set elements"), ({("a",)}, "set elements"), ({"a", 1}, "one kind"),
        ({b"a", "a"}, "one kind"), ([[float("nan")]], "finite"), (2**9000, "too large"),
        (bytearray(b"x"), "bytearray"),
    ],
)
def test_rejected_values(value: Any, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        codec.check_value(value, "attr")


def test_rejected_value_path_names_the_place() -> None:
    with pytest.raises(ValidationError, match=r"item: attribute 'a'\.b\[1\]"):
        codec.check_attrs({"a": {"b": [1, float("nan")]}}, "item")


def test_nesting_limit() -> None:
    deep: Any = 1
    for _ in range(codec.MAX_DEPTH):
        deep = [deep]
    codec.check_value(deep, "x")
    with pytest.raises(ValidationError, match="nested deeper"):
        codec.check_value([deep], "x")


@pytest.mark.parametrize("name", ["", 1, None, b"a", "x" * 256, "é" * 128])
def test_bad_attribute_names(name: Any) -> None:
    with pytest.raises(ValidationError, match="attribute name"):
        codec.check_attr_name(name, "item")


def test_long_but_valid_attribute_name() -> None:
    assert codec.check_attr_name("x" * 255) == "x" * 255


class Color(enum.Enum):
    RED = 1


def test_enum_that_is_not_a_scalar_subclass_is_rejected() -> None:
    with pytest.raises(ValidationError, match="Color"):
        codec.check_value(Color.RED, "c")


def test_canonical_is_order_independent() -> None:
    assert codec.canonical({"a": 1, "b": 2}) == codec.canonical({"b": 2, "a": 1})
    assert codec.canonical({1, 2, 3}) == codec.canonical({3, 2, 1})
    assert codec.canonical(1) != codec.canonical(1.0)


# -- item state ---------------------------------------------------------------------------


def test_state_after_put_is_compact() -> None:
    state = put_delta({"k": "k1", "a": 1, "b": [1, 2]}, (5, 9))
    raw = codec.encode_state(state)
    assert cbor2.loads(raw) == [5, 9, {"k": "k1", "a": 1, "b": [1, 2]}, {}]
    assert codec.decode_state(raw) == state
    assert codec.visible_from_raw(raw) == {"k": "k1", "a": 1, "b": [1, 2]}
    assert codec.put_state_bytes((5, 9), codec.dumps(state_attrs(state))) == raw


def state_attrs(state: ItemState) -> dict[str, Any]:
    return {n: v for n, (_, v) in state.attrs.items()}


def test_state_with_other_versions_and_tombstones() -> None:
    state = merge(put_delta({"k": "k1", "a": 1, "b": 2}, (5, 9)),
                  update_delta({"a": 10}, ["b"], (6, 3)), codec.canonical)
    raw = codec.encode_state(state)
    assert cbor2.loads(raw) == [5, 9, {"k": "k1"}, {"a": [6, 3, 10], "b": [6, 3]}]
    assert codec.decode_state(raw) == state
    assert codec.visible_from_raw(raw) == {"k": "k1", "a": 10}
    assert codec.max_version_raw(raw) == (6, 3)
    tomb = ItemState((7, 1), {})
    assert codec.visible_from_raw(codec.encode_state(tomb)) is None
    assert codec.max_version_raw(codec.encode_state(ItemState())) == BOTTOM


def test_untrusted_state() -> None:
    good = codec.encode_state(ItemState((5, 9), {"a": ((5, 9), 1), "b": ((6, 1), ABSENT)}))
    assert codec.decode_state_untrusted(good, "here").attrs["b"] == ((6, 1), ABSENT)
    bad = [
        b"\xff", cbor2.dumps([1, 2, 3]), cbor2.dumps([-1, 0, {}, {}]),
        cbor2.dumps([1, 1, {"a": float("nan")}, {}]), cbor2.dumps([1, 1, {}, {"a": [1]}]),
        cbor2.dumps([5, 5, {}, {"a": [1, 1, 2]}]),  # entry older than its clear point
        cbor2.dumps([1, 1, [], {}]), cbor2.dumps([1, 1, {1: 2}, {}]),
    ]
    for raw in bad:
        with pytest.raises(ValidationError, match="here: malformed item state"):
            codec.decode_state_untrusted(raw, "here")


# -- transactions --------------------------------------------------------------------------


def test_txn_golden_and_round_trip() -> None:
    ops = [["T", "t", "pk", None], ["P", "t", KEY, {"pk": "k1"}, 0, 0],
           ["U", "t", KEY, {"a": 1}, ["b"], 5, 7], ["D", "t", KEY, 5, 7]]
    raw = codec.encode_txn(42, ops)
    assert raw == cbor2.dumps([42, ops])
    hlc, decoded = codec.decode_txn(raw)
    assert hlc == 42
    assert [op.kind for op in decoded] == ["T", "P", "U", "D"]
    assert decoded[0].attrs == {"partition_key": "pk", "sort_key": None}
    assert decoded[1] == codec.Op("P", "t", KEY, {"pk": "k1"}, (), (0, 0))
    assert decoded[2] == codec.Op("U", "t", KEY, {"a": 1}, ("b",), (5, 7))
    assert decoded[3] == codec.Op("D", "t", KEY, {}, (), (5, 7))
    assert codec.decode_txn(raw, trusted=True) == (hlc, decoded)


def test_spliced_put_equals_plain_encoding() -> None:
    attrs = {"pk": "k1", "n": 1.5, "s": {"x"}}
    parts = codec.encode_txn_parts(
        2**40, [codec.put_op_bytes("t", KEY, codec.dumps(attrs), (300, 2**63))])
    assert parts == codec.encode_txn(2**40, [["P", "t", KEY, attrs, 300, 2**63]])


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ([1], "not \\[hlc"),
        ([1, []], "no operations"),
        ([-1, [["D", "t", KEY, 0, 0]]], "hlc"),
        ([2**64, [["D", "t", KEY, 0, 0]]], "hlc"),
        ([True, [["D", "t", KEY, 0, 0]]], "hlc"),
        ([1, ["D"]], "not an array"),
        ([1, [["X", "t", KEY, 0, 0]]], "unknown operation"),
        ([1, [["D", "t", KEY, 0]]], "unknown operation"),
        ([1, [["D", "", KEY, 0, 0]]], "table name"),
        ([1, [["D", "t", "key", 0, 0]]], "not bytes"),
        ([1, [["D", "t", encode_value("u") + encode_value(1), 0, 0]]], "belongs to table"),
        ([1, [["D", "t", b"\x99", 0, 0]]], "malformed"),
        ([1, [["D", "t", KEY, -1, 0]]], "seen hlc"),
        ([1, [["P", "t", KEY, [], 0, 0]]], "not a map"),
        ([1, [["P", "t", KEY, {"a": float("inf")}, 0, 0]]], "finite"),
        ([1, [["P", "t", KEY, {"": 1}, 0, 0]]], "attribute names"),
        ([1, [["U", "t", KEY, {"a": 1}, ["a"], 0, 0]]], "sets and removes"),
        ([1, [["U", "t", KEY, {"a": 1}, [1], 0, 0]]], "attribute names"),
        ([1, [["U", "t", KEY, {}, "ab", 0, 0]]], "map and an array"),
        ([1, [["T", "t", 1, None]]], "partition key"),
        ([1, [["T", "t", "pk", 5]]], "sort key"),
    ],
)
def test_untrusted_txn_rejected(obj: Any, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        codec.decode_txn(cbor2.dumps(obj))


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x82", b"\x9f\x01\xff", b"\x82\x01\x9f\xff", bytes([0x82, 0x01, 0x9b]) + b"\xff" * 8,
     cbor2.dumps([1, [["P", "t", KEY, {"a": cbor2.CBORTag(1234, 5)}, 0, 0]]]),
     cbor2.dumps([1, [["P", "t", KEY, {"a": 2**9000}, 0, 0]]])],
)
def test_untrusted_txn_garbage(raw: bytes) -> None:
    with pytest.raises(ValidationError):
        codec.decode_txn(raw)


@given(st.binary(max_size=200))
def test_untrusted_txn_arbitrary_bytes_only_validation_error(raw: bytes) -> None:
    with contextlib.suppress(ValidationError):
        codec.decode_txn(raw)


# every value a node accepts from its user, its peers must accept from it (no poison pills)
stored_values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(min_value=-(2**7000), max_value=2**7000),
        st.floats(allow_nan=False, allow_infinity=False),
        st.decimals(allow_nan=False, allow_infinity=False),
        st.text(st.characters(exclude_categories=("Cs",))), st.binary(),
        st.frozensets(st.text(max_size=3), max_size=3),
        st.sets(st.integers(-(2**80), 2**80), max_size=3),
        st.sets(st.binary(max_size=3), max_size=3),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(min_size=1, max_size=4), inner, max_size=4)),
    max_leaves=12,
)


@given(st.dictionaries(st.text(min_size=1, max_size=8), stored_values, max_size=5))
def test_what_a_node_writes_its_peers_accept(attrs: dict[str, Any]) -> None:
    codec.check_attrs(attrs, "item")
    raw = codec.encode_txn(1, [["P", "t", KEY, attrs, 0, 0]])
    _, (op,) = codec.decode_txn(raw)
    assert codec.canonical(op.attrs) == codec.canonical(attrs)
    state = codec.decode_state_untrusted(codec.encode_state(put_delta(attrs, (1, 1))), "x")
    assert codec.canonical(state_attrs(state)) == codec.canonical(attrs)
