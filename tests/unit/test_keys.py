"""Order-preserving key encoding: golden bytes, named orderings, round trips, bad input."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine import ValidationError
from engine.keys import (
    check_key_value,
    decode_key,
    decode_value,
    encode_prefix,
    encode_value,
)


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x21"),
        (1, b"\x22\x80\x00\x00\x01" + b"1\x00"),
        (120, b"\x22\x80\x00\x00\x03" + b"12\x00"),
        (Decimal("0.5"), b"\x22\x80\x00\x00\x00" + b"5\x00"),
        ("ab", b"\x30ab\x00\x01"),
        ("a\x00b", b"\x30a\x00\xffb\x00\x01"),
        (b"", b"\x40\x00\x01"),
        (b"\x00", b"\x40\x00\xff\x00\x01"),
    ],
)
def test_golden_bytes(value: object, encoded: bytes) -> None:
    assert encode_value(value) == encoded  # type: ignore[arg-type]
    assert decode_value(encoded) == (value, len(encoded))


def test_negative_is_inverted_positive() -> None:
    pos = encode_value(5)
    neg = encode_value(-5)
    assert neg[0] == 0x20
    assert neg[1:] == bytes(255 - b for b in pos[1:])


ORDERED_NUMBERS = [
    Decimal("-1e100"), -(10**30), -1000, -999.5, -10, Decimal("-1.5"), -1, Decimal("-0.12"),
    -0.1, Decimal("-0.0001"), 0, Decimal("1e-30"), 0.001, 0.1, Decimal("0.12"), 1, 1.5, 2, 9,
    10, 10.5, 99, 100, 10**20, Decimal("1e100"),
]


def test_numbers_order_numerically_across_types() -> None:
    enc = [encode_value(v) for v in ORDERED_NUMBERS]
    assert enc == sorted(enc)
    assert len(set(enc)) == len(enc)


def test_equal_numbers_share_one_encoding() -> None:
    assert encode_value(1) == encode_value(1.0) == encode_value(Decimal("1.000"))
    assert encode_value(0) == encode_value(-0.0) == encode_value(Decimal("-0"))
    assert encode_value(100) == encode_value(Decimal("1E+2"))
    # floats are taken by their shortest repr, not their binary value
    assert encode_value(0.1) == encode_value(Decimal("0.1"))
    assert encode_value(Decimal(0.1)) > encode_value(0.1)


def test_types_order_numbers_strings_bytes() -> None:
    assert encode_value(10**100) < encode_value("") < encode_value("\U0010ffff") < encode_value(b"")


@pytest.mark.parametrize(
    "smaller,larger",
    [("a", "a\x00"), ("a\x00", "a\x01"), ("a", "b"), ("z", "é"), ("\uffff", "\U00010000"),
     (b"a", b"a\x00"), (b"\x00", b"\x00\x00"), (b"\xfe", b"\xff"), (b"\xff", b"\xff\x00")],
)
def test_named_orderings(smaller: object, larger: object) -> None:
    assert encode_value(smaller) < encode_value(larger)  # type: ignore[arg-type]


def test_decode_canonical_forms() -> None:
    two = decode_value(encode_value(2.0))[0]
    assert two == 2 and type(two) is int
    assert decode_value(encode_value(0.25))[0] == Decimal("0.25")
    assert decode_value(encode_value(1e20))[0] == 10**20
    assert decode_value(encode_value(Decimal("-1.50")))[0] == Decimal("-1.5")
    big = 10**100
    assert decode_value(encode_value(big))[0] == big  # beyond 80 digits: a Decimal of equal value


def test_prefix_encoding() -> None:
    assert encode_value("abc").startswith(encode_prefix("ab"))
    assert encode_value("ab").startswith(encode_prefix("ab"))
    assert not encode_value("aa").startswith(encode_prefix("ab"))
    assert encode_value(b"ab\x00").startswith(encode_prefix(b"ab"))
    assert encode_value(b"a").startswith(encode_prefix(b""))
    with pytest.raises(ValidationError, match="begins_with"):
        encode_prefix(1)  # type: ignore[arg-type]


def test_decode_key() -> None:
    key = encode_value("orders") + encode_value("c1") + encode_value(-3)
    assert decode_key(key) == ("orders", ("c1", -3))
    assert decode_key(encode_value("t") + encode_value(b"x")) == ("t", (b"x",))


@pytest.mark.parametrize(
    "value",
    [True, False, None, [1], {"a": 1}, {1}, float("nan"), float("inf"), float("-inf"),
     Decimal("NaN"), Decimal("Infinity"), Decimal("sNaN"), "\ud800", object(), 1j],
)
def test_bad_key_values(value: object) -> None:
    with pytest.raises(ValidationError, match="pk"):
        encode_value(value, "pk")  # type: ignore[arg-type]


def test_out_of_range_exponent() -> None:
    with pytest.raises(ValidationError, match="out of range"):
        encode_value(Decimal("1e3000000000"), "n")


def test_check_key_value_names_attribute() -> None:
    with pytest.raises(ValidationError, match="'order_id'.*list"):
        check_key_value([], "order_id")


@pytest.mark.parametrize(
    "data",
    [b"", b"\x99", b"\x30abc", b"\x30ab\x00\x02", b"\x22\x80", b"\x22\x80\x00\x00\x01\x00",
     b"\x22\x80\x00\x00\x01ab\x00", b"\x30\xff\xfe\x00\x01", b"\x40ab\x00"],
)
def test_malformed_encodings(data: bytes) -> None:
    with pytest.raises(ValidationError, match="malformed"):
        decode_value(data)


@pytest.mark.parametrize(
    "data",
    [encode_value(1), encode_value("t"), encode_value("t") + encode_value(1) * 3,
     encode_value(b"t") + encode_value(1)],
)
def test_malformed_item_keys(data: bytes) -> None:
    with pytest.raises(ValidationError, match="malformed"):
        decode_key(data)
