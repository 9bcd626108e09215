"""Binding: resolve a parsed tree's placeholders and check it before anything runs.

:class:`Expressions` holds one call's ``names=`` and ``values=`` and binds every expression of
that call against them, recording which placeholders were used, so that :meth:`Expressions.finish`
can apply DynamoDB's rule that an unused placeholder is an error across all expressions of one
request. Static checks that need the values (operand types of functions and operators, the
bounds of BETWEEN, the paths of an update) run here too: everything that can be known before
reading the item is refused before a transaction begins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import ValidationError
from .nodes import (
    And,
    Arith,
    Between,
    Compare,
    Cond,
    Func,
    In,
    Literal,
    Not,
    Operand,
    Or,
    Path,
    Projection,
    SetAction,
    Update,
    Value,
)
from .parser import parse
from .values import TYPES, compare, type_of

__all__ = ["Expressions", "format_path"]

_ORDERED = ("<", "<=", ">", ">=")


def format_path(path: Path) -> str:
    """A path as DynamoDB's messages print it: ``[a, b, [2]]``."""
    return "[" + ", ".join(f"[{e}]" if isinstance(e, int) else e for e in path.elems) + "]"


class Expressions:
    """The placeholders of one call, and the binder of its expressions.

    :param names: ``{"#n": "attribute name"}`` (ExpressionAttributeNames).
    :param values: ``{":v": value}`` (ExpressionAttributeValues), plain Python values.
    """

    def __init__(self, names: Mapping[str, str] | None = None,
                 values: Mapping[str, Any] | None = None) -> None:
        self.names = _check_names(names)
        self.values = _check_values(values)
        self._used_names: set[str] = set()
        self._used_values: set[str] = set()
        self._kind = ""

    # -- binding -----------------------------------------------------------------------

    def path(self, path: Path) -> Path:
        out: list[str | int] = []
        for e in path.elems:
            if isinstance(e, str) and e.startswith("#"):
                name = self.names.get(e)
                if name is None:
                    raise ValidationError(
                        f"Invalid {self._kind}: An expression attribute name used in the "
                        f"document path is not defined; attribute name: {e}")
                self._used_names.add(e)
                out.append(name)
            else:
                out.append(e)
        return Path(tuple(out))

    def operand(self, node: Operand) -> Operand:
        if isinstance(node, Path):
            return self.path(node)
        if isinstance(node, Value):
            if node.name not in self.values:
                raise ValidationError(
                    f"Invalid {self._kind}: An expression attribute value used in expression "
                    f"is not defined; attribute value: {node.name}")
            self._used_values.add(node.name)
            return Literal(self.values[node.name], node.name)
        if isinstance(node, Func):
            f = Func(node.name, tuple(self.operand(a) for a in node.args))
            self._check_func(f)
            return f
        if isinstance(node, Arith):
            a = Arith(node.op, self.operand(node.left), self.operand(node.right))
            for side in (a.left, a.right):
                self._literal_type(side, node.op, ("N",))
            return a
        return node

    def cond(self, node: Cond) -> Cond:
        if isinstance(node, Compare):
            c = Compare(node.op, self.operand(node.left), self.operand(node.right))
            if c.op in _ORDERED:
                for side in (c.left, c.right):
                    self._literal_type(side, c.op, ("S", "N", "B"))
            return c
        if isinstance(node, Between):
            b = Between(self.operand(node.operand), self.operand(node.low),
                        self.operand(node.high))
            self._check_between(b)
            return b
        if isinstance(node, In):
            return In(self.operand(node.operand), tuple(self.operand(o) for o in node.options))
        if isinstance(node, And):
            return And(self.cond(node.left), self.cond(node.right))
        if isinstance(node, Or):
            return Or(self.cond(node.left), self.cond(node.right))
        if isinstance(node, Not):
            return Not(self.cond(node.operand))
        f = self.operand(node)
        assert isinstance(f, Func)
        return f

    def bind_condition(self, text: str, kind: str = "ConditionExpression") -> Cond:
        """Parse (cached) and bind a condition, filter or key condition."""
        tree = parse(kind, text)
        assert not isinstance(tree, (Update, Projection))
        self._kind = kind
        return self.cond(tree)

    def bind_update(self, text: str, key_attributes: Iterable[str] = ()) -> Update:
        """Parse (cached) and bind an UpdateExpression, checking its paths and operands."""
        tree = parse("UpdateExpression", text)
        assert isinstance(tree, Update)
        self._kind = "UpdateExpression"
        bound = Update(
            set=tuple(SetAction(self.path(a.path), self.operand(a.value)) for a in tree.set),
            remove=tuple(self.path(p) for p in tree.remove),
            add=tuple((self.path(p), self.operand(v)) for p, v in tree.add),
            delete=tuple((self.path(p), self.operand(v)) for p, v in tree.delete),
        )
        for _p, v in bound.add:
            self._literal_type(v, "ADD", ("N", "SS", "NS", "BS"))
        for _p, v in bound.delete:
            self._literal_type(v, "DELETE", ("SS", "NS", "BS"))
        check_update_paths(bound.paths(), key_attributes)
        return bound

    def bind_projection(self, text: str) -> tuple[Path, ...]:
        """Parse (cached) and bind a ProjectionExpression; return its paths."""
        tree = parse("ProjectionExpression", text)
        assert isinstance(tree, Projection)
        self._kind = "ProjectionExpression"
        paths = tuple(self.path(p) for p in tree.paths)
        _check_overlaps(paths, "ProjectionExpression")
        return paths

    def finish(self) -> None:
        """Refuse placeholders no expression of this call used (DynamoDB's rule).

        :raises ValidationError: ``Value provided in ExpressionAttribute… unused …``.
        """
        unused = sorted(set(self.names) - self._used_names)
        if unused:
            raise ValidationError("Value provided in ExpressionAttributeNames unused in "
                                  f"expressions: keys: {{{', '.join(unused)}}}")
        unused = sorted(set(self.values) - self._used_values)
        if unused:
            raise ValidationError("Value provided in ExpressionAttributeValues unused in "
                                  f"expressions: keys: {{{', '.join(unused)}}}")

    # -- static checks -----------------------------------------------------------------

    def _literal_type(self, node: Operand, op: str, allowed: tuple[str, ...]) -> None:
        if isinstance(node, Literal):
            t = type_of(node.value)
            if t not in allowed:
                raise ValidationError(
                    f"Invalid {self._kind}: Incorrect operand type for operator or function; "
                    f"operator or function: {op}, operand type: "
                    f"{t or type(node.value).__name__}")

    def _check_func(self, f: Func) -> None:
        name, args = f.name, f.args
        if name in ("attribute_exists", "attribute_not_exists", "attribute_type") \
                and not isinstance(args[0], Path):
            raise ValidationError(f"Invalid {self._kind}: Operator or function requires a "
                                  f"document path; operator or function: {name}")
        if name == "attribute_type":
            t = args[1]
            if isinstance(t, Literal):
                if type_of(t.value) != "S":
                    self._literal_type(t, name, ("S",))
                if t.value not in TYPES:
                    raise ValidationError(
                        f"Invalid {self._kind}: Invalid attribute type name found; type: "
                        f"{t.value}, valid types: {{ B,NULL,SS,BOOL,L,BS,N,NS,S,M }}")
        elif name == "begins_with":
            for a in args:
                self._literal_type(a, name, ("S", "B"))
        elif name == "list_append":
            for a in args:
                self._literal_type(a, name, ("L",))

    def _check_between(self, b: Between) -> None:
        for side in (b.operand, b.low, b.high):
            self._literal_type(side, "BETWEEN", ("S", "N", "B"))
        lo, hi = b.low, b.high
        if isinstance(lo, Literal) and isinstance(hi, Literal) and \
                type_of(lo.value) == type_of(hi.value) and compare(">", lo.value, hi.value):
            raise ValidationError(
                f"Invalid {self._kind}: The BETWEEN operator requires upper bound to be "
                f"greater than or equal to lower bound; lower bound operand: {lo.value!r}, "
                f"upper bound operand: {hi.value!r}")


def check_update_paths(paths: list[Path], key_attributes: Iterable[str] = ()) -> None:
    """Refuse key attributes and overlapping or conflicting paths in one update."""
    keys = set(key_attributes)
    for p in paths:
        if p.top in keys:
            raise ValidationError(f"One or more parameter values were invalid: Cannot update "
                                  f"attribute {p.top}. This attribute is part of the key")
    _check_overlaps(paths, "UpdateExpression")


def _check_overlaps(paths: Iterable[Path], kind: str) -> None:
    by_top: dict[str, list[Path]] = {}
    for p in paths:
        by_top.setdefault(p.top, []).append(p)
    for group in by_top.values():
        for i, a in enumerate(group):
            for b in group[i + 1:]:
                _check_pair(a, b, kind)


def _check_pair(a: Path, b: Path, kind: str) -> None:
    for x, y in zip(a.elems, b.elems, strict=False):
        if x == y and type(x) is type(y):
            continue
        if isinstance(x, int) != isinstance(y, int):
            raise ValidationError(
                f"Invalid {kind}: Two document paths conflict with each other; must remove or "
                f"rewrite one of these paths; path one: {format_path(a)}, "
                f"path two: {format_path(b)}")
        return
    raise ValidationError(
        f"Invalid {kind}: Two document paths overlap with each other; must remove or rewrite "
        f"one of these paths; path one: {format_path(a)}, path two: {format_path(b)}")


def _check_names(names: Mapping[str, str] | None) -> dict[str, str]:
    if names is None:
        return {}
    if not isinstance(names, Mapping):
        raise ValidationError(f"names must be a dict of '#name': 'attribute', not "
                              f"{type(names).__name__}")
    for k, v in names.items():
        if not isinstance(k, str) or len(k) < 2 or k[0] != "#" \
                or not (k[1:].replace("_", "a").isalnum() and k[1:].isascii()):
            raise ValidationError(f"ExpressionAttributeNames contains invalid key: Syntax "
                                  f"error; key: \"{k}\"")
        if not isinstance(v, str) or not v:
            raise ValidationError(f"ExpressionAttributeNames contains invalid value: "
                                  f"{k} must name an attribute with a non-empty str, not {v!r}")
    return dict(names)


def _check_values(values: Mapping[str, Any] | None) -> dict[str, Any]:
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise ValidationError(f"values must be a dict of ':name': value, not "
                              f"{type(values).__name__}")
    for k in values:
        if not isinstance(k, str) or len(k) < 2 or k[0] != ":" \
                or not (k[1:].replace("_", "a").isalnum() and k[1:].isascii()):
            raise ValidationError(f"ExpressionAttributeValues contains invalid key: Syntax "
                                  f"error; key: \"{k}\"")
    return dict(values)
