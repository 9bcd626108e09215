"""Reading request parameters with DynamoDB's validation messages.

DynamoDB reports constraint violations as ``1 validation error detected: Value '…' at
'tableName' failed to satisfy constraint: …``; the helpers here produce those for the
parameters every operation shares (names, enums, limits), so the handlers stay short.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import DynamoDBError, serialization, validation

__all__ = [
    "bool_param",
    "enum_param",
    "int_param",
    "list_param",
    "map_param",
    "str_param",
    "table_name",
]

_TABLE_NAME = re.compile(r"[a-zA-Z0-9_.\-]+")


def _constraint(value: Any, where: str, rule: str) -> DynamoDBError:
    return validation(f"1 validation error detected: Value '{value}' at '{where}' failed to "
                      f"satisfy constraint: {rule}")


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def str_param(req: dict[str, Any], name: str, *, required: bool = False,
              default: str | None = None) -> str | None:
    """A string parameter; ``SerializationException`` if it is not a string."""
    v = req.get(name)
    if v is None:
        if required:
            raise _constraint("null", _camel(name), "Member must not be null")
        return default
    if not isinstance(v, str):
        raise serialization(f"Unexpected value type for {name}: expected a string")
    return v


def table_name(req: dict[str, Any], name: str = "TableName") -> str:
    """A table name: 3-255 characters of ``a-zA-Z0-9_.-`` (DynamoDB's rule)."""
    v = str_param(req, name, required=True)
    assert v is not None
    return check_table_name(v, _camel(name))


def check_table_name(v: str, where: str = "tableName") -> str:
    """:raises DynamoDBError: if ``v`` breaks DynamoDB's table (or index) name rules."""
    if len(v) < 3:
        raise _constraint(v, where, "Member must have length greater than or equal to 3")
    if len(v) > 255:
        raise _constraint(v, where, "Member must have length less than or equal to 255")
    if not _TABLE_NAME.fullmatch(v):
        raise _constraint(v, where, "Member must satisfy regular expression pattern: "
                                    "[a-zA-Z0-9_.-]+")
    return v


def enum_param(req: dict[str, Any], name: str, allowed: tuple[str, ...],
               default: str | None = None) -> str | None:
    """A string parameter from a fixed set of values."""
    v = str_param(req, name, default=default)
    if v is not None and v not in allowed:
        raise _constraint(v, _camel(name),
                          f"Member must satisfy enum value set: [{', '.join(allowed)}]")
    return v


def int_param(req: dict[str, Any], name: str, *, low: int | None = None,
              high: int | None = None) -> int | None:
    """An integer parameter within ``[low, high]``."""
    v = req.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise serialization(f"Unexpected value type for {name}: expected an integer")
    if low is not None and v < low:
        raise _constraint(v, _camel(name), f"Member must have value greater than or equal "
                                           f"to {low}")
    if high is not None and v > high:
        raise _constraint(v, _camel(name), f"Member must have value less than or equal to "
                                           f"{high}")
    return v


def bool_param(req: dict[str, Any], name: str, default: bool = False) -> bool:
    """A boolean parameter."""
    v = req.get(name)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise serialization(f"Unexpected value type for {name}: expected a boolean")
    return v


def map_param(req: dict[str, Any], name: str) -> dict[str, Any] | None:
    """An object parameter."""
    v = req.get(name)
    if v is None:
        return None
    if not isinstance(v, dict):
        raise serialization(f"Unexpected value type for {name}: expected an object")
    return v


def list_param(req: dict[str, Any], name: str) -> list[Any] | None:
    """A list parameter."""
    v = req.get(name)
    if v is None:
        return None
    if not isinstance(v, list):
        raise serialization(f"Unexpected value type for {name}: expected a list")
    return v


def check_length(value: list[Any] | dict[str, Any], where: str, low: int, high: int) -> None:
    """:raises DynamoDBError: if ``value`` has fewer than ``low`` or more than ``high`` members."""
    if len(value) < low:
        raise _constraint(value, where, f"Member must have length greater than or equal to "
                                        f"{low}")
    if len(value) > high:
        raise _constraint(value, where, f"Member must have length less than or equal to "
                                        f"{high}")
