"""engine.bounded: what cbor2 writes for the allowed value types is accepted; bad input is not."""

from __future__ import annotations

import contextlib
import math
import re
from decimal import Decimal

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.bounded import check_bounded, loads_bounded
from engine.errors import ValidationError

ACCEPTED = [
    "",
    "héllo ☃",
    0,
    23,
    24,
    255,
    256,
    65535,
    65536,
    2**32,
    2**64 - 1,
    2**64,
    2**200,
    -1,
    -(2**64),
    -(2**64) - 1,
    -(2**300),
    0.0,
    -1.5,
    1.1,
    1e300,
    math.inf,
    -math.inf,
    Decimal("1.5"),
    Decimal("-0.001"),
    Decimal("1E+400"),
    Decimal("123456789012345678901234567890.123456789"),
    b"",
    b"\x00\xff" * 100,
    True,
    False,
    None,
    [],
    [1, [2, [3, []]]],
    {},
    {"a": 1, "b": {"c": [1, 2, {"d": None}]}},
    {1: "x", -5: "y", 2**40: "z", 2**64: "big", -(2**70): "neg"},
    set(),
    {"a", "b"},
    frozenset({1, 2.5, Decimal("3.1"), b"x", "y", 2**70}),
    {"items": [{"sku": "s1", "qty": 2, "price": Decimal("9.99")}], "tags": {"gift"}},
]


@pytest.mark.parametrize("value", ACCEPTED, ids=repr)
@pytest.mark.parametrize("canonical", [False, True])
def test_accepts_what_cbor2_writes(value: object, canonical: bool) -> None:
    data = cbor2.dumps(value, canonical=canonical)
    assert loads_bounded(data) == value


def test_nan_decodes_as_nan() -> None:
    assert math.isnan(loads_bounded(cbor2.dumps(math.nan)))  # type: ignore[arg-type]


def test_item_count() -> None:
    assert check_bounded(cbor2.dumps([1, "a", {"k": b"v"}])) == 6


def test_accepts_bytes_like() -> None:
    data = cbor2.dumps([1, 2])
    assert loads_bounded(bytearray(data)) == [1, 2]  # type: ignore[arg-type]
    assert loads_bounded(memoryview(data)) == [1, 2]  # type: ignore[arg-type]


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
    | st.decimals(allow_nan=False, allow_infinity=False)
)
hashables = st.integers() | st.text() | st.binary() | st.floats(allow_nan=False)
values = st.recursive(
    scalars | st.frozensets(hashables, max_size=5),
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.text() | st.integers(), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=100)
@given(values, st.booleans())
def test_round_trips_arbitrary_allowed_values(value: object, canonical: bool) -> None:
    assert loads_bounded(cbor2.dumps(value, canonical=canonical)) == value


REJECTED = [
    ("", "empty input"),
    ("01 02", "1 trailing bytes"),
    ("82 81 01", "truncated (expected a data item)"),
    ("82 01", "array length 2 exceeds the 1 bytes left"),
    ("19 01", "truncated uint argument"),
    ("fb 00 00", "truncated float"),
    ("65 61 62", "string length 5 exceeds the 2 bytes left"),
    ("45 00", "string length 5 exceeds the 1 bytes left"),
    ("9a ff ff ff ff 01", "array length 4294967295 exceeds the 1 bytes left"),
    ("bb 00 00 00 01 00 00 00 00 01", "map length 4294967296 exceeds"),
    ("a2 01 01", "map length 2 exceeds the 2 bytes left"),
    ("5f 41 00 ff", "indefinite-length bytes not allowed"),
    ("9f 01 ff", "indefinite-length array not allowed"),
    ("bf ff", "indefinite-length map not allowed"),
    ("ff", "unexpected break"),
    ("1c", "reserved additional info 28"),
    ("f7", "'undefined' not allowed"),
    ("f0", "simple values other than false/true/null"),
    ("f8 20", "simple values other than false/true/null"),
    ("18 05", "non-minimal uint argument 5"),
    ("19 00 ff", "non-minimal uint argument 255"),
    ("98 01 01", "non-minimal array argument 1"),
    ("c0 61 7a", "tag 0 not allowed"),
    ("c1 01", "tag 1 not allowed"),
    ("d8 1c 01", "tag 28 not allowed"),
    ("d9 01 00 01", "tag 256 not allowed"),
    ("c2 01", "bignum content must be a byte string, not uint"),
    ("c4 41 01", "decimal fraction content must be an array of 2 items"),
    ("c4 83 01 02 03", "decimal fraction content must be an array of 2 items"),
    ("c4 82 61 61 01", "decimal exponent must be an integer, not text"),
    ("c4 82 01 61 61", "decimal mantissa must be an integer or bignum, not text"),
    ("d9 01 02 a0", "set content must be an array, not map"),
    ("d9 01 02 81 80", "set element must be a scalar, not array"),
    ("d9 01 02 81 a0", "set element must be a scalar, not map"),
    ("d9 01 02 81 d9 01 02 80", "tag 258 not allowed"),
    ("a1 41 61 01", "map key must be text or an integer, not bytes"),
    ("a1 80 01", "map key must be text or an integer, not array"),
    ("a1 f5 01", "map key must be text or an integer, not simple/float"),
    ("a1 c4 82 01 01 01", "map key must be text or an integer, not tag 4"),
    ("a2 01 01 01 02", "Duplicate map key"),
    ("62 c3 28", "error decoding text string"),
]


@pytest.mark.parametrize(("hexdata", "reason"), REJECTED, ids=[r for _, r in REJECTED])
def test_rejects(hexdata: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(reason)):
        loads_bounded(bytes.fromhex(hexdata))


def test_error_names_offset() -> None:
    with pytest.raises(ValidationError, match="offset 3: tag 1 not allowed"):
        loads_bounded(bytes.fromhex("83 01 02 c1 01"))


def test_depth_limit() -> None:
    nested: object = 1
    for _ in range(5):
        nested = [nested]
    data = cbor2.dumps(nested)
    assert loads_bounded(data, max_depth=5) == nested
    with pytest.raises(ValidationError, match="nesting deeper than 4"):
        loads_bounded(data, max_depth=4)


def test_deep_nesting_bomb_is_refused_before_decoding() -> None:
    data = b"\x81" * 100_000 + b"\x01"
    with pytest.raises(ValidationError, match="nesting deeper than 32"):
        loads_bounded(data)


def test_maps_count_toward_depth() -> None:
    data = cbor2.dumps({"a": {"b": {"c": 1}}})
    assert loads_bounded(data, max_depth=3) == {"a": {"b": {"c": 1}}}
    with pytest.raises(ValidationError, match="nesting deeper than 2"):
        loads_bounded(data, max_depth=2)


def test_set_counts_toward_depth() -> None:
    data = cbor2.dumps([{1, 2}])
    assert loads_bounded(data, max_depth=2) == [{1, 2}]
    with pytest.raises(ValidationError, match="nesting deeper than 1"):
        loads_bounded(data, max_depth=1)


def test_item_limit() -> None:
    data = cbor2.dumps(list(range(10)))
    assert loads_bounded(data, max_items=11) == list(range(10))
    with pytest.raises(ValidationError, match="11 data items, over 10"):
        loads_bounded(data, max_items=10)


def test_byte_limit() -> None:
    data = cbor2.dumps("x" * 100)
    with pytest.raises(ValidationError, match="102 bytes exceeds the limit of 101"):
        loads_bounded(data, max_bytes=101)


def test_bignum_limit() -> None:
    data = cbor2.dumps(2 ** (8 * 40))
    assert loads_bounded(data, max_bignum_bytes=41) == 2 ** (8 * 40)
    with pytest.raises(ValidationError, match="bignum of 41 bytes exceeds the limit of 40"):
        loads_bounded(data, max_bignum_bytes=40)


def test_lying_lengths_deep_inside_are_caught() -> None:
    good = cbor2.dumps({"a": [1, 2, {"b": b"xyz"}]})
    lie = good.replace(b"\x43xyz", b"\x5a\x7f\xff\xff\xffxyz")
    with pytest.raises(ValidationError, match="string length 2147483647 exceeds"):
        loads_bounded(lie)


def test_non_bytes_input() -> None:
    with pytest.raises(ValidationError, match="must be bytes, not str"):
        loads_bounded("abc")  # type: ignore[arg-type]


@settings(max_examples=200)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_raise_only_validation_error(data: bytes) -> None:
    with contextlib.suppress(ValidationError):  # anything else fails the test
        loads_bounded(data)
