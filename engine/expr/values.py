"""DynamoDB's type and comparison rules over plain Python values.

Types: ``S`` str, ``N`` int/float/Decimal, ``B`` bytes, ``BOOL``, ``NULL`` (``None``), ``M``
dict, ``L`` list, ``SS``/``NS``/``BS`` sets. A comparison of different types is false (``<>``
true), not an error; numbers compare as decimals; ``<`` and friends order only S, N and B;
sets are unordered. A missing attribute is :data:`MISSING`: every comparison with it is false
except ``<>``, which is true (as DynamoDB does).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

from ..errors import ValidationError
from .numbers import add, as_decimal

__all__ = ["MISSING", "TYPES", "add_value", "compare", "contains", "delete_value", "equal",
           "size", "type_of"]

TYPES = frozenset({"S", "SS", "N", "NS", "B", "BS", "BOOL", "NULL", "L", "M"})
_SET_TYPES = {"S": "SS", "N": "NS", "B": "BS"}
_WRONG_TYPE = "An operand in the update expression has an incorrect data type"


class _Missing:
    """What a path that leads nowhere evaluates to."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()
_SIMPLE = {str: "S", bool: "BOOL", int: "N", float: "N", Decimal: "N", bytes: "B",
           type(None): "NULL", dict: "M", list: "L"}


def type_of(value: Any) -> str | None:
    """DynamoDB's type name of ``value``, or ``None`` if it has none (``MISSING``, other types)."""
    t = _SIMPLE.get(type(value))
    if t is not None:
        return t
    if isinstance(value, (set, frozenset)):
        for element in value:
            inner = type_of(element)
            return _SET_TYPES.get(inner) if inner is not None else None
        return "SS"  # an empty set: DynamoDB has none; call it a string set
    for kind, name in _SIMPLE.items():
        if isinstance(value, kind) and kind is not type(None):
            return "BOOL" if isinstance(value, bool) else name
    return "B" if isinstance(value, bytearray) else None


def equal(a: Any, b: Any) -> bool:
    """DynamoDB equality: same type and equal value (numbers as decimals, deep for M and L)."""
    ta, tb = type_of(a), type_of(b)
    if ta != tb or ta is None:
        return False
    if ta == "N":
        if type(a) is int and type(b) is int:
            return bool(a == b)
        return as_decimal(a) == as_decimal(b)
    if ta == "M":
        return a.keys() == b.keys() and all(equal(v, b[k]) for k, v in a.items())
    if ta == "L":
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=False))
    if ta == "NS":
        return {as_decimal(x) for x in a} == {as_decimal(x) for x in b}
    return bool(a == b)


def compare(op: str, a: Any, b: Any) -> bool:
    """``a op b`` for op in ``= <> < <= > >=``, by DynamoDB's rules."""
    if op == "=":
        return equal(a, b)
    if op == "<>":
        return not equal(a, b)
    if type(a) is int and type(b) is int:
        x: Any = a
        y: Any = b
    else:
        ta = type_of(a)
        if ta != type_of(b) or ta not in ("S", "N", "B"):
            return False
        x, y = (as_decimal(a), as_decimal(b)) if ta == "N" else (a, b)
    if op == "<":
        return bool(x < y)
    if op == "<=":
        return bool(x <= y)
    if op == ">":
        return bool(x > y)
    return bool(x >= y)


def contains(a: Any, b: Any) -> bool:
    """``contains(a, b)``: substring of S or B, element of a set, or member of a list."""
    ta, tb = type_of(a), type_of(b)
    if ta == "L":
        return any(equal(x, b) for x in a)
    if tb is None or ta is None:
        return False
    if ta == tb and ta in ("S", "B"):
        return b in a
    if ta == _SET_TYPES.get(tb):
        if ta == "NS":
            d = as_decimal(b)
            return any(as_decimal(x) == d for x in a)
        return b in a
    return False


def size(value: Any) -> Any:
    """``size(value)``: length of S, B, sets, L and M; ``MISSING`` for other types."""
    t = type_of(value)
    if t is None or t in ("N", "BOOL", "NULL"):
        return MISSING
    return len(value)


def _is_set(value: Any) -> bool:
    return isinstance(value, (set, frozenset))


def add_value(current: Any, operand: Any) -> Any:
    """The value ``ADD`` leaves: a number added to (missing counts as 0), or a set united with.

    :raises ValidationError: if the two are not both numbers or sets of one type.
    """
    if current is MISSING:
        return set(operand) if _is_set(operand) else operand
    tc, to = type_of(current), type_of(operand)
    if tc == "N" and to == "N":
        return add(current, operand)
    if _is_set(current) and _is_set(operand) and (tc == to or not current or not operand):
        return set(current) | set(operand)
    raise ValidationError(_WRONG_TYPE)


def delete_value(current: Any, operand: Any) -> Any:
    """The value ``DELETE`` leaves: the set without the elements; ``MISSING`` once empty.

    :raises ValidationError: if ``current`` is not a set of the operand's type.
    """
    if current is MISSING:
        return MISSING
    if not _is_set(current) or (current and operand and type_of(current) != type_of(operand)):
        raise ValidationError(_WRONG_TYPE)
    if type_of(current) == "NS":
        gone = {as_decimal(x) for x in operand}
        left = {x for x in current if as_decimal(x) not in gone}
    else:
        left = set(current) - set(operand)
    return left or MISSING
