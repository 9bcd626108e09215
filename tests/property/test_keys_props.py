"""Hypothesis: the key encoding preserves order, round-trips and is prefix-free, per type."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from engine.keys import decode_key, decode_value, encode_prefix, encode_value

texts = st.text(st.characters(exclude_categories=("Cs",)))  # surrogates are not valid Unicode
ints = st.integers(min_value=-(10**100), max_value=10**100)
floats = st.floats(allow_nan=False, allow_infinity=False)
decimals = st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
    lambda d: -(10**50) < d.adjusted() < 10**50
)
numbers = st.one_of(ints, floats, decimals)
key_values = st.one_of(texts, st.binary(), numbers)


def _num(x: Any) -> Decimal:
    """The numeric value the encoding orders by: floats by their shortest repr."""
    return Decimal(repr(x)) if isinstance(x, float) else Decimal(x)


def _cmp(a: Any, b: Any) -> int:
    return (a > b) - (a < b)


@given(texts, texts)
@example("a", "a\x00")
@example("\uffff", "\U00010000")
def test_str_order(a: str, b: str) -> None:
    assert _cmp(a, b) == _cmp(encode_value(a), encode_value(b))


@given(st.binary(), st.binary())
@example(b"\x00", b"")
@example(b"\xff", b"\xff\x00")
def test_bytes_order(a: bytes, b: bytes) -> None:
    assert _cmp(a, b) == _cmp(encode_value(a), encode_value(b))


@given(ints, ints)
@example(-1, 0)
@example(9, 10)
@example(-9, -10)
def test_int_order(a: int, b: int) -> None:
    assert _cmp(a, b) == _cmp(encode_value(a), encode_value(b))


@given(floats, floats)
@example(0.1, 0.12)
@example(-0.1, -0.12)
@example(-0.0, 0.0)
def test_float_order(a: float, b: float) -> None:
    assert _cmp(a, b) == _cmp(encode_value(a), encode_value(b))


@given(decimals, decimals)
@example(Decimal("1.0"), Decimal("1"))
def test_decimal_order(a: Decimal, b: Decimal) -> None:
    assert _cmp(a, b) == _cmp(encode_value(a), encode_value(b))


@given(numbers, numbers)
@example(1, 1.0)
@example(0.5, Decimal("0.5"))
def test_mixed_numbers_order_numerically(a: Any, b: Any) -> None:
    assert _cmp(_num(a), _num(b)) == _cmp(encode_value(a), encode_value(b))


@given(key_values)
def test_round_trip(v: Any) -> None:
    enc = encode_value(v)
    out, end = decode_value(enc)
    assert end == len(enc)
    if isinstance(v, (str, bytes)):
        assert out == v and type(out) is type(v)
    else:
        n = _num(v)
        assert out == n
        if n == n.to_integral_value() and abs(n) < 10**80:
            assert type(out) is int
        elif n != n.to_integral_value():
            assert type(out) is Decimal
        assert encode_value(out) == enc  # the canonical form encodes the same


@given(key_values, key_values, key_values)
def test_round_trip_in_composite_key(table_suffix: Any, pk: Any, sk: Any) -> None:
    key = encode_value("t") + encode_value(pk) + encode_value(sk)
    name, values = decode_key(key)
    assert name == "t"
    assert [encode_value(v) for v in values] == [encode_value(pk), encode_value(sk)]


@given(st.one_of(st.tuples(texts, texts), st.tuples(st.binary(), st.binary()),
                 st.tuples(numbers, numbers)))
def test_prefix_free(pair: tuple[Any, Any]) -> None:
    a, b = (encode_value(v) for v in pair)
    if a != b:
        assert not b.startswith(a) and not a.startswith(b)


@given(st.one_of(st.tuples(texts, texts), st.tuples(st.binary(), st.binary())))
@example(("ab", "a"))
@example((b"a\x00", b"a"))
def test_begins_with(pair: tuple[Any, Any]) -> None:
    value, prefix = pair
    assert encode_value(value).startswith(encode_prefix(prefix)) == value.startswith(prefix)


@given(st.integers(min_value=-(10**60), max_value=10**60))
def test_int_fast_path_matches_the_decimal_encoding(value: int) -> None:
    """``encode_value`` of an int takes a shortcut past ``Decimal``: the bytes are the same."""
    from engine.keys import _encode_number

    assert encode_value(value) == _encode_number(Decimal(value))
    assert encode_value(value * 1000) == _encode_number(Decimal(value * 1000))
