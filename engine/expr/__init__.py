"""DynamoDB's expression language: parse, check, evaluate. Pure: no I/O, no store.

Condition, filter, key-condition, update and projection expressions are parsed once (an LRU
cache keyed by the text), bound against one call's ``names=``/``values=`` placeholders by
:class:`Expressions` (which also applies the unused-placeholder rule across all expressions of
the call), and evaluated against plain item dicts.

>>> from engine.expr import compile_condition
>>> ok = compile_condition("#s = :s AND size(items) > :n",
...                        names={"#s": "status"}, values={":s": "NEW", ":n": 1})
>>> ok({"status": "NEW", "items": [1, 2]}), ok(None)
(True, False)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .bind import Expressions, check_update_paths, format_path
from .evaluate import Predicate, compile_cond, resolve
from .keycond import KeyCondition, KeyPart, key_parts
from .nodes import Path, Update, to_text
from .numbers import MAX_DIGITS, check_number
from .parser import CACHE_SIZE, KINDS, MAX_EXPRESSION_BYTES, parse
from .update import UpdateActions, plan_update, project
from .values import MISSING, compare, type_of

__all__ = [
    "CACHE_SIZE", "KINDS", "MAX_DIGITS", "MAX_EXPRESSION_BYTES", "MISSING", "Expressions",
    "KeyCondition", "KeyPart", "Path", "Predicate", "Update", "UpdateActions",
    "check_number", "check_update_paths", "compare", "compile_cond", "compile_condition",
    "format_path", "key_parts", "parse", "plan_update", "project", "resolve", "to_text",
    "type_of", "update_actions",
]


def compile_condition(text: str, names: Mapping[str, str] | None = None,
                      values: Mapping[str, Any] | None = None, *,
                      kind: str = "ConditionExpression") -> Predicate:
    """Compile one condition (or filter) alone: ``f(item_or_None) -> bool``.

    Applies the unused-placeholder rule to this expression only; a call with several
    expressions binds them all with one :class:`Expressions` and calls ``finish()``.
    """
    ex = Expressions(names, values)
    predicate = compile_cond(ex.bind_condition(text, kind))
    ex.finish()
    return predicate


def update_actions(
    set_: Mapping[str, Any] | None = None, remove: Iterable[str] = (),
    add: Mapping[str, Any] | None = None, delete: Mapping[str, Any] | None = None,
) -> UpdateActions:
    """The actions of the keyword clauses ``set=``/``remove=``/``add=``/``delete=`` (top-level
    attribute names only; the caller has validated names and values)."""
    set_ = dict(set_ or {})
    add = dict(add or {})
    delete = dict(delete or {})
    removed = set(remove)
    paths = tuple(Path((n,)) for n in (*set_, *removed, *add, *delete))
    return UpdateActions(set_, removed, add, delete, paths)
