"""Evaluation: bound trees compiled into closures over item dicts.

A condition compiles once per call into a tree of closures (faster than walking the tree for
each item of a scan) that takes the item, or ``None`` for a missing one, and returns a bool.
Operands evaluate to a value or :data:`~engine.expr.values.MISSING`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from ..errors import ValidationError
from .nodes import And, Arith, Between, Compare, Cond, Func, In, Literal, Not, Operand, Or, Path
from .numbers import add, subtract
from .values import MISSING, compare, contains, size, type_of

__all__ = ["Predicate", "compile_cond", "compile_operand", "resolve", "update_value"]

Predicate = Callable[[dict[str, Any] | None], bool]
Getter = Callable[[dict[str, Any]], Any]
_EMPTY: dict[str, Any] = {}
_WRONG_TYPE = "An operand in the update expression has an incorrect data type"


def resolve(item: Any, elems: tuple[str | int, ...]) -> Any:
    """The value at a document path, or ``MISSING``."""
    cur = item
    for e in elems:
        if isinstance(e, int):
            if not isinstance(cur, list) or e >= len(cur):
                return MISSING
            cur = cur[e]
        else:
            if not isinstance(cur, dict):
                return MISSING
            cur = cur.get(e, MISSING)
            if cur is MISSING:
                return MISSING
    return cur


def compile_operand(node: Operand) -> Getter:
    """A function of the item giving the operand's value (``MISSING`` where there is none)."""
    if isinstance(node, Literal):
        value = node.value
        return lambda item: value
    if isinstance(node, Path):
        elems = node.elems
        if len(elems) == 1:
            name = elems[0]
            assert isinstance(name, str)
            return lambda item: item.get(name, MISSING)
        return lambda item: resolve(item, elems)
    if isinstance(node, Func) and node.name == "size":
        arg = compile_operand(node.args[0])
        return lambda item: size(arg(item))
    raise AssertionError(f"not a condition operand: {node!r}")  # the parser refuses these


def compile_cond(node: Cond) -> Predicate:
    """Compile a bound condition into ``f(item_or_None) -> bool``."""
    inner = _compile(node)

    def predicate(item: dict[str, Any] | None) -> bool:
        return inner(_EMPTY if item is None else item)

    return predicate


def _compile(node: Cond) -> Callable[[dict[str, Any]], bool]:
    if isinstance(node, Compare):
        return _compile_compare(node)
    if isinstance(node, And):
        a, b = _compile(node.left), _compile(node.right)
        return lambda item: a(item) and b(item)
    if isinstance(node, Or):
        a, b = _compile(node.left), _compile(node.right)
        return lambda item: a(item) or b(item)
    if isinstance(node, Not):
        a = _compile(node.operand)
        return lambda item: not a(item)
    if isinstance(node, Between):
        x, lo, hi = (compile_operand(o) for o in (node.operand, node.low, node.high))

        def between(item: dict[str, Any]) -> bool:
            v = x(item)
            return compare(">=", v, lo(item)) and compare("<=", v, hi(item))

        return between
    if isinstance(node, In):
        x = compile_operand(node.operand)
        options = [compile_operand(o) for o in node.options]

        def member(item: dict[str, Any]) -> bool:
            v = x(item)
            return v is not MISSING and any(compare("=", v, o(item)) for o in options)

        return member
    return _compile_func(node)


_PY_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "<>": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge}


def _compile_compare(node: Compare) -> Callable[[dict[str, Any]], bool]:
    op = node.op
    left, right = compile_operand(node.left), compile_operand(node.right)
    if isinstance(node.right, Literal) and type(node.right.value) in (str, int, bytes):
        # the common ``attr <op> :literal`` of a plain str, int or bytes: when the attribute
        # holds the same exact type, Python's comparison is DynamoDB's; anything else
        # (floats, Decimals, bools, other types, missing) takes the general rules
        want, kind, fast = node.right.value, type(node.right.value), _PY_OPS[op]

        def compare_literal(item: dict[str, Any]) -> bool:
            v = left(item)
            if type(v) is kind:
                return fast(v, want)
            return compare(op, v, want)

        return compare_literal
    return lambda item: compare(op, left(item), right(item))


def _compile_func(node: Func) -> Callable[[dict[str, Any]], bool]:
    name = node.name
    args = [compile_operand(a) for a in node.args]
    if name == "attribute_exists":
        a = args[0]
        return lambda item: a(item) is not MISSING
    if name == "attribute_not_exists":
        a = args[0]
        return lambda item: a(item) is MISSING
    if name == "attribute_type":
        a, t = args
        return lambda item: type_of(a(item)) == t(item)
    if name == "begins_with":
        a, prefix = args

        def begins(item: dict[str, Any]) -> bool:
            v, p = a(item), prefix(item)
            if isinstance(v, str):
                return isinstance(p, str) and v.startswith(p)
            return isinstance(v, bytes) and isinstance(p, bytes) and v.startswith(p)

        return begins
    if name == "contains":
        a, b = args
        return lambda item: contains(a(item), b(item))
    raise ValidationError(f"Invalid ConditionExpression: The function is not allowed in a "
                          f"condition; function: {name}")


def update_value(node: Operand, item: dict[str, Any]) -> Any:
    """The value of a SET right-hand side, against the item as it was before the update.

    :raises ValidationError: for a path that does not exist, or operands of the wrong type.
    """
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Path):
        v = resolve(item, node.elems)
        if v is MISSING:
            raise ValidationError("The provided expression refers to an attribute that does "
                                  f"not exist in the item; path: {node}")
        return v
    if isinstance(node, Arith):
        a, b = update_value(node.left, item), update_value(node.right, item)
        if type_of(a) != "N" or type_of(b) != "N":
            raise ValidationError(_WRONG_TYPE + f"; operator: {node.op}")
        return add(a, b) if node.op == "+" else subtract(a, b)
    assert isinstance(node, Func)
    if node.name == "if_not_exists":
        path = node.args[0]
        assert isinstance(path, Path)
        v = resolve(item, path.elems)
        return update_value(node.args[1], item) if v is MISSING else v
    if node.name == "list_append":
        a, b = update_value(node.args[0], item), update_value(node.args[1], item)
        if not isinstance(a, list) or not isinstance(b, list):
            raise ValidationError(_WRONG_TYPE + "; operator or function: list_append")
        return a + b
    raise ValidationError(f"Invalid UpdateExpression: The function is not allowed in an "
                          f"update expression; function: {node.name}")
