"""DynamoDB's typed attribute values <-> the engine's plain Python values.

``{"S": "x"}`` is ``str``, ``{"N": "1.5"}`` an ``int`` when integral (below 1E40) else a
``decimal.Decimal`` (DynamoDB's number rules: at most 38 significant digits, magnitude between
1E-130 and 9.99…E+125, checked here with DynamoDB's messages), ``{"B": base64}`` ``bytes``,
``SS``/``NS``/``BS`` ``frozenset``\\ s (never empty, no duplicates), ``M`` ``dict``, ``L``
``list``, ``BOOL`` ``bool`` and ``{"NULL": true}`` ``None``. Nesting is bounded at 32 levels.

The size rules (:func:`item_size`) follow DynamoDB's documented item size: names plus values,
strings and binaries by their byte length, numbers by about one byte per two significant
digits plus one, containers 3 bytes plus 1 per element.
"""

from __future__ import annotations

import base64
import binascii
import decimal
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from .errors import DynamoDBError, validation

__all__ = [
    "MAX_DEPTH",
    "MAX_ITEM_SIZE",
    "attr_type",
    "item_size",
    "marshal",
    "marshal_item",
    "number",
    "unmarshal",
    "unmarshal_item",
]

MAX_DEPTH = 32
MAX_ITEM_SIZE = 400 * 1024
_CTX = decimal.Context(prec=60, Emax=999_999, Emin=-999_999, traps=[decimal.InvalidOperation])
_TYPES = ("S", "N", "B", "SS", "NS", "BS", "M", "L", "BOOL", "NULL")
_SET_NAME = {"SS": "string", "NS": "number", "BS": "binary"}


def number(text: object) -> int | Decimal:
    """A DynamoDB number from its string form: ``int`` when integral, else ``Decimal``.

    :raises DynamoDBError: ValidationException in DynamoDB's words when it is not a number,
        has more than 38 significant digits, or leaves DynamoDB's range.
    """
    if not isinstance(text, str):
        raise validation("NUMBER_VALUE cannot be converted to String")
    try:
        d = _CTX.create_decimal(text.strip())
    except (decimal.InvalidOperation, ValueError):
        raise validation("A value provided cannot be converted into a number") from None
    if not d.is_finite() or not text.strip():
        raise validation("A value provided cannot be converted into a number")
    if d.is_zero():
        return 0
    d = d.normalize(_CTX)
    sign, digits, exp = d.as_tuple()
    assert isinstance(exp, int)
    if len(digits) > 38:
        raise validation("Attempting to store more than 38 significant digits in a Number")
    adjusted = d.adjusted()
    if adjusted > 125:
        raise validation("Number overflow. Attempting to store a number with magnitude larger "
                         "than supported range")
    if adjusted < -130:
        raise validation("Number underflow. Attempting to store a number with magnitude smaller "
                         "than supported range")
    if exp >= 0 and adjusted < 40:  # integral: an int (huge magnitudes stay compact Decimals)
        return int(d)
    return d


def _number_text(value: int | float | Decimal) -> str:
    if isinstance(value, int):
        return str(value)
    d = Decimal(repr(value)) if isinstance(value, float) else value
    if d.is_zero():
        return "0"
    d = d.normalize(_CTX)
    exp = d.as_tuple().exponent
    assert isinstance(exp, int)
    if exp >= 0:
        return str(int(d))
    return format(d, "f") if d.adjusted() > -7 else str(d)


def _depth_error() -> DynamoDBError:
    return validation("Nesting Levels have exceeded supported limits")


def unmarshal(av: object, depth: int = 1) -> Any:
    """The Python value of one typed attribute value (see the module docstring).

    :raises DynamoDBError: for a malformed value, with DynamoDB's message.
    """
    if not isinstance(av, dict) or len(av) != 1:
        if isinstance(av, dict) and not av:
            raise validation("Supplied AttributeValue is empty, must contain exactly one of the "
                             "supported datatypes")
        if isinstance(av, dict):
            raise validation("Supplied AttributeValue has more than one datatypes set, must "
                             "contain exactly one of the supported datatypes")
        raise DynamoDBError("SerializationException",
                            f"Unexpected value type in payload: {type(av).__name__}")
    if depth > MAX_DEPTH:
        raise _depth_error()
    ((tag, v),) = av.items()
    if tag == "S":
        if not isinstance(v, str):
            raise DynamoDBError("SerializationException", "S must be a string")
        return v
    if tag == "N":
        return number(v)
    if tag == "B":
        return _binary(v)
    if tag == "BOOL":
        if not isinstance(v, bool):
            raise DynamoDBError("SerializationException", "BOOL must be a boolean")
        return v
    if tag == "NULL":
        if v is not True:
            raise validation("One or more parameter values were invalid: Null attribute value "
                             "types must have the value of true")
        return None
    if tag == "M":
        if not isinstance(v, dict):
            raise DynamoDBError("SerializationException", "M must be an object")
        return {str(k): unmarshal(x, depth + 1) for k, x in v.items()}
    if tag == "L":
        if not isinstance(v, list):
            raise DynamoDBError("SerializationException", "L must be a list")
        return [unmarshal(x, depth + 1) for x in v]
    if tag in _SET_NAME:
        return _set(tag, v)
    raise validation(f"Supplied AttributeValue has an unknown datatype: {tag}; it must contain "
                     "exactly one of the supported datatypes")


def _binary(v: object) -> bytes:
    if not isinstance(v, str):
        raise DynamoDBError("SerializationException", "B must be a base64 string")
    try:
        return base64.b64decode(v, validate=True)
    except (binascii.Error, ValueError):
        raise DynamoDBError("SerializationException",
                            "Base64 encoded binary value is not valid") from None


def _set(tag: str, v: object) -> frozenset[Any]:
    if not isinstance(v, list):
        raise DynamoDBError("SerializationException", f"{tag} must be a list")
    if not v:
        raise validation(f"One or more parameter values were invalid: An {_SET_NAME[tag]} set  "
                         "may not be empty")
    if tag == "SS":
        if not all(isinstance(x, str) for x in v):
            raise DynamoDBError("SerializationException", "SS elements must be strings")
        elements: list[Any] = list(v)
    elif tag == "NS":
        elements = [number(x) for x in v]
    else:
        elements = [_binary(x) for x in v]
    out = frozenset(elements)
    if len(out) != len(elements):
        shown = ", ".join(str(x) for x in v)
        raise validation("One or more parameter values were invalid: Input collection "
                         f"[{shown}] contains duplicates.")
    return out


def unmarshal_item(item: object, what: str = "Item") -> dict[str, Any]:
    """An item (a map of names to typed values) as a plain dict."""
    if not isinstance(item, dict):
        raise DynamoDBError("SerializationException", f"{what} must be an object")
    return {name: unmarshal(av) for name, av in item.items()}


def marshal(value: Any) -> dict[str, Any]:
    """The typed attribute value of a Python value the engine returned."""
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, float, Decimal)):
        return {"N": _number_text(value)}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"B": base64.b64encode(bytes(value)).decode("ascii")}
    if value is None:
        return {"NULL": True}
    if isinstance(value, Mapping):
        return {"M": {str(k): marshal(v) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"L": [marshal(v) for v in value]}
    if isinstance(value, (set, frozenset)):
        return _marshal_set(value)
    raise TypeError(f"cannot marshal {type(value).__name__} into a DynamoDB value")


def _marshal_set(value: set[Any] | frozenset[Any]) -> dict[str, Any]:
    elements = list(value)
    if elements and all(isinstance(x, str) for x in elements):
        return {"SS": sorted(elements)}
    if elements and all(isinstance(x, (bytes, bytearray)) for x in elements):
        return {"BS": [base64.b64encode(bytes(x)).decode("ascii") for x in sorted(elements)]}
    if all(isinstance(x, (int, float, Decimal)) and not isinstance(x, bool) for x in elements):
        return {"NS": [_number_text(x) for x in sorted(elements)]}
    raise TypeError("cannot marshal a set of mixed element types into a DynamoDB value")


def marshal_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item dict as DynamoDB's map of names to typed values."""
    return {name: marshal(v) for name, v in item.items()}


def attr_type(value: Any) -> str:
    """The DynamoDB scalar type letter of a key value: ``S``, ``N`` or ``B`` (else ``?``)."""
    if isinstance(value, str):
        return "S"
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, (int, float, Decimal)):
        return "N"
    if isinstance(value, (bytes, bytearray)):
        return "B"
    return next(iter(marshal(value)))


def _number_size(value: int | float | Decimal) -> int:
    text = str(abs(value)) if type(value) is int else _number_text(value).lstrip("-")
    digits = len(text.replace(".", "").strip("0")) or 1
    return (digits + 1) // 2 + 1


def value_size(value: Any) -> int:
    """DynamoDB's size of one attribute value in bytes (see the module docstring)."""
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, (int, float, Decimal)):
        return _number_size(value)
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, Mapping):
        return 3 + sum(len(str(k).encode("utf-8", "surrogatepass")) + value_size(v) + 1
                       for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return 3 + sum(value_size(v) + 1 for v in value)
    if isinstance(value, (set, frozenset)):
        return sum(value_size(v) for v in value)
    return 0


def item_size(item: Mapping[str, Any]) -> int:
    """DynamoDB's size of an item: every attribute's name and value."""
    return sum(len(k.encode("utf-8", "surrogatepass")) + value_size(v) for k, v in item.items())


BODY_SIZE = "\x00body-size"
"""Request key under which the server records the body's length: an item sent in a body
smaller than 400 KB cannot be over 400 KB (its JSON spells every name and value out at least
as long as DynamoDB counts them), so the size need not be computed."""


def check_item_size(item: Mapping[str, Any], body_size: int | None = None) -> None:
    """:raises DynamoDBError: if ``item`` is over DynamoDB's 400 KB."""
    if body_size is not None and body_size <= MAX_ITEM_SIZE:
        return
    if item_size(item) > MAX_ITEM_SIZE:
        raise validation("Item size has exceeded the maximum allowed size")


assert set(_TYPES) >= set(_SET_NAME)
