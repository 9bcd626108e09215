"""The expressions of one request, gathered for the native API (``engine.expr`` evaluates).

:func:`gather` reads ``ExpressionAttributeNames``/``ExpressionAttributeValues`` (values
unmarshalled to plain Python), the expression parameters, and the legacy parameters rewritten
by :mod:`regiondb.dynamodb.legacy`, and returns :class:`Exprs` whose fields are the native
keyword arguments (``condition=``, ``expression=``, ``filter=``, ``projection=``, ``names=``,
``values=``). :func:`partition_value` finds the partition key's value in a
KeyConditionExpression with the engine's parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.expr import Expressions, key_parts

from . import legacy
from .errors import serialization, validation
from .values import unmarshal

__all__ = ["Exprs", "gather", "partition_value"]


@dataclass
class Exprs:
    """Native keyword arguments of one request's expressions (``None`` when absent)."""

    names: dict[str, str] | None = None
    values: dict[str, Any] | None = None
    condition: str | None = None
    update: str | None = None
    filter: str | None = None
    projection: str | None = None
    key: str | None = None
    builder: legacy.Builder = field(default_factory=legacy.Builder)

    def placeholders(self) -> dict[str, Any]:
        """``names=`` and ``values=`` for the native call (merged with generated ones)."""
        names = {**(self.names or {}), **self.builder.names} or None
        values = {**(self.values or {}), **self.builder.values} or None
        out: dict[str, Any] = {}
        if names is not None:
            out["names"] = names
        if values is not None:
            out["values"] = values
        return out


def _expr_param(req: dict[str, Any], name: str) -> str | None:
    v = req.get(name)
    if v is None:
        return None
    if not isinstance(v, str):
        raise serialization(f"Unexpected value type for {name}: expected a string")
    if not v.strip():
        kind = name.replace("Expression", "")
        raise validation(f"Invalid {kind}Expression: The expression can not be empty;")
    return v


def gather(req: dict[str, Any], *, condition: bool = False, update: bool = False,
           filter_: str | None = None, projection: bool = False) -> Exprs:
    """The expressions of ``req`` that this operation takes, legacy ones rewritten.

    :param filter_: ``"QueryFilter"`` or ``"ScanFilter"`` where the operation filters.
    """
    ex = Exprs()
    names = req.get("ExpressionAttributeNames")
    if names is not None:
        if not isinstance(names, dict) or not all(isinstance(v, str) for v in names.values()):
            raise serialization("ExpressionAttributeNames must be a map of strings")
        if not names:
            raise validation("ExpressionAttributeNames must not be empty")
        ex.names = dict(names)
    values = req.get("ExpressionAttributeValues")
    if values is not None:
        if not isinstance(values, dict):
            raise serialization("ExpressionAttributeValues must be a map")
        if not values:
            raise validation("ExpressionAttributeValues must not be empty")
        ex.values = {k: unmarshal(v) for k, v in values.items()}
    b = ex.builder
    pairs: list[tuple[str, str]] = []
    if condition:
        pairs.append(("Expected", "ConditionExpression"))
        ex.condition = _expr_param(req, "ConditionExpression") or legacy.conditions(
            b, req.get("Expected"), req.get("ConditionalOperator"), expected=True)
    if update:
        pairs.append(("AttributeUpdates", "UpdateExpression"))
        ex.update = _expr_param(req, "UpdateExpression") or legacy.attribute_updates(
            b, req.get("AttributeUpdates"))
    if filter_:
        pairs.append((filter_, "FilterExpression"))
        ex.filter = _expr_param(req, "FilterExpression") or legacy.conditions(
            b, req.get(filter_), req.get("ConditionalOperator"), expected=False)
    if projection:
        pairs.append(("AttributesToGet", "ProjectionExpression"))
        ex.projection = _expr_param(req, "ProjectionExpression") or legacy.attributes_to_get(
            b, req.get("AttributesToGet"))
    legacy.no_mixing(req, pairs)
    return ex


def partition_value(text: str, pk: str, ex: Exprs) -> Any:
    """The partition key's value in a KeyConditionExpression (the native ``query``'s first
    argument; the whole expression goes to its ``key=``), found by the engine's own parser.

    :raises DynamoDBError: ``Query condition missed key schema element`` when there is no
        ``pk = :value`` term.
    """
    bound = Expressions(ex.names, ex.values).bind_condition(text, "KeyConditionExpression")
    part = key_parts(bound).part(pk)
    if part is None or part.op != "=":
        raise validation(f"Query condition missed key schema element: {pk}")
    return part.values[0]
