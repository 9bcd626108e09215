"""Bounded decoding of untrusted CBOR.

Role: the only way bytes that came from a file or a peer become Python values. Before
``cbor2.loads`` sees the data, a small iterative scanner walks the CBOR heads (major type,
argument, length) without building any value, and rejects anything outside the subset regiondb
writes. Only then is ``cbor2`` allowed to allocate.

Invariants (each violation is a :class:`~engine.errors.ValidationError` naming the byte offset):

- exactly one data item, no trailing bytes, nothing truncated;
- every string or container length is at most the number of bytes left (an array of *n* items
  needs at least *n* bytes, a map of *n* pairs at least *2n*), so a lying length cannot make the
  decoder allocate more than the input size;
- container nesting (arrays, maps, sets) at most ``max_depth``; data items (every head, tags
  included) at most ``max_items``; input at most ``max_bytes``;
- definite lengths only, arguments in their shortest form (RFC 8949 preferred serialization);
- map keys are text strings or integers (major types 0, 1, 3, or a tag-2/3 bignum); duplicate
  keys are refused;
- simple values: ``false``, ``true``, ``null`` and half/single/double floats only;
- tags: exactly what ``cbor2.dumps`` emits for the value types of DESIGN.md —
  2/3 (bignum, a byte string of at most ``max_bignum_bytes``), 4 (``Decimal``: an array of an
  integer exponent and an integer or bignum mantissa) and 258 (``set``/``frozenset``: an array of
  scalars). ``Decimal`` NaN/Infinity are emitted by cbor2 as plain floats, so need no tag.

The scanner is pure Python but runs once per input and does constant work per data item; a
byte string is skipped in O(1), so opaque blobs (segment change records) cost one step each.
"""

from __future__ import annotations

import cbor2

from .errors import ValidationError

__all__ = [
    "DEFAULT_MAX_BIGNUM_BYTES",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_ITEMS",
    "check_bounded",
    "loads_bounded",
]

DEFAULT_MAX_DEPTH = 32
DEFAULT_MAX_ITEMS = 1_000_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
#: 1024 bytes is 8192 bits (~2466 decimal digits): below Python's int/str digit limit, so any
#: accepted integer can also be printed and turned into a ``Decimal`` in negligible time.
DEFAULT_MAX_BIGNUM_BYTES = 1024

_TAG_POS_BIGNUM = 2
_TAG_NEG_BIGNUM = 3
_TAG_DECIMAL = 4
_TAG_SET = 258

# Smallest argument that needs a 1-, 2-, 4- or 8-byte extension (additional info 24..27).
_MIN_ARG = {24: 24, 25: 0x100, 26: 0x1_0000, 27: 0x1_0000_0000}
_ARG_LEN = {24: 1, 25: 2, 26: 4, 27: 8}
_FLOAT_LEN = {25: 2, 26: 4, 27: 8}
_MAJOR_NAMES = ("uint", "negint", "bytes", "text", "array", "map", "tag", "simple/float")


def _fail(offset: int, what: str) -> ValidationError:
    return ValidationError(f"bad CBOR at offset {offset}: {what}")


def _head(data: bytes, pos: int, n: int) -> tuple[int, int, int]:
    """Read one head at ``pos``: ``(major, argument, next_pos)``.

    For major type 7 the "argument" is the additional info (20-22 simple, 25-27 float) and
    ``next_pos`` skips the float's bytes. Used off the hot path (tag contents, set elements).
    """
    if pos >= n:
        raise _fail(pos, "truncated (expected a data item)")
    ib = data[pos]
    major = ib >> 5
    ai = ib & 0x1F
    if major == 7:
        if ai in (20, 21, 22):
            return 7, ai, pos + 1
        size = _FLOAT_LEN.get(ai)
        if size is None:
            raise _fail(pos, _simple_reason(ai))
        if pos + 1 + size > n:
            raise _fail(pos, "truncated float")
        return 7, ai, pos + 1 + size
    if ai < 24:
        return major, ai, pos + 1
    size = _ARG_LEN.get(ai)
    if size is None:
        raise _fail(pos, _ai_reason(major, ai))
    end = pos + 1 + size
    if end > n:
        raise _fail(pos, f"truncated {_MAJOR_NAMES[major]} argument")
    arg = int.from_bytes(data[pos + 1 : end], "big")
    if arg < _MIN_ARG[ai]:
        raise _fail(pos, f"non-minimal {_MAJOR_NAMES[major]} argument {arg}")
    return major, arg, end


def _ai_reason(major: int, ai: int) -> str:
    if ai == 31:
        return f"indefinite-length {_MAJOR_NAMES[major]} not allowed"
    return f"reserved additional info {ai} in {_MAJOR_NAMES[major]} head"


def _simple_reason(ai: int) -> str:
    if ai == 31:
        return "unexpected break (indefinite-length items are not allowed)"
    if ai == 23:
        return "simple value 'undefined' not allowed"
    if ai in (28, 29, 30):
        return f"reserved additional info {ai} in simple/float head"
    return "simple values other than false/true/null not allowed"


def _scan_bignum(data: bytes, pos: int, n: int, max_bignum: int) -> int:
    """Check a bignum's content (the head after tag 2/3) and return the position after it."""
    major, length, after = _head(data, pos, n)
    if major != 2:
        raise _fail(pos, f"bignum content must be a byte string, not {_MAJOR_NAMES[major]}")
    if length > max_bignum:
        raise _fail(pos, f"bignum of {length} bytes exceeds the limit of {max_bignum}")
    if length > n - after:
        raise _fail(pos, f"byte string length {length} exceeds the {n - after} bytes left")
    return after + length


def _scan_number(data: bytes, pos: int, n: int, max_bignum: int) -> tuple[int, int]:
    """Check an integer or bignum; return ``(next_pos, items)``."""
    major, arg, after = _head(data, pos, n)
    if major <= 1:
        return after, 1
    if major == 6 and arg in (_TAG_POS_BIGNUM, _TAG_NEG_BIGNUM):
        return _scan_bignum(data, after, n, max_bignum), 2
    raise _fail(pos, f"decimal mantissa must be an integer or bignum, not {_MAJOR_NAMES[major]}")


def _scan_decimal(data: bytes, pos: int, n: int, max_bignum: int) -> tuple[int, int]:
    """Check a tag-4 decimal fraction's content ``[exponent, mantissa]``."""
    major, count, after = _head(data, pos, n)
    if major != 4 or count != 2:
        raise _fail(pos, "decimal fraction content must be an array of 2 items")
    emajor, _, after = _head(data, after, n)
    if emajor > 1:
        raise _fail(pos, f"decimal exponent must be an integer, not {_MAJOR_NAMES[emajor]}")
    after, items = _scan_number(data, after, n, max_bignum)
    return after, 2 + items


def _scan_scalar_tag(
    data: bytes, tag_at: int, pos: int, n: int, tag: int, max_bignum: int
) -> tuple[int, int]:
    """Check the content (at ``pos``) of a scalar tag 2, 3 or 4; return ``(next_pos, items)``."""
    if tag == _TAG_DECIMAL:
        return _scan_decimal(data, pos, n, max_bignum)
    if tag in (_TAG_POS_BIGNUM, _TAG_NEG_BIGNUM):
        return _scan_bignum(data, pos, n, max_bignum), 1
    raise _fail(tag_at, f"tag {tag} not allowed")


def _scan_set(data: bytes, pos: int, n: int, max_bignum: int) -> tuple[int, int]:
    """Check a tag-258 set's content: an array of scalars (hashable once decoded)."""
    major, count, pos = _head(data, pos, n)
    if major != 4:
        raise _fail(pos, f"set content must be an array, not {_MAJOR_NAMES[major]}")
    if count > n - pos:
        raise _fail(pos, f"set length {count} exceeds the {n - pos} bytes left")
    items = 1
    for _ in range(count):
        start = pos
        major, arg, pos = _head(data, pos, n)
        items += 1
        if major in (2, 3):
            if arg > n - pos:
                raise _fail(start, f"string length {arg} exceeds the {n - pos} bytes left")
            pos += arg
        elif major == 6:
            pos, extra = _scan_scalar_tag(data, start, pos, n, arg, max_bignum)
            items += extra
        elif major in (4, 5):
            raise _fail(start, f"set element must be a scalar, not {_MAJOR_NAMES[major]}")
    return pos, items


def check_bounded(
    data: bytes,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_items: int = DEFAULT_MAX_ITEMS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_bignum_bytes: int = DEFAULT_MAX_BIGNUM_BYTES,
) -> int:
    """Scan ``data`` as one CBOR item of the allowed subset without decoding it.

    :returns: the number of data items (heads) it holds.
    :raises ValidationError: naming the offset and the problem, for anything outside the subset.
    """
    n = len(data)
    if n > max_bytes:
        raise ValidationError(f"CBOR input of {n} bytes exceeds the limit of {max_bytes}")
    if n == 0:
        raise _fail(0, "empty input")
    pos = 0
    items = 0
    # The open containers, innermost in (top_rem, top_map); the rest on `stack`. top_rem counts
    # the items still expected (2 per map pair, so a key is due when it is even).
    stack: list[tuple[int, bool]] = []
    top_rem = 1
    top_map = False
    min_arg = _MIN_ARG
    arg_len = _ARG_LEN
    while True:
        if pos >= n:
            raise _fail(pos, "truncated (expected a data item)")
        start = pos
        ib = data[pos]
        major = ib >> 5
        ai = ib & 0x1F
        key_due = top_map and not top_rem & 1
        if key_due and major != 3 and major > 1 and major != 6:
            raise _fail(start, f"map key must be text or an integer, not {_MAJOR_NAMES[major]}")
        items += 1
        if major == 7:
            if ai in (20, 21, 22):
                pos += 1
            elif 25 <= ai <= 27:
                pos += 1 + _FLOAT_LEN[ai]
                if pos > n:
                    raise _fail(start, "truncated float")
            else:
                raise _fail(start, _simple_reason(ai))
        else:
            if ai < 24:
                arg = ai
                pos += 1
            elif ai == 24 and pos + 1 < n:  # the common one-byte argument, without a slice
                arg = data[pos + 1]
                pos += 2
                if arg < 24:
                    raise _fail(start, f"non-minimal {_MAJOR_NAMES[major]} argument {arg}")
            else:
                size = arg_len.get(ai)
                if size is None:
                    raise _fail(start, _ai_reason(major, ai))
                pos += 1 + size
                if pos > n:
                    raise _fail(start, f"truncated {_MAJOR_NAMES[major]} argument")
                arg = int.from_bytes(data[start + 1 : pos], "big")
                if arg < min_arg[ai]:
                    raise _fail(start, f"non-minimal {_MAJOR_NAMES[major]} argument {arg}")
            if major == 2 or major == 3:
                if arg > n - pos:
                    raise _fail(start, f"string length {arg} exceeds the {n - pos} bytes left")
                pos += arg
            elif major == 4 or major == 5:
                need = arg if major == 4 else 2 * arg
                if need > n - pos:
                    raise _fail(
                        start,
                        f"{_MAJOR_NAMES[major]} length {arg} exceeds the {n - pos} bytes left",
                    )
                if need:
                    if len(stack) >= max_depth:
                        raise _fail(start, f"nesting deeper than {max_depth}")
                    stack.append((top_rem, top_map))
                    top_rem = need
                    top_map = major == 5
                    continue
            elif major == 6:
                if key_due and arg != _TAG_POS_BIGNUM and arg != _TAG_NEG_BIGNUM:
                    raise _fail(start, f"map key must be text or an integer, not tag {arg}")
                if arg == _TAG_SET:
                    if len(stack) >= max_depth:
                        raise _fail(start, f"nesting deeper than {max_depth}")
                    pos, extra = _scan_set(data, pos, n, max_bignum_bytes)
                else:
                    pos, extra = _scan_scalar_tag(data, start, pos, n, arg, max_bignum_bytes)
                items += extra
        top_rem -= 1
        while not top_rem:
            if not stack:
                if pos != n:
                    raise _fail(pos, f"{n - pos} trailing bytes after the data item")
                # Checked once at the end: every item takes at least one byte, so the scan's
                # work is bounded by max_bytes whatever the item count.
                if items > max_items:
                    raise ValidationError(f"CBOR input holds {items} data items, over {max_items}")
                return items
            top_rem, top_map = stack.pop()
            top_rem -= 1


def loads_bounded(
    data: object,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_items: int = DEFAULT_MAX_ITEMS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_bignum_bytes: int = DEFAULT_MAX_BIGNUM_BYTES,
) -> object:
    """Decode untrusted CBOR after proving it stays inside the limits and the allowed subset.

    Arrays decode as ``list``, maps as ``dict``, tag 258 as ``set``/``frozenset`` (cbor2's
    choice), tag 4 as ``Decimal``. Note cbor2 maps ``Decimal`` NaN/Infinity to floats and
    ``Decimal('-0')`` to ``Decimal('0')``.

    :raises ValidationError: for any input outside the subset or the limits (see module doc);
        never a ``cbor2`` exception.
    """
    if not isinstance(data, bytes):
        if not isinstance(data, (bytearray, memoryview)):
            raise ValidationError(f"CBOR input must be bytes, not {type(data).__name__}")
        data = bytes(data)
    check_bounded(
        data,
        max_depth=max_depth,
        max_items=max_items,
        max_bytes=max_bytes,
        max_bignum_bytes=max_bignum_bytes,
    )
    try:
        # cbor2 counts tags as nesting too; a set/decimal/bignum adds at most 3 levels.
        return cbor2.loads(
            data, max_depth=max_depth + 4, allow_indefinite=False, allow_duplicate_keys=False
        )
    except (cbor2.CBORError, ValueError, TypeError, ArithmeticError, RecursionError) as exc:
        raise ValidationError(f"bad CBOR: {exc}") from exc
