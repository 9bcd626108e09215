"""Primary keys and items checked against a table's schema, with DynamoDB's messages.

A ``Key`` must hold exactly the table's key attributes, each of the type its
``AttributeDefinitions`` gives; key strings and binaries must not be empty; a partition key
is at most 2048 bytes and a sort key 1024 (DynamoDB's limits — the engine's encoded key limit
of 511 bytes is smaller still and reported in its own words). An item must hold the key
attributes with the right types, be at most 400 KB, and keep index key attributes of the
index's type.
"""

from __future__ import annotations

from typing import Any

from .errors import validation
from .meta import TableInfo
from .values import attr_type, check_item_size, unmarshal_item, value_size

__all__ = ["check_item", "key_of", "key_values"]

_MAX_PK = 2048
_MAX_SK = 1024


def _schema_mismatch() -> Any:
    return validation("The provided key element does not match the schema")


def _check_key_value(info: TableInfo, name: str, value: Any, *, in_key: bool) -> None:
    expected = info.attrs.get(name, "S")
    actual = attr_type(value)
    if actual != expected:
        if in_key:
            raise _schema_mismatch()
        raise validation(f"One or more parameter values were invalid: Type mismatch for key "
                         f"{name} expected: {expected} actual: {actual}")
    if actual in ("S", "B") and len(value) == 0:
        kind = "string" if actual == "S" else "binary"
        raise validation("One or more parameter values are not valid. The AttributeValue for a "
                         f"key attribute cannot contain an empty {kind} value. Key: {name}")
    size = value_size(value)
    if name == info.partition_key and size > _MAX_PK:
        raise validation("One or more parameter values were invalid: Size of hashkey has "
                         f"exceeded the maximum size limit of{_MAX_PK} bytes")
    if name == info.sort_key and size > _MAX_SK:
        raise validation("One or more parameter values were invalid: Aggregated size of all "
                         f"range keys has exceeded the size limit of {_MAX_SK} bytes")


def key_of(info: TableInfo, typed: object, what: str = "Key") -> dict[str, Any]:
    """The plain key dict of a typed ``Key`` parameter, checked against the schema."""
    if typed is None:
        raise validation(f"1 validation error detected: Value null at '{what[:1].lower()}"
                         f"{what[1:]}' failed to satisfy constraint: Member must not be null")
    key = unmarshal_item(typed, what)
    names = info.key_names()
    if set(key) != set(names):
        raise _schema_mismatch()
    for name in names:
        _check_key_value(info, name, key[name], in_key=True)
    return key


def key_values(info: TableInfo, key: dict[str, Any]) -> tuple[Any, Any]:
    """``(pk, sk)`` of a key dict (``sk`` ``None`` for a table without a sort key)."""
    return key[info.partition_key], (key[info.sort_key] if info.sort_key else None)


def check_item(info: TableInfo, item: dict[str, Any], body_size: int | None = None) -> None:
    """Check a whole item (PutItem): key attributes present and typed, index keys typed, size."""
    for name in info.key_names():
        if name not in item:
            raise validation("One or more parameter values were invalid: Missing the key "
                             f"{name} in the item")
        _check_key_value(info, name, item[name], in_key=False)
    for ix_name, ix in info.indexes.items():
        for name in ix.get("keys", ()):
            if name in item and name not in info.key_names():
                expected = info.attrs.get(name)
                actual = attr_type(item[name])
                if expected and actual != expected:
                    raise validation(
                        "One or more parameter values were invalid: Type mismatch for Index Key "
                        f"{name} Expected: {expected} Actual: {actual} IndexName: {ix_name}")
    check_item_size(item, body_size)
