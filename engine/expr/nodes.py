"""The expression tree, and its printer.

Trees are immutable (frozen dataclasses of tuples) because parsed trees are cached and shared.
A tree straight from the parser holds placeholders: path elements spelled ``#name`` and
:class:`Value` nodes. :func:`engine.expr.bind.bind` resolves them, giving a tree of the same
classes whose paths hold real attribute names and whose values are :class:`Literal` nodes.
Printing an unbound tree and parsing the text again gives an equal tree (a tested law).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "And", "Arith", "Between", "Compare", "Cond", "Func", "In", "Literal", "Not", "Operand",
    "Or", "Path", "Projection", "SetAction", "Update", "Value", "to_text",
]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True, slots=True)
class Path:
    """A document path: an attribute name, then map keys (``str``) and list indexes (``int``)."""

    elems: tuple[str | int, ...]

    @property
    def top(self) -> str:
        first = self.elems[0]
        assert isinstance(first, str)
        return first

    def __str__(self) -> str:
        out = ""
        for e in self.elems:
            if isinstance(e, int):
                out += f"[{e}]"
            else:
                name = e if e.startswith("#") or _IDENT.match(e) else repr(e)
                out += name if not out else "." + name
        return out


@dataclass(frozen=True, slots=True)
class Value:
    """A ``:name`` value placeholder (unbound trees only)."""

    name: str


@dataclass(frozen=True, slots=True)
class Literal:
    """A bound value (bound trees only)."""

    value: Any
    name: str = ""  # the placeholder it came from, for messages


@dataclass(frozen=True, slots=True)
class Func:
    """A function call: ``size``, ``if_not_exists``, ``list_append`` as operands;
    ``attribute_exists``, ``attribute_not_exists``, ``attribute_type``, ``begins_with``,
    ``contains`` as conditions."""

    name: str
    args: tuple[Operand, ...]


@dataclass(frozen=True, slots=True)
class Arith:
    """``left + right`` or ``left - right`` (SET values only)."""

    op: str
    left: Operand
    right: Operand


Operand = Path | Value | Literal | Func | Arith


@dataclass(frozen=True, slots=True)
class Compare:
    op: str  # = <> < <= > >=
    left: Operand
    right: Operand


@dataclass(frozen=True, slots=True)
class Between:
    operand: Operand
    low: Operand
    high: Operand


@dataclass(frozen=True, slots=True)
class In:
    operand: Operand
    options: tuple[Operand, ...]


@dataclass(frozen=True, slots=True)
class And:
    left: Cond
    right: Cond


@dataclass(frozen=True, slots=True)
class Or:
    left: Cond
    right: Cond


@dataclass(frozen=True, slots=True)
class Not:
    operand: Cond


Cond = Compare | Between | In | And | Or | Not | Func


@dataclass(frozen=True, slots=True)
class SetAction:
    path: Path
    value: Operand


@dataclass(frozen=True, slots=True)
class Update:
    """An UpdateExpression: its four clauses, each in the order written."""

    set: tuple[SetAction, ...] = ()
    remove: tuple[Path, ...] = ()
    add: tuple[tuple[Path, Operand], ...] = ()
    delete: tuple[tuple[Path, Operand], ...] = ()

    def paths(self) -> list[Path]:
        """Every path the update writes, in clause order."""
        return ([a.path for a in self.set] + list(self.remove) + [p for p, _ in self.add]
                + [p for p, _ in self.delete])


@dataclass(frozen=True, slots=True)
class Projection:
    paths: tuple[Path, ...]


Node = Cond | Operand | Update | Projection


def _operand(node: Operand) -> str:
    if isinstance(node, Path):
        return str(node)
    if isinstance(node, Value):
        return node.name
    if isinstance(node, Literal):
        return node.name or repr(node.value)
    if isinstance(node, Func):
        return f"{node.name}({', '.join(_operand(a) for a in node.args)})"
    return f"{_operand(node.left)} {node.op} {_operand(node.right)}"


def _level(node: Cond) -> int:
    """Binding strength: OR < AND < NOT < everything else."""
    return 1 if isinstance(node, Or) else 2 if isinstance(node, And) else \
        3 if isinstance(node, Not) else 4


def _cond(node: Cond) -> str:
    if isinstance(node, Compare):
        return f"{_operand(node.left)} {node.op} {_operand(node.right)}"
    if isinstance(node, Between):
        return f"{_operand(node.operand)} BETWEEN {_operand(node.low)} AND {_operand(node.high)}"
    if isinstance(node, In):
        return f"{_operand(node.operand)} IN ({', '.join(_operand(o) for o in node.options)})"
    if isinstance(node, Func):
        return _operand(node)
    if isinstance(node, Not):
        return f"NOT {_wrap(node.operand, _level(node.operand) < 3)}"
    word, level = ("AND", 2) if isinstance(node, And) else ("OR", 1)
    # chains are left-associative: a right operand of the same strength keeps its parentheses
    return (f"{_wrap(node.left, _level(node.left) < level)} {word} "
            f"{_wrap(node.right, _level(node.right) <= level)}")


def _wrap(node: Cond, parenthesise: bool) -> str:
    text = _cond(node)
    return f"({text})" if parenthesise else text


def to_text(node: Node) -> str:
    """The expression text of a tree (placeholders as written; bound values by repr)."""
    if isinstance(node, Update):
        parts = []
        if node.set:
            parts.append("SET " + ", ".join(f"{a.path} = {_operand(a.value)}" for a in node.set))
        if node.remove:
            parts.append("REMOVE " + ", ".join(str(p) for p in node.remove))
        if node.add:
            parts.append("ADD " + ", ".join(f"{p} {_operand(v)}" for p, v in node.add))
        if node.delete:
            parts.append("DELETE " + ", ".join(f"{p} {_operand(v)}" for p, v in node.delete))
        return " ".join(parts)
    if isinstance(node, Projection):
        return ", ".join(str(p) for p in node.paths)
    if isinstance(node, (Compare, Between, In, And, Or, Not)):
        return _cond(node)
    return _operand(node)
