"""KeyConditionExpression: the one shape DynamoDB allows, taken apart for a range read.

``pk = :v``, optionally ``AND`` one sort-key condition: ``=``, ``<``, ``<=``, ``>``, ``>=``,
``BETWEEN :a AND :b`` or ``begins_with(sk, :p)``, with the key attribute on the left and
values on the right. regiondb's ``query(pk, key=…)`` also takes the sort-key condition alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ValidationError
from .nodes import And, Between, Compare, Cond, Func, Literal, Path

__all__ = ["KeyCondition", "KeyPart", "key_parts"]

_KIND = "Invalid KeyConditionExpression"


@dataclass(frozen=True, slots=True)
class KeyPart:
    """One condition on one key attribute: ``op`` is ``=``, ``<``, ``<=``, ``>``, ``>=``,
    ``BETWEEN`` (two values) or ``begins_with``."""

    attribute: str
    op: str
    values: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class KeyCondition:
    """The parts of a key condition, one per key attribute (one or two)."""

    parts: tuple[KeyPart, ...]

    def part(self, attribute: str) -> KeyPart | None:
        """The condition on ``attribute``, if any."""
        for p in self.parts:
            if p.attribute == attribute:
                return p
        return None


def _attribute(node: Any) -> str:
    if not isinstance(node, Path) or len(node.elems) != 1:
        raise ValidationError(f"{_KIND}: the left side of a key condition must be a key "
                              "attribute name")
    name = node.elems[0]
    assert isinstance(name, str)
    return name


def _value(node: Any) -> Any:
    if not isinstance(node, Literal):
        raise ValidationError(f"{_KIND}: a key condition compares a key attribute with "
                              "values (:placeholders)")
    return node.value


def _part(node: Cond) -> KeyPart:
    if isinstance(node, Compare):
        if node.op == "<>":
            raise ValidationError(f"{_KIND}: Invalid operator used in KeyConditionExpression: "
                                  "<>")
        return KeyPart(_attribute(node.left), node.op, (_value(node.right),))
    if isinstance(node, Between):
        return KeyPart(_attribute(node.operand), "BETWEEN",
                       (_value(node.low), _value(node.high)))
    if isinstance(node, Func) and node.name == "begins_with":
        return KeyPart(_attribute(node.args[0]), "begins_with", (_value(node.args[1]),))
    word = type(node).__name__.upper() if not isinstance(node, Func) else node.name
    raise ValidationError(f"{_KIND}: Invalid operator used in KeyConditionExpression: {word}")


def key_parts(tree: Cond) -> KeyCondition:
    """Take a bound key condition apart. :raises ValidationError: for any other shape."""
    nodes = [tree.left, tree.right] if isinstance(tree, And) else [tree]
    parts = tuple(_part(n) for n in nodes)
    if len(parts) == 2 and parts[0].attribute == parts[1].attribute:
        raise ValidationError(f"{_KIND}: KeyConditionExpressions must only contain one "
                              f"condition per key; attribute: {parts[0].attribute}")
    return KeyCondition(parts)
