"""Order-preserving, prefix-free encoding of key values.

Items live in one LMDB database under ``enc(table) + enc(pk) [+ enc(sk)]``, so that one
partition is one contiguous key range and a sort-key condition is one cursor range scan.

Encoding (each value starts with a type tag; types sort numbers < strings < bytes):

* numbers (``int``, ``float``, ``Decimal``) are one type, compared by value, as DynamoDB's N:
  ``0x21`` for zero; ``0x22`` + 4-byte big-endian biased exponent + decimal digits as ASCII +
  ``0x00`` for positives; ``0x20`` + the bitwise inverse of the positive encoding of ``|x|``
  for negatives. A float is taken by its shortest ``repr`` (``0.1`` is ``Decimal("0.1")``).
* ``str``: ``0x30`` + UTF-8 (code-point order) with ``0x00`` escaped as ``0x00 0xFF``, ended by
  ``0x00 0x01``.
* ``bytes``: ``0x40`` + the bytes, escaped and ended the same way.

Every encoding is self-delimiting, so no encoded value is a prefix of another and
``a < b  ⇔  enc(a) < enc(b)`` bytewise within each type.
"""

from __future__ import annotations

import math
import struct
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import ValidationError

__all__ = [
    "KeyValue",
    "decode_key",
    "decode_value",
    "encode_prefix",
    "encode_value",
    "check_key_value",
    "item_key",
]

KeyValue = str | int | float | Decimal | bytes

_NEG, _ZERO, _POS, _STR, _BYTES = 0x20, 0x21, 0x22, 0x30, 0x40
_EXP_BIAS = 1 << 31
_EXP = struct.Struct(">I")
_INVERT = bytes(255 - i for i in range(256))
_DIGITS = b"0123456789"
_END = b"\x00\x01"
_MAX_INT_DIGITS = 80  # larger integral keys decode as Decimal: no giant ints from hostile bytes


def check_key_value(value: object, attr: str) -> None:
    """Raise ``ValidationError`` unless ``value`` can be a key attribute."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal, bytes)):
        raise ValidationError(
            f"key attribute {attr!r} must be str, number or bytes, not {type(value).__name__}"
        )


def _as_decimal(value: Any) -> Decimal:
    shown: object = value  # not narrowed below: compiled, a narrowed float loses its class
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(f"key number must be finite, not {shown!r}")
        return Decimal(float.__repr__(value))  # the value's, whatever a subclass prints
    dec: Decimal = value
    if not dec.is_finite():
        raise ValidationError(f"key number must be finite, not {value!r}")
    return dec


def _encode_int(value: int) -> bytes:
    """:func:`_encode_number` of an ``int``, without a ``Decimal`` (several times faster)."""
    if not value:
        return b"\x21"
    text = str(-value if value < 0 else value)
    # value = 0.d1d2… × 10**len(text); trailing zeros are not digits of the encoding
    body = _EXP.pack(len(text) + _EXP_BIAS) + text.rstrip("0").encode("ascii") + b"\x00"
    if value < 0:
        return b"\x20" + body.translate(_INVERT)
    return b"\x22" + body


def _encode_number(value: Any) -> bytes:
    if type(value) is int:
        return _encode_int(value)
    dec = _as_decimal(value)
    if not dec:
        return bytes((_ZERO,))
    sign, digits, exponent = dec.as_tuple()
    assert isinstance(exponent, int)
    # strip trailing zeros by hand: Decimal.normalize() would round to the context precision
    end = len(digits)
    while end > 1 and digits[end - 1] == 0:
        end -= 1
    exponent += len(digits) - end
    digits = digits[:end]
    sci = exponent + len(digits)  # value = 0.d1d2… × 10**sci
    if not -_EXP_BIAS <= sci < _EXP_BIAS:
        raise ValidationError(f"key number {value!r} is out of range")
    body = _EXP.pack(sci + _EXP_BIAS) + bytes(_DIGITS[d] for d in digits) + b"\x00"
    if sign:
        return bytes((_NEG,)) + body.translate(_INVERT)
    return bytes((_POS,)) + body


def _escape(raw: bytes) -> bytes:
    return raw.replace(b"\x00", b"\x00\xff")


def encode_value(value: Any, attr: str = "key") -> bytes:
    """Encode one key value; ``attr`` names it in error messages."""
    if type(value) is str and value.isascii() and "\x00" not in value:
        return b"\x30" + value.encode("ascii") + b"\x00\x01"  # the common case, no escapes
    if type(value) is int:  # exactly int: bool (refused) takes the checks below
        return _encode_int(value)
    if isinstance(value, str):
        try:
            raw = value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValidationError(f"key attribute {attr!r} is not valid Unicode: {exc}") from None
        return bytes((_STR,)) + _escape(raw) + _END
    if isinstance(value, bytes):
        return bytes((_BYTES,)) + _escape(value) + _END
    check_key_value(value, attr)
    try:
        return _encode_number(value)
    except (InvalidOperation, ValueError) as exc:
        if isinstance(exc, ValidationError):
            raise ValidationError(f"key attribute {attr!r}: {exc}") from None
        raise ValidationError(f"key attribute {attr!r} is not a usable number: {value!r}") from None


def item_key(prefix: bytes, pk: Any, sk: Any, pk_name: str,
             sk_name: str | None) -> bytes:
    """The item key ``prefix + enc(pk) [+ enc(sk)]``, ``prefix`` being ``encode_value(table)``.

    ``sk`` is encoded only when ``sk_name`` is given (the table has a sort key); the caller
    checks that a sort key value was given exactly when one is needed, and the key's length.
    The usual key of two plain ASCII strings takes one expression (the hot path of writes).
    """
    if type(pk) is str and type(sk) is str and pk.isascii() and sk.isascii() \
            and "\x00" not in pk and "\x00" not in sk:
        return (prefix + b"\x30" + pk.encode("ascii") + b"\x00\x01\x30" + sk.encode("ascii")
                + b"\x00\x01")
    key = prefix + encode_value(pk, pk_name)
    if sk_name is not None:
        key += encode_value(sk, sk_name)  # the caller checked that a sort key was given
    return key


def encode_prefix(value: object, attr: str = "sort key") -> bytes:
    """The encoding shared by every key value that starts with ``value`` (``begins_with``)."""
    if isinstance(value, str):
        return encode_value(value, attr)[: -len(_END)]
    if isinstance(value, bytes):
        return bytes((_BYTES,)) + _escape(value)
    raise ValidationError(f"begins_with needs a str or bytes {attr}, not {type(value).__name__}")


def _unescape(data: bytes, pos: int) -> tuple[bytes, int]:
    nul = data.index(b"\x00", pos)
    if data[nul + 1] == 0x01:  # the common case: no escaped NUL inside
        return data[pos:nul], nul + 2
    out = bytearray()
    while True:
        out += data[pos:nul]
        marker = data[nul + 1]
        if marker == 0x01:
            return bytes(out), nul + 2
        if marker != 0xFF:
            raise ValueError("bad escape")
        out.append(0)
        pos = nul + 2
        nul = data.index(b"\x00", pos)


def _decode_number_body(body: bytes, negative: bool) -> tuple[int | Decimal, int]:
    if negative:
        body = body.translate(_INVERT)
    end = body.index(b"\x00", 4)
    sci = _EXP.unpack_from(body)[0] - _EXP_BIAS
    digits = tuple(b - 0x30 for b in body[4:end])
    if not digits or any(not 0 <= d <= 9 for d in digits):
        raise ValueError("bad digits")
    dec = Decimal((1 if negative else 0, digits, sci - len(digits)))
    if sci - len(digits) >= 0 and sci <= _MAX_INT_DIGITS:
        return int(dec), end + 1
    return dec, end + 1


def decode_value(data: bytes, pos: int = 0) -> tuple[int | Decimal | str | bytes, int]:
    """Decode one key value at ``pos``; return it and the position after it.

    Numbers come back as ``int`` when integral, else ``Decimal`` (the key's canonical form).
    :raises ValidationError: for bytes that are not a key encoding.
    """
    try:
        tag = data[pos]
        if tag == _ZERO:
            return 0, pos + 1
        if tag in (_POS, _NEG):
            value, used = _decode_number_body(data[pos + 1 :], tag == _NEG)
            return value, pos + 1 + used
        if tag in (_STR, _BYTES):
            raw, end = _unescape(data, pos + 1)
            return (raw.decode("utf-8") if tag == _STR else raw), end
    except (IndexError, ValueError, struct.error, UnicodeDecodeError):
        pass
    raise ValidationError(f"malformed key encoding at byte {pos}: {data[pos:pos + 16]!r}")


def decode_key(data: bytes) -> tuple[str, tuple[int | Decimal | str | bytes, ...]]:
    """Split a stored item key into its table name and key values."""
    table, pos = decode_value(data)
    if not isinstance(table, str):
        raise ValidationError(f"malformed item key {data[:32]!r}: table name is not a string")
    values = []
    while pos < len(data):
        value, pos = decode_value(data, pos)
        values.append(value)
    if not 1 <= len(values) <= 2:
        raise ValidationError(f"malformed item key {data[:32]!r}: {len(values)} key values")
    return table, tuple(values)
