"""Items as JSON: how ``regiondb`` (the CLI and the demo) reads and prints attribute values.

JSON has no bytes, no sets and one kind of number, while an item may hold all of them. The
encoding is lossless and round-trips through every command:

================================  =====================================  ===================
Python value                      JSON                                   read back as
================================  =====================================  ===================
``str``, ``bool``, ``None``       string, ``true``/``false``, ``null``   the same
``int``                           integer (``42``)                       ``int``
``decimal.Decimal``               number (``19.99``, ``1E+3``)           ``Decimal`` [#]_
``float``                         number (``0.5``)                       ``Decimal("0.5")``
``bytes``                         ``{"$b64": "<base64>"}``               ``bytes``
``set``/``frozenset``             ``{"$set": [sorted elements]}``        ``set``
``list``, ``dict``                array, object                          the same
================================  =====================================  ===================

.. [#] A JSON number with a fraction or an exponent (``19.99``, ``1e3``) is read as
   ``decimal.Decimal``, never ``float``: what a user types is what is stored, exactly, as
   DynamoDB's number type does (``0.1 + 0.2`` stays ``0.3``). A number without one is an
   ``int``. A ``Decimal`` with an integral value and no exponent (``Decimal("5")``) prints as
   ``5`` and reads back as the ``int`` 5 — equal in Python and in key order. ``NaN`` and
   ``Infinity`` are refused (items hold finite numbers only).

An object whose only key is one of the markers ``$b64``, ``$set`` or ``$map`` is a tagged
value. A user dict that happens to look like one (``{"$b64": "x"}`` meant literally) is printed
wrapped as ``{"$map": {...}}`` and read back unwrapped, so even that round-trips.

Key arguments on the command line (partition and sort key values, query bounds) are more
forgiving, since keys are mostly plain strings: ``parse_key("c1")`` is the string ``"c1"``,
``parse_key("42")`` the number 42, ``parse_key('"42"')`` the string ``"42"`` and
``parse_key('{"$b64": "AAE="}')`` bytes. Text that is not a JSON number, string or ``$b64``
object is taken literally as a string.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from decimal import Decimal
from typing import Any

__all__ = ["JSONValueError", "decode_value", "dumps", "loads", "parse_key", "to_jsonable"]

TAGS = frozenset({"$b64", "$set", "$map"})


class JSONValueError(ValueError):
    """Raised for text that is not JSON, or JSON that is not a valid tagged value."""


def _reject_constant(name: str) -> Any:
    raise JSONValueError(f"{name} is not a number regiondb can store")


def loads(text: str, what: str = "JSON") -> Any:
    """Parse JSON text into item values (see the module docstring).

    :raises JSONValueError: naming ``what`` and where the JSON is wrong.
    """
    try:
        raw = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise JSONValueError(f"{what} is not valid JSON: {exc}") from None
    return decode_value(raw, what)


def decode_value(raw: Any, where: str = "value") -> Any:
    """Turn parsed JSON (with ``$b64``/``$set``/``$map`` markers) into item values."""
    if isinstance(raw, list):
        return [decode_value(v, f"{where}[{i}]") for i, v in enumerate(raw)]
    if not isinstance(raw, dict):
        return raw
    if len(raw) == 1:
        (tag, inner), = raw.items()
        if tag == "$b64":
            if not isinstance(inner, str):
                raise JSONValueError(f"{where}: $b64 takes a base64 string, not {inner!r}")
            try:
                return base64.b64decode(inner.encode("ascii"), validate=True)
            except (binascii.Error, UnicodeEncodeError):
                raise JSONValueError(f"{where}: {inner[:40]!r} is not valid base64") from None
        if tag == "$set":
            if not isinstance(inner, list):
                raise JSONValueError(f"{where}: $set takes an array, not {inner!r}")
            elems = [decode_value(v, f"{where}{{…}}") for v in inner]
            try:
                return set(elems)
            except TypeError:
                raise JSONValueError(
                    f"{where}: set elements must be strings, numbers or bytes"
                ) from None
        if tag == "$map":
            if not isinstance(inner, dict):
                raise JSONValueError(f"{where}: $map takes an object, not {inner!r}")
            return {k: decode_value(v, f"{where}.{k}") for k, v in inner.items()}
    return {k: decode_value(v, f"{where}.{k}") for k, v in raw.items()}


def _set_order(v: Any) -> Any:
    return v  # one kind per set (the engine enforces it), so elements compare


def to_jsonable(value: Any) -> Any:
    """The JSON-ready form of an item value; numbers stay numbers (see :func:`dumps`)."""
    if isinstance(value, bytes):
        return {"$b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, (set, frozenset)):
        try:
            elems = sorted(value, key=_set_order)
        except TypeError:
            elems = sorted(value, key=repr)
        return {"$set": [to_jsonable(v) for v in elems]}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        out = {str(k): to_jsonable(v) for k, v in value.items()}
        if len(out) == 1 and next(iter(out)) in TAGS:
            return {"$map": out}
        return out
    return value


def _number_text(value: int | float | Decimal) -> str:
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise JSONValueError(f"{value} cannot be written as JSON")
        return repr(value)
    if not value.is_finite():
        raise JSONValueError(f"{value} cannot be written as JSON")
    return str(value)  # Decimal's str of a finite value is valid JSON number text


def _write(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True or value is False:
        out.append("true" if value else "false")
    elif isinstance(value, (int, float, Decimal)):
        out.append(_number_text(value))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, list):
        out.append("[")
        for i, v in enumerate(value):
            if i:
                out.append(", ")
            _write(v, out)
        out.append("]")
    elif isinstance(value, dict):
        out.append("{")
        for i, (k, v) in enumerate(value.items()):
            if i:
                out.append(", ")
            out.append(json.dumps(str(k), ensure_ascii=False))
            out.append(": ")
            _write(v, out)
        out.append("}")
    else:
        raise JSONValueError(f"cannot write {type(value).__name__} as JSON")


def dumps(value: Any) -> str:
    """One line of JSON for an item value (bytes, sets and Decimals encoded losslessly).

    Decimals print their exact digits (``json`` would go through ``float``).

    >>> from decimal import Decimal
    >>> dumps({"id": "o1", "total": Decimal("19.99"), "tags": {"b", "a"}, "raw": b"\\x00"})
    '{"id": "o1", "total": 19.99, "tags": {"$set": ["a", "b"]}, "raw": {"$b64": "AA=="}}'
    """
    out: list[str] = []
    _write(to_jsonable(value), out)
    return "".join(out)


def parse_key(text: str, what: str = "key") -> Any:
    """A key value typed on the command line (see the module docstring)."""
    try:
        raw = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except (json.JSONDecodeError, JSONValueError):
        return text
    if isinstance(raw, bool) or raw is None:
        return text
    if isinstance(raw, (str, int, Decimal)):
        return raw
    if isinstance(raw, dict) and set(raw) == {"$b64"}:
        return decode_value(raw, what)
    return text
