"""The CBOR boundary: attribute validation, item-state and transaction encodings.

Stored item state (compact: after a put every attribute shares the clear point's version)::

    [cleared_hlc, cleared_node, base, over (, seen_hlc, seen_node (, ext))]
    base = {name: value}                    entries whose version is the clear point
    over = {name: [hlc, node] | [hlc, node, value]}   the others; two elements = ABSENT
    seen = what the writer of the latest version had seen (omitted when ⊥ and no ext)
    ext  = {name: [obs_hlc, obs_node, obs, incs, elems]}   counters and sets (store format 3)
           obs, incs = [[origin, hlc, total], ...]  ascending origin; one per origin that added
           elems = [[element, hlc, node, present], ...]  in canonical order of the element

A transaction (the unit of the log and of replication; all ops share version
``(hlc, origin)``)::

    [hlc, [op, ...]]
    ["T", table, partition_key, sort_key | null]          create a table
    ["P", table, key, {attrs}, seen_hlc, seen_node]        put
    ["U", table, key, {set}, [remove], seen_hlc, seen_node] update
    ["D", table, key, seen_hlc, seen_node]                 delete
    ["I", table, index, partition_key, sort_key | null, projection]   create an index
    ["X", table, index]                                    drop an index
    ["L", table, ttl_attribute | null]                     set a table's TTL attribute

``projection`` is ``"ALL"``, ``"KEYS_ONLY"`` or a list of attribute names
(:mod:`engine.index`). P, U and D take one more, optional, element ``ext`` (a map; store
format 3, segment format 2) when they carry counter or set parts or are TTL deletes::

    {"a": {name: [n, total]},             counter ADDs: amount and the origin's new total
     "s": {name: [element, ...]},         set elements added
     "d": {name: [element, ...]},         set elements deleted
     "o": {name: [[origin, hlc, total], ...]},   the totals each reset counter had observed
     "t": true}                           a TTL delete (``Change.ttl``)

``key`` is the item key from :mod:`engine.keys`. Transactions from peers are untrusted:
:func:`decode_txn` checks every field and raises ``ValidationError``.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, NamedTuple

import cbor2

from .checks import check_u64 as _check_u64
from .clock import BOTTOM, Version
from .errors import ValidationError
from .item import ABSENT, NO_EXT, Entry, ItemState, WriteExt, max_version, visible
from .keys import decode_key, decode_value, encode_value

__all__ = [
    "MAX_DEPTH",
    "MAX_ITEM_BYTES",
    "MAX_KEY_BYTES",
    "MAX_NAME_BYTES",
    "MAX_PROJECTION",
    "MAX_TXN_BYTES",
    "Op",
    "PutEncoder",
    "canonical",
    "capture",
    "check_attr_name",
    "check_attrs",
    "check_index_spec",
    "check_key_schema",
    "check_table_name",
    "check_value",
    "decode_state",
    "decode_state_untrusted",
    "decode_txn",
    "dumps",
    "dumps_checked",
    "encode_state",
    "encode_txn",
    "encode_txn_parts",
    "loads",
    "loads_untrusted",
    "max_version_raw",
    "put_op_bytes",
    "put_state_bytes",
    "visible_from_raw",
]

MAX_ITEM_BYTES = 4 << 20    # one item's stored state
MAX_TXN_BYTES = 16 << 20    # one log entry: the largest record a segment carries
MAX_KEY_BYTES = 511         # LMDB's key size limit
MAX_NAME_BYTES = 255
MAX_DEPTH = 32
MAX_PROJECTION = 100        # attribute names in one index projection (DynamoDB's limit)
# How deep CBOR nests for a value check_value accepts. The decoder counts every tag as a level
# (a Decimal is tag 4 around an array, whose mantissa may be a tag-2 bignum; a set is tag 258
# around an array); check_value counts containers only. The worst case is a set at the last
# container level (MAX_DEPTH - 1 lists above it) of Decimals with bignum mantissas:
# MAX_DEPTH - 1 + 2 (set) + 3 (Decimal) = MAX_DEPTH + 4.
MAX_VALUE_CBOR_DEPTH = MAX_DEPTH + 4
# Levels around a value in what travels: a transaction [hlc, [op]] with the op array and the
# attribute map (4); a state [c, n, base, {name: [hlc, node, value]}] (3).
_ENVELOPE_DEPTH = 4
_U64 = (1 << 64) - 1

dumps = cbor2.dumps
loads = cbor2.loads


def dumps_checked(value: Any, what: str) -> bytes:
    """CBOR of ``value``, or ``ValidationError`` naming ``what`` if it cannot be encoded."""
    try:
        return cbor2.dumps(value)
    except (cbor2.CBOREncodeError, TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise ValidationError(f"{what} cannot be encoded: {exc}") from None


TABLE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,255}")
_VALID_NAMES: set[str] = set()  # names that passed, so hot paths skip the regex


def check_table_name(name: object) -> str:
    """Validate a table name: 1-255 characters of ``A-Z a-z 0-9 _ . -``."""
    if type(name) is str and name in _VALID_NAMES:
        return name
    if not isinstance(name, str) or not TABLE_NAME.fullmatch(name):
        raise ValidationError(
            f"table name must be 1-255 characters of A-Z a-z 0-9 _ . -, not {name!r}"
        )
    if type(name) is str and len(_VALID_NAMES) < 4096:
        _VALID_NAMES.add(name)
    return name


def canonical(value: Any) -> bytes:
    """Canonical CBOR of a value: equal values give equal bytes (digest, tie-breaks)."""
    return cbor2.dumps(value, canonical=True)


class Op(NamedTuple):
    """One decoded operation of a transaction."""

    kind: str                   # "T", "P", "U", "D", "I" (create index), "X" (drop index),
                                # "L" (set TTL) or "V" (the forked entry a relabeled
                                # transaction was, engine.voids)
    table: str
    key: bytes                  # item key ("T", "I", "X", "L": empty)
    attrs: dict[str, Any]       # P: item, U: set, T: {"partition_key":…, "sort_key":…},
                                # I: {name, partition_key, sort_key, projection}, X: {name},
                                # L: {"ttl_attribute": name | None}
    remove: tuple[str, ...]     # U only
    seen: Version
    ext: WriteExt = NO_EXT      # counter and set parts (P, U, D)
    ttl: bool = False           # D only: a TTL expiry
    inc: Version | None = None  # P, U, D: the incarnation of the table it was written to
                                # (None: a transaction from before incarnations travelled)


def check_key_schema(name: object, partition_key: object, sort_key: object) -> None:
    """Validate the arguments of a table definition (``create_table``, snapshot tables)."""
    check_table_name(name)
    check_attr_name(partition_key, f"table {name!r} partition_key")
    if sort_key is not None:
        check_attr_name(sort_key, f"table {name!r} sort_key")
        if sort_key == partition_key:
            raise ValidationError(
                f"table {name!r}: sort key equals partition key; they must differ"
            )


def check_index_spec(
    table: str, name: object, partition_key: object, sort_key: object, projection: object,
) -> str | tuple[str, ...]:
    """Validate an index definition's fields; return the projection in canonical form.

    Index names follow the table-name rules. ``projection`` is ``"ALL"``, ``"KEYS_ONLY"`` or a
    list (or tuple) of attribute names, returned as a sorted tuple without duplicates.
    """
    if not isinstance(name, str) or not TABLE_NAME.fullmatch(name):
        raise ValidationError(
            f"table {table!r}: index name must be 1-255 characters of A-Z a-z 0-9 _ . -, "
            f"not {name!r}"
        )
    where = f"table {table!r} index {name!r}"
    check_attr_name(partition_key, f"{where} partition_key")
    if sort_key is not None:
        check_attr_name(sort_key, f"{where} sort_key")
        if sort_key == partition_key:
            raise ValidationError(f"{where}: sort key equals partition key; they must differ")
    if projection in ("ALL", "KEYS_ONLY"):
        return projection
    if isinstance(projection, str) or not isinstance(projection, (list, tuple)):
        raise ValidationError(
            f"{where}: projection must be 'ALL', 'KEYS_ONLY' or a list of attribute names, "
            f"not {projection!r}"
        )
    if len(projection) > MAX_PROJECTION:
        raise ValidationError(
            f"{where}: a projection names at most {MAX_PROJECTION} attributes, not "
            f"{len(projection)}"
        )
    for attr in projection:
        check_attr_name(attr, f"{where} projection")
    return tuple(sorted(set(projection)))


def check_attr_name(name: object, where: str = "item") -> str:
    """Validate an attribute name: a non-empty str of at most 255 UTF-8 bytes."""
    if type(name) is not str or not name:
        raise ValidationError(f"{where}: attribute names must be non-empty strings, not {name!r}")
    if name.isascii():
        size = len(name)
    else:
        try:
            size = len(name.encode("utf-8"))
        except UnicodeEncodeError:  # a lone surrogate: no UTF-8 form, so CBOR cannot hold it
            raise ValidationError(
                f"{where}: attribute name {name[:40]!r} is not valid Unicode") from None
    if size > MAX_NAME_BYTES:
        raise ValidationError(f"{where}: attribute name {name[:40]!r}… is longer than 255 bytes")
    return name


_SET_ELEMENTS = (str, int, float, Decimal, bytes)
_MAX_INT_BITS = 8000  # the bounded decoder refuses larger bignums: never write one


def _check_text(value: Any, path: str) -> None:
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError(f"{path}: string is not valid Unicode") from None


def _check_int(value: Any, path: str) -> None:
    if value.bit_length() > _MAX_INT_BITS:
        raise ValidationError(f"{path}: integer of {value.bit_length()} bits is too large")


def _check_float(value: Any, path: str) -> None:
    if not math.isfinite(value):
        raise ValidationError(f"{path}: numbers must be finite, not {value!r}")


def _check_decimal(value: Any, path: str) -> None:
    if not value.is_finite():
        raise ValidationError(f"{path}: numbers must be finite, not {value!r}")


def _ok(value: Any, path: str) -> None:
    pass


_SCALAR_CHECKS: dict[type, Callable[[Any, str], None]] = {
    str: _check_text, int: _check_int, float: _check_float, Decimal: _check_decimal,
    bytes: _ok, bool: _ok, type(None): _ok,
}


def check_value(value: Any, path: str, depth: int = 0) -> None:
    """Raise ``ValidationError`` naming ``path`` unless ``value`` is a storable attribute value."""
    check = _SCALAR_CHECKS.get(type(value))
    if check is not None:
        check(value, path)
        return
    for kind, check in _SCALAR_CHECKS.items():  # subclasses (str enums, IntFlag, …)
        if isinstance(value, kind):
            check(value, path)
            return
    if depth >= MAX_DEPTH:
        raise ValidationError(f"{path}: nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, list):
        for i, v in enumerate(value):
            check_value(v, f"{path}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValidationError(f"{path}: map keys must be strings, not {k!r}")
            _check_text(k, f"{path}: map key {k[:40]!r}")
            check_value(v, f"{path}.{k}", depth + 1)
        return
    if isinstance(value, (set, frozenset)):
        kinds = set()
        for v in value:
            if isinstance(v, bool) or not isinstance(v, _SET_ELEMENTS):
                raise ValidationError(
                    f"{path}: set elements must be str, number or bytes, not {type(v).__name__}"
                )
            check_value(v, f"{path}{{…}}", depth + 1)
            kinds.add(str if isinstance(v, str) else bytes if isinstance(v, bytes) else int)
        if len(kinds) > 1:
            raise ValidationError(f"{path}: a set must hold one kind (strings, numbers or bytes)")
        return
    raise ValidationError(
        f"{path}: unsupported value type {type(value).__name__} "
        "(use str, int, float, Decimal, bytes, bool, None, list, dict or set)"
    )


_PLAIN = frozenset((bytes, bool, type(None)))


def _plainly_valid(value: Any, depth: int) -> bool:
    """True if ``value`` is storable, decided cheaply for the usual shapes (no paths built).

    ``False`` means "not proven": :func:`check_value` then decides, and names the culprit.
    Only exact builtin types are accepted here; subclasses, sets and the rare cases take the
    slow path, so this never accepts anything :func:`check_value` would refuse.
    """
    t = type(value)
    if t is str:
        return bool(value.isascii())
    if t is int:
        return bool(value.bit_length() <= _MAX_INT_BITS)
    if t in _PLAIN:
        return True
    if t is float:
        return math.isfinite(value)
    if depth >= MAX_DEPTH:
        return False
    if t is dict:  # loops, not all(generator): cheaper in both builds
        for k, v in value.items():
            if not (type(k) is str and k.isascii() and _plainly_valid(v, depth + 1)):
                return False
        return True
    if t is list:
        for v in value:  # noqa: SIM110 - the loop: all(generator) costs more, both builds
            if not _plainly_valid(v, depth + 1):
                return False
        return True
    if t is Decimal:
        return value.is_finite()  # type: ignore[no-any-return]
    return False


_IMMUTABLE = frozenset((str, int, float, bool, bytes, Decimal, type(None)))


def capture(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` that later mutation of the original cannot reach (lists, dicts
    and sets copied, recursively; scalars are immutable). A batch captures its ops with it
    when they are added, then validates the copy: what commits is what was validated.

    Past the depth any valid value can have, the rest is left as is: validation refuses it.
    """
    t = type(value)
    if t in _IMMUTABLE or depth > MAX_DEPTH:
        return value
    # scalars inline (what capture() returns for them anyway): one call less per attribute
    if isinstance(value, dict):
        return {k: v if type(v) in _IMMUTABLE else capture(v, depth + 1)
                for k, v in value.items()}
    if isinstance(value, list):
        return [v if type(v) in _IMMUTABLE else capture(v, depth + 1) for v in value]
    if isinstance(value, set):
        return set(value)
    if isinstance(value, frozenset):
        return frozenset(value)
    return value


def check_attrs(attrs: Mapping[Any, Any], where: str, *, _in_table: bool = False) -> None:
    """Validate every name and value of an attribute map (hot path: no strings built on success).

    ``where`` names the map in error messages (``_in_table``: it is a table name, to be
    formatted only if an error is raised).
    """
    for name, value in attrs.items():
        if type(name) is not str or not name or not name.isascii() or len(name) > MAX_NAME_BYTES:
            check_attr_name(name, f"table {where!r}" if _in_table else where)
        t = type(value)  # the scalar cases of _plainly_valid inlined: most values are scalars
        if t is str:
            if value.isascii():
                continue
        elif t is int:
            if value.bit_length() <= _MAX_INT_BITS:
                continue
        elif t in _PLAIN or _plainly_valid(value, 0):
            continue
        check_value(value, f"{f'table {where!r}' if _in_table else where}: attribute {name!r}")


# -- item state -------------------------------------------------------------------------


def encode_state(state: ItemState) -> bytes:
    """Encode a state compactly (see module docstring)."""
    c = state.cleared
    base: dict[str, Any] = {}
    over: dict[str, list[Any]] = {}
    for name, (v, value) in state.attrs.items():
        if v == c and value is not ABSENT:
            base[name] = value
        elif value is ABSENT:
            over[name] = [v[0], v[1]]
        else:
            over[name] = [v[0], v[1], value]
    if state.extra:
        from .mergewire import extra_wire  # imports this module
        return cbor2.dumps([c[0], c[1], base, over, state.seen[0], state.seen[1],
                            {name: extra_wire(state.extra[name]) for name in sorted(state.extra)}])
    if state.seen == BOTTOM:
        return cbor2.dumps([c[0], c[1], base, over])
    return cbor2.dumps([c[0], c[1], base, over, state.seen[0], state.seen[1]])


def _decode_state_obj(obj: Any) -> ItemState:
    cleared = (obj[0], obj[1])
    attrs: dict[str, Entry] = {name: (cleared, value) for name, value in obj[2].items()}
    for name, e in obj[3].items():
        attrs[name] = ((e[0], e[1]), e[2] if len(e) == 3 else ABSENT)
    n = len(obj)
    state = ItemState(cleared, attrs, (obj[4], obj[5]) if n >= 6 else BOTTOM)
    if n == 7:
        from .mergewire import extra_obj  # imports this module
        state.extra = {name: extra_obj(w) for name, w in obj[6].items()}
    return state


def max_version_raw(raw: bytes) -> Version:
    """The largest version in a stored state, without building it (write-path ``seen``)."""
    obj = cbor2.loads(raw)
    if len(obj) == 7:
        return max_version(_decode_state_obj(obj))
    best = (obj[0], obj[1])
    over = obj[3]
    for e in over.values():
        v = (e[0], e[1])
        if v > best:
            best = v
    return best


def has_extra_raw(raw: bytes) -> bool:
    """True if stored state bytes hold counter or set parts (a 7-element array)."""
    return raw[:1] == b"\x87"


def decode_state(raw: bytes) -> ItemState:
    """Decode a state this store wrote."""
    return _decode_state_obj(cbor2.loads(raw))


def visible_from_raw(raw: bytes) -> dict[str, Any] | None:
    """The visible item straight from stored bytes; avoids building a state for plain puts."""
    obj = cbor2.loads(raw)
    if len(obj) == 7:
        return visible(_decode_state_obj(obj))
    base, over = obj[2], obj[3]
    if not over:
        return base or None
    for name, e in over.items():
        if len(e) == 3:
            base[name] = e[2]
    return base or None


def loads_untrusted(raw: bytes) -> Any:
    """Decode CBOR from a peer: depth-limited, definite lengths, no duplicate map keys.

    cbor2 (6.1.1 and later, the Rust decoder) checks every declared length against the bytes
    present before allocating, so a lying length cannot exhaust memory; values of types we do
    not store are refused afterwards by the field checks.
    """
    try:
        # the bound never refuses what check_value accepts (the same validator then decides)
        return cbor2.loads(raw, max_depth=MAX_VALUE_CBOR_DEPTH + _ENVELOPE_DEPTH,
                           allow_indefinite=False,
                           allow_duplicate_keys=False)
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise ValidationError(f"bad CBOR: {exc}") from None


def decode_state_untrusted(raw: bytes, where: str) -> ItemState:
    """Decode and check a state that came from a peer (snapshot records)."""
    try:
        obj = loads_untrusted(raw)
        if not (isinstance(obj, list) and len(obj) in (4, 6, 7)):
            raise ValidationError("not a 4-, 6- or 7-element array")
        c_hlc, c_node, base, over = obj[:4]
        if len(obj) >= 6:
            _check_u64(obj[4], "seen hlc")
            _check_u64(obj[5], "seen node")
        if len(obj) == 7:
            from .mergewire import check_state_ext  # imports this module
            check_state_ext(obj[6], (c_hlc, c_node), where)
        _check_u64(c_hlc, "cleared hlc")
        _check_u64(c_node, "cleared node")
        if not isinstance(base, dict) or not isinstance(over, dict):
            raise ValidationError("base/over are not maps")
        check_attrs(base, where)
        for name, e in over.items():
            check_attr_name(name, where)
            if not isinstance(e, list) or len(e) not in (2, 3):
                raise ValidationError(f"entry {name!r} is malformed")
            _check_u64(e[0], "entry hlc")
            _check_u64(e[1], "entry node")
            if (e[0], e[1]) < (c_hlc, c_node):
                raise ValidationError(f"entry {name!r} is older than the clear point")
            if len(e) == 3:
                check_value(e[2], f"{where}: attribute {name!r}")
        return _decode_state_obj(obj)
    except (TypeError, ValueError) as exc:  # ValidationError included
        raise ValidationError(f"{where}: malformed item state: {exc}") from None


# -- transactions -----------------------------------------------------------------------


def encode_txn(hlc: int, ops: list[list[Any]],
               incs: Mapping[str, Version] | None = None) -> bytes:
    """Encode a transaction from its wire-form op lists (and the incarnations of the tables
    its item ops were written to, see :func:`encode_txn_parts`)."""
    if incs:
        return cbor2.dumps([hlc, ops, {t: list(v) for t, v in incs.items()}])
    return cbor2.dumps([hlc, ops])


# The write path encodes a put's attributes once and splices the bytes into both the item
# state and the log entry; these helpers write the few CBOR heads around them (shortest form,
# exactly what cbor2 would write, so the result decodes the same and passes loads_bounded).

def _head(major: int, n: int) -> bytes:
    m = major << 5
    if n < 24:
        return bytes((m | n,))
    if n < 0x100:
        return bytes((m | 24, n))
    if n < 0x10000:
        return struct.pack(">BH", m | 25, n)
    if n < 0x100000000:
        return struct.pack(">BI", m | 26, n)
    return struct.pack(">BQ", m | 27, n)


def _text(s: str) -> bytes:
    raw = s.encode("utf-8")
    return _head(3, len(raw)) + raw


def put_state_bytes(version: Version, attrs_cbor: bytes, seen: Version = BOTTOM) -> bytes:
    """``encode_state`` of a put's delta, from the attributes' CBOR."""
    if seen == BOTTOM:
        return b"\x84" + _head(0, version[0]) + _head(0, version[1]) + attrs_cbor + b"\xa0"
    return (b"\x86" + _head(0, version[0]) + _head(0, version[1]) + attrs_cbor + b"\xa0"
            + _head(0, seen[0]) + _head(0, seen[1]))


def put_op_bytes(table: str, key: bytes, attrs_cbor: bytes, seen: Version) -> bytes:
    """One encoded ``["P", table, key, attrs, seen_hlc, seen_node]`` op."""
    return (b"\x86\x61P" + _text(table) + _head(2, len(key)) + key + attrs_cbor
            + _head(0, seen[0]) + _head(0, seen[1]))


_KEY_HEADS = [_head(2, n) for n in range(MAX_KEY_BYTES + 1)]  # heads of every item key length


class PutEncoder:
    """:func:`put_state_bytes` and :func:`put_op_bytes` for the puts of one transaction.

    All of them share one version, so its CBOR heads (and each table name's) are built once
    per transaction instead of once per item; the bytes are the same.
    """

    __slots__ = ("_state", "_state_seen", "_tables")

    def __init__(self, version: Version) -> None:
        heads = _head(0, version[0]) + _head(0, version[1])
        self._state = b"\x84" + heads
        self._state_seen = b"\x86" + heads
        self._tables: dict[str, bytes] = {}

    def state(self, attrs_cbor: bytes, seen: Version) -> bytes:
        """``put_state_bytes(version, attrs_cbor, seen)``."""
        if seen == BOTTOM:
            return self._state + attrs_cbor + b"\xa0"
        return self._state_seen + attrs_cbor + b"\xa0" + _head(0, seen[0]) + _head(0, seen[1])

    def op(self, table: str, key: bytes, attrs_cbor: bytes, seen: Version) -> bytes:
        """``put_op_bytes(table, key, attrs_cbor, seen)``."""
        head = self._tables.get(table)
        if head is None:
            head = self._tables[table] = b"\x86\x61P" + _text(table)
        tail = b"\x00\x00" if seen == BOTTOM else _head(0, seen[0]) + _head(0, seen[1])
        return b"".join((head, _KEY_HEADS[len(key)], key, attrs_cbor, tail))


def encode_txn_parts(hlc: int, ops: list[bytes],
                     incs: Mapping[str, Version] | None = None) -> bytes:
    """Encode a transaction from already-encoded ops.

    ``incs`` maps each table its item ops write to the incarnation (``TableDef.version``)
    they were written to: ``[hlc, [op, ...], {table: [inc_hlc, inc_node]}]``. A receiver
    drops an op of an incarnation deleted since (:func:`engine.schema.stale_op`)."""
    if not incs:
        return b"\x82" + _head(0, hlc) + _head(4, len(ops)) + b"".join(ops)
    tail = [_head(5, len(incs))]
    for table, (ih, inode) in incs.items():
        tail += (_text(table), b"\x82", _head(0, ih), _head(0, inode))
    return b"\x83" + _head(0, hlc) + _head(4, len(ops)) + b"".join(ops) + b"".join(tail)


def _decode_incs(obj: Any, n_ops: int) -> dict[str, Version]:
    """The incarnation map of a transaction (its optional third element), checked."""
    if not isinstance(obj, dict) or not 0 < len(obj) <= n_ops:
        raise ValidationError("transaction incarnations are not a map of at most one entry "
                              "per op")
    out = {}
    for table, inc in obj.items():
        if not isinstance(inc, list) or len(inc) != 2:
            raise ValidationError("a transaction incarnation is not [hlc, node]")
        out[check_table_name(table)] = (_check_u64(inc[0], "incarnation hlc"),
                                        _check_u64(inc[1], "incarnation node"))
    return out


def _check_str(v: Any, what: str) -> str:
    if not isinstance(v, str) or not v:
        raise ValidationError(f"{what} is not a non-empty string: {v!r}")
    return v


_PREFIXES: dict[str, bytes] = {}  # table name -> its key prefix, for names already checked


def _check_key(table: str, key: Any) -> bytes:
    if not isinstance(key, bytes):
        raise ValidationError("item key is not bytes")
    if len(key) > MAX_KEY_BYTES:
        raise ValidationError(f"item key is {len(key)} bytes, over LMDB's {MAX_KEY_BYTES}")
    prefix = _PREFIXES.get(table)
    if prefix is None:
        if len(_PREFIXES) >= 4096:
            _PREFIXES.clear()
        prefix = _PREFIXES[table] = encode_value(table)
    if key.startswith(prefix):
        # the usual case: only the key values need checking (a key holds one or two)
        pos, n, end = len(prefix), 0, len(key)
        while pos < end and n < 3:
            pos = decode_value(key, pos)[1]
            n += 1
        if 1 <= n <= 2 and pos == end:
            return key
    name, _ = decode_key(key)  # raises, naming what is wrong
    if name != table:
        raise ValidationError(f"item key belongs to table {name!r}, op names {table!r}")
    return key


def _op_ext(obj: Any, table: str, trusted: bool) -> tuple[WriteExt, bool]:
    from .mergewire import op_ext  # imports this module

    return op_ext(obj, f"table {table!r}", trusted)


def decode_txn(raw: bytes, *, trusted: bool = False) -> tuple[int, list[Op]]:
    """Decode a transaction; untrusted input is checked field by field.

    :raises ValidationError: for anything malformed (the message says what).
    """
    obj = cbor2.loads(raw) if trusted else loads_untrusted(raw)
    if not (isinstance(obj, list) and len(obj) in (2, 3) and isinstance(obj[1], list)):
        raise ValidationError("transaction is not [hlc, [ops]] or [hlc, [ops], {incarnations}]")
    hlc = _check_u64(obj[0], "transaction hlc")
    if not obj[1]:
        raise ValidationError("transaction has no operations")
    if len(obj) == 3:
        incs = _decode_incs(obj[2], len(obj[1]))
        ops = _decode_ops(obj[1], trusted)
        return hlc, [op._replace(inc=incs.get(op.table)) if op.kind in "PUD" else op
                     for op in ops]
    return hlc, _decode_ops(obj[1], trusted)


def _void_attrs(w: list[Any], trusted: bool) -> dict[str, Any]:
    """``{origin, seq, bases}`` of a ``V`` op (:mod:`engine.voids`), checked."""
    origin, seq = _check_u64(w[1], "void origin"), _check_u64(w[2], "void seq")
    if not origin or not seq:
        raise ValidationError("a void names a node id and a seq, both non-zero")
    if not trusted:
        check_void_bases(w[3])
    return {"origin": origin, "seq": seq, "bases": w[3]}


def check_void_bases(bases: Any) -> None:
    """Check the counter chain bases of a void (:mod:`engine.voids`)."""
    if not isinstance(bases, list):
        raise ValidationError("void bases are not an array")
    for row in bases:
        if not isinstance(row, list) or len(row) != 4 or not isinstance(row[0], bytes):
            raise ValidationError("a void base is [item key, attribute, prev hlc, total]")
        decode_key(row[0])
        check_attr_name(row[1], "void base")
        _check_u64(row[2], "void base hlc")
        if isinstance(row[3], bool) or not isinstance(row[3], (int, float, Decimal)):
            raise ValidationError("a void base total is not a number")
        check_value(row[3], "void base total")


def _decode_ops(wire: list[Any], trusted: bool) -> list[Op]:
    """Decode (and, untrusted, check) the ops of a transaction."""
    ops: list[Op] = []
    for i, w in enumerate(wire):
        if not isinstance(w, list) or not w:
            raise ValidationError(f"operation {i} is not an array")
        kind = w[0]
        try:
            if kind == "P" and len(w) == 6:  # the usual op first, its checks inlined
                table = w[1]
                if type(table) is not str or table not in _VALID_NAMES:
                    table = check_table_name(table)
                attrs = w[3]
                if not trusted:
                    if type(attrs) is not dict:
                        raise ValidationError("put item is not a map")
                    check_attrs(attrs, table, _in_table=True)
                s_hlc, s_node = w[4], w[5]
                if type(s_hlc) is not int or type(s_node) is not int \
                        or not 0 <= s_hlc <= _U64 or not 0 <= s_node <= _U64:
                    s_hlc, s_node = _check_u64(s_hlc, "seen hlc"), _check_u64(s_node, "seen node")
                ops.append(Op("P", table, _check_key(table, w[2]), attrs, (), (s_hlc, s_node)))
            elif kind == "T" and len(w) == 4:
                name = check_table_name(w[1])
                pk = check_attr_name(_check_str(w[2], "partition key"), f"table {name!r}")
                sk = None if w[3] is None else check_attr_name(
                    _check_str(w[3], "sort key"), f"table {name!r}")
                if sk == pk:
                    raise ValidationError(f"table {name!r}: sort key equals partition key")
                ops.append(Op("T", name, b"", {"partition_key": pk, "sort_key": sk}, (), BOTTOM))
            elif kind == "P" and len(w) == 7:
                table = check_table_name(w[1])
                if not trusted:
                    if type(w[3]) is not dict:
                        raise ValidationError("put item is not a map")
                    check_attrs(w[3], table, _in_table=True)
                seen = (_check_u64(w[4], "seen hlc"), _check_u64(w[5], "seen node"))
                ext, _ = _op_ext(w[6], table, trusted)
                ops.append(Op("P", table, _check_key(table, w[2]), w[3], (), seen, ext))
            elif kind == "L" and len(w) == 3:
                name = check_table_name(w[1])
                ttl = None if w[2] is None else check_attr_name(
                    _check_str(w[2], "ttl attribute"), f"table {name!r}")
                ops.append(Op("L", name, b"", {"ttl_attribute": ttl}, (), BOTTOM))
            elif kind == "U" and len(w) in (7, 8):
                table = check_table_name(w[1])
                if not trusted:
                    if not isinstance(w[3], dict) or not isinstance(w[4], list):
                        raise ValidationError("update set/remove are not a map and an array")
                    check_attrs(w[3], f"table {table!r}")
                    for r in w[4]:
                        check_attr_name(r, f"table {table!r}")
                    if set(w[4]) & set(w[3]):
                        raise ValidationError("update sets and removes the same attribute")
                seen = (_check_u64(w[5], "seen hlc"), _check_u64(w[6], "seen node"))
                ext, _ = _op_ext(w[7], table, trusted) if len(w) == 8 else (NO_EXT, False)
                if not trusted and ext and set(w[3]).union(w[4]).intersection(
                        {*ext.add, *ext.add_elems, *ext.del_elems}):
                    raise ValidationError("update sets or removes an attribute it also adds to")
                ops.append(Op("U", table, _check_key(table, w[2]), w[3], tuple(w[4]), seen, ext))
            elif kind == "I" and len(w) == 6:
                table = check_table_name(w[1])
                proj = check_index_spec(table, w[2], w[3], w[4], w[5])
                ops.append(Op("I", table, b"", {"name": w[2], "partition_key": w[3],
                                               "sort_key": w[4], "projection": proj}, (), BOTTOM))
            elif kind == "X" and len(w) == 3:
                table = check_table_name(w[1])
                if not isinstance(w[2], str) or not TABLE_NAME.fullmatch(w[2]):
                    raise ValidationError(f"index name {w[2]!r:.80} is not valid")
                ops.append(Op("X", table, b"", {"name": w[2]}, (), BOTTOM))
            elif kind == "R" and len(w) == 4:  # delete a table: the incarnation it deletes
                table = check_table_name(w[1])
                inc = (_check_u64(w[2], "incarnation hlc"), _check_u64(w[3], "incarnation node"))
                ops.append(Op("R", table, b"", {"incarnation": inc}, (), BOTTOM))
            elif kind == "V" and len(w) == 4:  # the forked entry a relabeled txn was
                ops.append(Op("V", "", b"", _void_attrs(w, trusted), (), BOTTOM))
            elif kind == "D" and len(w) in (5, 6):
                table = check_table_name(w[1])
                seen = (_check_u64(w[3], "seen hlc"), _check_u64(w[4], "seen node"))
                ext, expiry = _op_ext(w[5], table, trusted) if len(w) == 6 else (NO_EXT, False)
                if ext.add or ext.add_elems or ext.del_elems:
                    raise ValidationError("a delete carries no ADD or DELETE actions")
                ops.append(Op("D", table, _check_key(table, w[2]), {}, (), seen, ext, expiry))
            else:
                raise ValidationError(f"unknown operation {kind!r} of {len(w)} fields")
        except (ValidationError, TypeError) as exc:  # TypeError: e.g. unhashable remove names
            raise ValidationError(f"operation {i}: {exc}") from None
    return ops
