"""DynamoDB's number rules: 38 significant digits, magnitude from 1e-130 to below 1e126.

Numbers in expressions compare and add as decimals (``0.1 + 0.2`` is ``0.3``), whatever Python
type holds them. Arithmetic results (``SET a = a + :n``, ``ADD``) keep the caller's types where
that loses nothing: ``int`` with ``int`` gives an ``int``; a ``Decimal`` operand gives a
``Decimal``; ``float`` operands give the ``float`` nearest the exact decimal result.
"""

from __future__ import annotations

import decimal
from decimal import Decimal
from typing import Any

from ..errors import ValidationError

__all__ = ["MAX_DIGITS", "add", "as_decimal", "check_number", "is_number", "subtract"]

MAX_DIGITS = 38
_MAX_ADJUSTED = 125   # largest magnitude 9.99…E+125
_MIN_ADJUSTED = -130  # smallest magnitude 1E-130
# exact enough for any sum of two in-range numbers; the digit rule is then checked explicitly
_EXACT = decimal.Context(prec=400, Emax=999_999, Emin=-999_999,
                         traps=[decimal.InvalidOperation, decimal.Overflow])


def is_number(value: object) -> bool:
    """True for ``int``, ``float`` and ``Decimal`` values (not ``bool``)."""
    t = type(value)
    if t is int or t is float or t is Decimal:
        return True
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def as_decimal(value: int | float | Decimal) -> Decimal:
    """The decimal a number means (a float by its shortest repr: ``0.1`` is ``Decimal('0.1')``)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(int(value))


def check_number(value: Decimal) -> None:
    """Raise ``ValidationError`` unless ``value`` is a number DynamoDB can store."""
    if not value.is_finite():
        raise ValidationError(f"numbers must be finite, not {value}")
    if not value:
        return
    digits = value.normalize(_EXACT).as_tuple().digits
    adjusted = value.adjusted()
    if adjusted > _MAX_ADJUSTED:
        raise ValidationError("Number overflow. Attempting to store a number with magnitude "
                              "larger than supported range")
    if adjusted < _MIN_ADJUSTED:
        raise ValidationError("Number underflow. Attempting to store a number with magnitude "
                              "smaller than supported range")
    if len(digits) > MAX_DIGITS:
        raise ValidationError(
            f"Attempting to store more than {MAX_DIGITS} significant digits in a Number")


def _result(exact: Decimal, a: Any, b: Any) -> int | float | Decimal:
    check_number(exact)
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        return exact
    if isinstance(a, float) or isinstance(b, float):
        return float(exact)
    return int(exact)


def add(a: Any, b: Any) -> int | float | Decimal:
    """``a + b`` by DynamoDB's rules; raises ``ValidationError`` past its range."""
    if type(a) is int and type(b) is int:
        out = a + b
        if -10**38 < out < 10**38:
            return out
    return _result(_EXACT.add(as_decimal(a), as_decimal(b)), a, b)


def subtract(a: Any, b: Any) -> int | float | Decimal:
    """``a - b`` by DynamoDB's rules; raises ``ValidationError`` past its range."""
    if type(a) is int and type(b) is int:
        out = a - b
        if -10**38 < out < 10**38:
            return out
    return _result(_EXACT.subtract(as_decimal(a), as_decimal(b)), a, b)
