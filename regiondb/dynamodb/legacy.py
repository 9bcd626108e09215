"""DynamoDB's legacy parameters, translated into the expression language.

``Expected``, ``QueryFilter``/``ScanFilter`` (with ``ConditionalOperator``), ``KeyConditions``,
``AttributeUpdates`` and ``AttributesToGet`` predate expressions. They are not evaluated here:
each is rewritten into the equivalent ConditionExpression, FilterExpression,
KeyConditionExpression, UpdateExpression or ProjectionExpression, with generated placeholders
(``#l0``, ``:l0``…), and handed to ``engine.expr`` like any expression. A request may not mix
a legacy parameter with its expression counterpart (DynamoDB's rule and message).
"""

from __future__ import annotations

from typing import Any

from .errors import validation
from .values import unmarshal

__all__ = ["Builder", "attributes_to_get", "attribute_updates", "conditions", "no_mixing"]

_ARGS = {
    "EQ": 1, "NE": 1, "LE": 1, "LT": 1, "GE": 1, "GT": 1, "NOT_NULL": 0, "NULL": 0,
    "CONTAINS": 1, "NOT_CONTAINS": 1, "BEGINS_WITH": 1, "IN": -1, "BETWEEN": 2,
}
_CMP = {"EQ": "=", "NE": "<>", "LE": "<=", "LT": "<", "GE": ">=", "GT": ">"}


class Builder:
    """Generated placeholders for one request: ``names`` and ``values`` to pass on."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        self._by_name: dict[str, str] = {}

    def name(self, attr: str) -> str:
        ph = self._by_name.get(attr)
        if ph is None:
            ph = self._by_name[attr] = f"#l{len(self._by_name)}"
            self.names[ph] = attr
        return ph

    def value(self, v: Any) -> str:
        ph = f":l{len(self.values)}"
        self.values[ph] = v
        return ph


def no_mixing(req: dict[str, Any], pairs: list[tuple[str, str]]) -> None:
    """:raises DynamoDBError: if a legacy parameter comes with its expression counterpart."""
    legacy = [old for old, _ in pairs if req.get(old) is not None]
    new = [e for _, e in pairs if req.get(e) is not None]
    if legacy and new:
        raise validation("Can not use both expression and non-expression parameters in the same "
                         f"request: Non-expression parameters: {{{', '.join(legacy)}}} "
                         f"Expression parameters: {{{', '.join(new)}}}")
    if legacy and (req.get("ExpressionAttributeNames") is not None
                   or req.get("ExpressionAttributeValues") is not None):
        which = ("ExpressionAttributeNames" if req.get("ExpressionAttributeNames") is not None
                 else "ExpressionAttributeValues")
        raise validation(f"{which} can only be specified when using expressions")


def _arg_values(attr: str, op: str, cond: dict[str, Any]) -> list[Any]:
    raw = cond.get("AttributeValueList") or []
    if not isinstance(raw, list):
        raise validation("AttributeValueList must be a list")
    want = _ARGS[op]
    if (want >= 0 and len(raw) != want) or (want < 0 and not raw):
        raise validation("One or more parameter values were invalid: Invalid number of "
                         f"argument(s) for the {op} ComparisonOperator")
    return [unmarshal(v) for v in raw]


def comparison(b: Builder, attr: str, op: object, cond: dict[str, Any]) -> str:
    """One ``ComparisonOperator`` condition on ``attr`` as an expression."""
    if op not in _ARGS:
        raise validation(f"1 validation error detected: Value '{op}' at 'comparisonOperator' "
                         "failed to satisfy constraint: Member must satisfy enum value set: "
                         f"[{', '.join(_ARGS)}]")
    assert isinstance(op, str)
    args = _arg_values(attr, op, cond)
    n = b.name(attr)
    if op in _CMP:
        return f"{n} {_CMP[op]} {b.value(args[0])}"
    if op == "NOT_NULL":
        return f"attribute_exists({n})"
    if op == "NULL":
        return f"attribute_not_exists({n})"
    if op == "CONTAINS":
        return f"contains({n}, {b.value(args[0])})"
    if op == "NOT_CONTAINS":
        return f"NOT contains({n}, {b.value(args[0])})"
    if op == "BEGINS_WITH":
        return f"begins_with({n}, {b.value(args[0])})"
    if op == "IN":
        return f"{n} IN ({', '.join(b.value(a) for a in args)})"
    return f"{n} BETWEEN {b.value(args[0])} AND {b.value(args[1])}"


def _expected_one(b: Builder, attr: str, cond: object) -> str:
    if not isinstance(cond, dict):
        raise validation(f"Expected condition for {attr} must be an object")
    if "ComparisonOperator" in cond:
        if "Value" in cond or "Exists" in cond:
            raise validation("One or more parameter values were invalid: Value or Exists "
                             "cannot be used with ComparisonOperator for Attribute: " + attr)
        return comparison(b, attr, cond["ComparisonOperator"], cond)
    exists = cond.get("Exists", True)
    if exists is False:
        if "Value" in cond:
            raise validation("One or more parameter values were invalid: Value cannot be used "
                             "when Exists is false for Attribute: " + attr)
        return f"attribute_not_exists({b.name(attr)})"
    if "Value" not in cond:
        raise validation("One or more parameter values were invalid: Value must be provided "
                         "when Exists is true for Attribute: " + attr)
    return f"{b.name(attr)} = {b.value(unmarshal(cond['Value']))}"


def conditions(b: Builder, spec: object, operator: object, *, expected: bool) -> str | None:
    """``Expected`` (``expected=True``) or a ``QueryFilter``/``ScanFilter`` as one expression,
    joined by ``ConditionalOperator`` (AND by default)."""
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise validation("conditions must be a map of attribute names to conditions")
    if operator not in (None, "AND", "OR"):
        raise validation(f"1 validation error detected: Value '{operator}' at "
                         "'conditionalOperator' failed to satisfy constraint: Member must "
                         "satisfy enum value set: [AND, OR]")
    parts = []
    for attr, cond in spec.items():
        if expected:
            parts.append(_expected_one(b, attr, cond))
        else:
            if not isinstance(cond, dict):
                raise validation(f"condition for {attr} must be an object")
            parts.append(comparison(b, attr, cond.get("ComparisonOperator"), cond))
    if not parts:
        return None
    joiner = f" {operator or 'AND'} "
    return joiner.join(f"({p})" for p in parts)


def key_conditions(b: Builder, spec: object, pk: str) -> tuple[Any, str | None]:
    """``KeyConditions``: the partition key's value and the sort-key condition expression."""
    if not isinstance(spec, dict):
        raise validation("KeyConditions must be a map")
    if pk not in spec:
        raise validation(f"Query condition missed key schema element: {pk}")
    cond = spec[pk]
    if not isinstance(cond, dict) or cond.get("ComparisonOperator") != "EQ":
        raise validation("Query key condition not supported")
    (value,) = _arg_values(pk, "EQ", cond)
    rest = [(a, c) for a, c in spec.items() if a != pk]
    if len(rest) > 1:
        raise validation("Conditions can be of length 1 or 2 only")
    if not rest:
        return value, None
    attr, c = rest[0]
    if not isinstance(c, dict) or c.get("ComparisonOperator") not in (
            "EQ", "LE", "LT", "GE", "GT", "BEGINS_WITH", "BETWEEN"):
        raise validation("Query key condition not supported")
    return value, comparison(b, attr, c["ComparisonOperator"], c)


def attribute_updates(b: Builder, spec: object) -> str | None:
    """``AttributeUpdates`` (PUT, DELETE, ADD per attribute) as an UpdateExpression."""
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise validation("AttributeUpdates must be a map")
    sets: list[str] = []
    removes: list[str] = []
    adds: list[str] = []
    deletes: list[str] = []
    for attr, upd in spec.items():
        if not isinstance(upd, dict):
            raise validation(f"AttributeUpdates for {attr} must be an object")
        action = upd.get("Action", "PUT")
        n = b.name(attr)
        has_value = "Value" in upd
        value = unmarshal(upd["Value"]) if has_value else None
        if action == "PUT":
            if not has_value:
                raise validation("One or more parameter values were invalid: Only DELETE action "
                                 f"is allowed when no attribute value is specified: {attr}")
            sets.append(f"{n} = {b.value(value)}")
        elif action == "DELETE":
            if has_value:
                deletes.append(f"{n} {b.value(value)}")
            else:
                removes.append(n)
        elif action == "ADD":
            if not has_value:
                raise validation("One or more parameter values were invalid: Only DELETE action "
                                 f"is allowed when no attribute value is specified: {attr}")
            if isinstance(value, list):  # legacy ADD appends to a list
                sets.append(f"{n} = list_append(if_not_exists({n}, {b.value([])}), "
                            f"{b.value(value)})")
            else:
                adds.append(f"{n} {b.value(value)}")
        else:
            raise validation(f"1 validation error detected: Value '{action}' at "
                             "'attributeUpdates.action' failed to satisfy constraint: Member "
                             "must satisfy enum value set: [ADD, PUT, DELETE]")
    clauses = [(kw, parts) for kw, parts in (("SET", sets), ("REMOVE", removes),
                                             ("ADD", adds), ("DELETE", deletes)) if parts]
    return " ".join(f"{kw} {', '.join(parts)}" for kw, parts in clauses) or None


def attributes_to_get(b: Builder, spec: object) -> str | None:
    """``AttributesToGet`` as a ProjectionExpression."""
    if spec is None:
        return None
    if not isinstance(spec, list) or not spec or not all(isinstance(a, str) for a in spec):
        raise validation("AttributesToGet must be a non-empty list of attribute names")
    if len(set(spec)) != len(spec):
        raise validation("One or more parameter values were invalid: Duplicate value in "
                         "attribute name: " + next(a for a in spec if spec.count(a) > 1))
    return ", ".join(b.name(a) for a in spec)
