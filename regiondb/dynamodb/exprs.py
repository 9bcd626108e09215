"""The expressions of one request, gathered for the native API (``engine.expr`` evaluates).

:func:`gather` reads ``ExpressionAttributeNames``/``ExpressionAttributeValues`` (values
unmarshalled to plain Python), the expression parameters, and the legacy parameters rewritten
by :mod:`regiondb.dynamodb.legacy`, and returns :class:`Exprs` whose fields are the native
keyword arguments (``condition=``, ``expression=``, ``filter=``, ``projection=``, ``names=``,
``values=``). :func:`split_key_condition` takes a KeyConditionExpression apart into the
partition key's value (the native ``query``'s first argument) and the sort-key condition (its
``key=``): it only finds the top-level ``pk = :v`` term; every other part of the expression is
left to the engine to parse and check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from . import legacy
from .errors import serialization, validation
from .values import unmarshal

__all__ = ["Exprs", "gather", "split_key_condition"]


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


_TOKEN = re.compile(r"\s*(?:(?P<word>[#:]?[A-Za-z0-9_.\-]+)|(?P<op><>|<=|>=|[=<>(),]))")


def _tokens(text: str) -> list[tuple[str, int, int]]:
    out = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            if text[pos:].strip():
                return []  # not ours to judge: the engine reports the syntax error
            break
        tok = m.group("word") or m.group("op")
        out.append((tok, m.start(m.lastgroup or 0), m.end()))
        pos = m.end()
    return out


def _split_and(tokens: list[tuple[str, int, int]]) -> list[list[tuple[str, int, int]]]:
    """Top-level AND-separated parts (an AND inside BETWEEN … AND … belongs to it)."""
    parts: list[list[tuple[str, int, int]]] = [[]]
    depth = 0
    between = False
    for t in tokens:
        word = t[0].upper()
        if t[0] == "(":
            depth += 1
        elif t[0] == ")":
            depth -= 1
        if depth == 0 and word == "BETWEEN":
            between = True
        if depth == 0 and word == "AND":
            if between:
                between = False
            else:
                parts.append([])
                continue
        parts[-1].append(t)
    return parts


def _strip_parens(part: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    while len(part) >= 2 and part[0][0] == "(" and part[-1][0] == ")":
        part = part[1:-1]
    return part


def split_key_condition(text: str, pk: str, ex: Exprs) -> tuple[Any, str | None]:
    """``(partition key value, sort-key condition text or None)`` of a KeyConditionExpression.

    Placeholders used only by the partition-key term are removed from ``ex`` (the engine
    would otherwise call them unused).

    :raises DynamoDBError: ``Query condition missed key schema element`` when there is no
        ``pk = :value`` term.
    """
    names = ex.names or {}
    tokens = _tokens(text)
    parts = _split_and(_strip_parens(tokens))
    found: tuple[Any, list[tuple[str, int, int]]] | None = None
    for part in parts:
        inner = _strip_parens(part)
        if len(inner) != 3 or inner[1][0] != "=":
            continue
        a, b = inner[0][0], inner[2][0]
        if b.startswith(":") and not a.startswith(":"):
            attr, val = a, b
        elif a.startswith(":") and not b.startswith(":"):
            attr, val = b, a
        else:
            continue
        if names.get(attr, attr) == pk:
            if val not in (ex.values or {}):
                raise validation("Invalid KeyConditionExpression: An expression attribute value "
                                 f"used in expression is not defined; attribute value: {val}")
            found = ((ex.values or {})[val], part)
            break
    if found is None:
        raise validation(f"Query condition missed key schema element: {pk}")
    value, pk_part = found
    rest = [p for p in parts if p is not pk_part]
    sk_text = " AND ".join(text[p[0][1]:p[-1][2]] for p in rest if p) or None
    used = {t[0] for p in rest for t in p}
    for tok in {t[0] for t in pk_part}:
        if tok.startswith("#") and ex.names and tok not in used and not _mentioned(ex, tok):
            ex.names.pop(tok, None)
        if tok.startswith(":") and ex.values and tok not in used and not _mentioned(ex, tok):
            ex.values.pop(tok, None)
    if ex.names == {}:
        ex.names = None
    if ex.values == {}:
        ex.values = None
    return value, sk_text


def _mentioned(ex: Exprs, token: str) -> bool:
    pattern = re.compile(re.escape(token) + r"(?![A-Za-z0-9_])")
    return any(t and pattern.search(t) for t in (ex.filter, ex.projection, ex.condition))
