"""The update planner: an UpdateExpression and the current item give one action per top-level
attribute (:class:`UpdateActions`), and projections of items onto paths.

Per-attribute last-writer-wins is per *top-level* attribute, so a nested edit (``SET
a.b[2] = :v``, ``REMOVE a.c``, ``ADD a.n :one``) is applied here to a copy of the attribute's
current value (read, modify, write inside the write transaction) and planned as a SET of the
whole attribute. Only top-level ``ADD`` and ``DELETE`` stay as such, so that the write path can
decide how they merge (:func:`engine.writepath.fold_add_delete`).

As DynamoDB does, every right-hand side is evaluated against the item as it was before the
update, and list elements removed by one update are named by their positions before it.
"""

from __future__ import annotations

import builtins
import copy
from dataclasses import dataclass, field
from typing import Any

from ..errors import ValidationError
from .evaluate import resolve, update_value
from .nodes import Literal, Path, Update
from .values import MISSING, add_value, delete_value

__all__ = ["UpdateActions", "plan_update", "project"]

_BAD_PATH = "The document path provided in the update expression is invalid for update"


@dataclass(slots=True)
class UpdateActions:
    """What an update does, per top-level attribute.

    :ivar set: attribute -> its whole new value (nested edits already applied).
    :ivar remove: attributes removed.
    :ivar add: attribute -> number to add, or set of elements to add (top-level ``ADD``).
    :ivar delete: attribute -> set of elements to delete (top-level ``DELETE``).
    :ivar paths: the document paths the update named, for ``UPDATED_OLD``/``UPDATED_NEW``.
    """

    set: dict[str, Any] = field(default_factory=dict)
    remove: builtins.set[str] = field(default_factory=builtins.set)
    add: dict[str, Any] = field(default_factory=dict)
    delete: dict[str, Any] = field(default_factory=dict)
    paths: tuple[Path, ...] = ()


def _literal(node: Any) -> Any:
    assert isinstance(node, Literal)
    return node.value


def plan_update(update: Update, item: dict[str, Any] | None) -> UpdateActions:
    """Plan a bound update against the current visible item (``None`` if there is none).

    :raises ValidationError: for a nested path into something missing or of the wrong kind,
        or an operand of the wrong type; the caller writes nothing.
    """
    old = item or {}
    # (kind, path, value) in clause order; right-hand sides all read the old item
    acts: list[tuple[str, Path, Any]] = [
        ("SET", a.path, update_value(a.value, old)) for a in update.set]
    acts += [("REMOVE", p, None) for p in update.remove]
    acts += [("ADD", p, _literal(v)) for p, v in update.add]
    acts += [("DELETE", p, _literal(v)) for p, v in update.delete]
    out = UpdateActions(paths=tuple(update.paths()))
    nested: dict[str, list[tuple[str, Path, Any]]] = {}
    for kind, path, value in acts:
        top = path.top
        if len(path.elems) > 1:
            nested.setdefault(top, []).append((kind, path, value))
        elif kind == "SET":
            out.set[top] = value
        elif kind == "REMOVE":
            out.remove.add(top)
        elif kind == "ADD":
            out.add[top] = value
        else:
            out.delete[top] = value
    for top, edits in nested.items():
        if top not in old:
            if all(kind == "REMOVE" for kind, _, _ in edits):
                continue  # nothing there to remove from
            raise ValidationError(_BAD_PATH)
        doc = copy.deepcopy(old[top])
        holder = {top: doc}
        removes = [p for kind, p, _ in edits if kind == "REMOVE"]
        for kind, path, value in edits:
            if kind != "REMOVE":
                _edit(holder, path, kind, value)
        # later list positions first, so that earlier positions still mean what they meant
        removes.sort(key=lambda p: [(0, e, "") if isinstance(e, int) else (1, 0, e)
                                    for e in p.elems], reverse=True)
        for path in removes:
            _edit(holder, path, "REMOVE", None)
        out.set[top] = holder[top]
    return out


def _parent(holder: dict[str, Any], path: Path, *, strict: bool) -> Any:
    cur: Any = holder
    for e in path.elems[:-1]:
        nxt = resolve(cur, (e,))
        if nxt is MISSING:
            if strict:
                raise ValidationError(_BAD_PATH)
            return MISSING
        cur = nxt
    return cur


def _edit(holder: dict[str, Any], path: Path, kind: str, value: Any) -> None:
    parent = _parent(holder, path, strict=kind != "REMOVE")
    last: Any = path.elems[-1]
    if parent is MISSING:
        return
    if isinstance(last, int) != isinstance(parent, list) or \
            not isinstance(parent, (list, dict)):
        raise ValidationError(_BAD_PATH)
    present = last < len(parent) if isinstance(last, int) else last in parent
    if kind == "REMOVE":
        if present:
            del parent[last]
        return
    if kind == "SET":
        new = value
    elif kind == "ADD":
        new = add_value(parent[last] if present else MISSING, value)
    else:
        new = delete_value(parent[last] if present else MISSING, value)
        if new is MISSING:
            if present:
                del parent[last]
            return
    if isinstance(parent, list) and not present:
        parent.append(new)  # DynamoDB appends past the end of a list
    else:
        parent[last] = new


def project(item: dict[str, Any] | None, paths: tuple[Path, ...]) -> dict[str, Any] | None:
    """The parts of ``item`` named by ``paths`` (a ProjectionExpression), nesting kept.

    List elements selected by index come back as a shorter list, in index order, as DynamoDB
    returns them. An item with none of the paths projects to ``{}``.
    """
    if item is None:
        return None
    out: dict[Any, Any] = {}
    for path in paths:
        value = resolve(item, path.elems)
        if value is MISSING:
            continue
        cur = out
        for e, nxt in zip(path.elems, path.elems[1:], strict=False):
            child = cur.get(e)
            if child is None:
                child = cur[e] = _Picked() if isinstance(nxt, int) else {}
            cur = child
        cur[path.elems[-1]] = copy.deepcopy(value)
    return _materialize(out)  # type: ignore[no-any-return]


class _Picked(dict[int, Any]):
    """List elements picked by index, while a projection is built."""


def _materialize(node: Any) -> Any:
    if isinstance(node, _Picked):
        return [_materialize(node[i]) for i in sorted(node)]
    if isinstance(node, dict) and any(isinstance(v, dict) for v in node.values()):
        return {k: _materialize(v) for k, v in node.items()}
    return node
