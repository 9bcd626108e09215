"""Wire forms of the counter and set parts of items and changes (store format 3, segment
format 2): encoding, decoding and the checks applied to what peers send.

State ``ext`` (the 7th element of a stored state, :mod:`engine.codec`)::

    {name: [obs_hlc, obs_node, obs, incs, elems]}
    obs, incs = [[origin, hlc, total], ...]       ascending origin, one per origin that added
    elems     = [[element, hlc, node, present], ...]   canonical order of the element

Op ``ext`` (the optional last element of a P, U or D op)::

    {"a": {name: [n, total] | [n, total, prev_hlc]}, "s": {name: [element, ...]},
     "d": {name: [element, ...]}, "o": {name: [[origin, hlc, total], ...]}, "t": true}

Every key is optional; an op without ext has none of them. ``t`` marks a TTL delete. An
ADD's ``prev_hlc`` is the hlc of the writer's chain entry it replaced, written when there was
one (:attr:`engine.item.WriteExt.prev`); builds before it refuse a three-element ADD.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from .checks import check_u64 as _check_u64
from .clock import Version
from .codec import canonical, check_attr_name, check_value
from .errors import ValidationError
from .item import NO_EXT, Extra, WriteExt, set_element

__all__ = ["check_state_ext", "extra_obj", "extra_wire", "op_ext", "op_ext_wire", "op_wire",
           "totals_wire"]


def totals_wire(totals: Mapping[int, tuple[int, Any]]) -> list[list[Any]]:
    return [[o, totals[o][0], totals[o][1]] for o in sorted(totals)]


def extra_wire(e: Extra) -> list[Any]:
    elems = sorted(([el, v[0], v[1], present] for el, (v, present) in e.elems.items()),
                   key=lambda row: canonical(row[0])) if e.elems else []
    return [e.obs_v[0], e.obs_v[1], totals_wire(e.obs), totals_wire(e.incs), elems]


def extra_obj(w: list[Any]) -> Extra:
    return Extra((w[0], w[1]), {o: (h, t) for o, h, t in w[2]}, {o: (h, t) for o, h, t in w[3]},
                 {el: ((h, n), present) for el, h, n, present in w[4]})


_SMALL = 1 << 63


def _check_number(v: Any, what: str) -> None:
    if type(v) is int and -_SMALL < v < _SMALL:
        return  # the usual total or amount
    if isinstance(v, bool) or not isinstance(v, (int, float, Decimal)):
        raise ValidationError(f"{what} is not a number: {v!r:.60}")
    check_value(v, what)


def _check_totals(rows: Any, what: str) -> None:
    if not isinstance(rows, list):
        raise ValidationError(f"{what} is not an array")
    last = 0
    for row in rows:
        if not isinstance(row, list) or len(row) != 3:
            raise ValidationError(f"{what}: an entry is [origin, hlc, total]")
        o = _check_u64(row[0], f"{what} origin")
        if o <= last:
            raise ValidationError(f"{what}: origins are not ascending non-zero node ids")
        last = o
        _check_u64(row[1], f"{what} hlc")
        _check_number(row[2], f"{what} total")


def _check_element(el: Any, what: str) -> None:
    if isinstance(el, bool) or not isinstance(el, (str, bytes, int, float, Decimal)):
        raise ValidationError(f"{what}: set elements are strings, numbers or bytes: {el!r:.60}")
    check_value(el, what)


def check_state_ext(ext: Any, cleared: Version, where: str) -> None:
    if not isinstance(ext, dict):
        raise ValidationError("ext is not a map")
    for name, w in ext.items():
        check_attr_name(name, where)
        if not isinstance(w, list) or len(w) != 5:
            raise ValidationError(f"ext {name!r} is not [obs_hlc, obs_node, obs, incs, elems]")
        _check_u64(w[0], "obs hlc")
        _check_u64(w[1], "obs node")
        _check_totals(w[2], f"ext {name!r} obs")
        _check_totals(w[3], f"ext {name!r} incs")
        if not isinstance(w[4], list):
            raise ValidationError(f"ext {name!r} elems is not an array")
        seen = set()
        for row in w[4]:
            if not isinstance(row, list) or len(row) != 4 or type(row[3]) is not bool:
                raise ValidationError(f"ext {name!r}: an element is [element, hlc, node, bool]")
            _check_element(row[0], f"{where}: attribute {name!r}")
            _check_u64(row[1], "element hlc")
            _check_u64(row[2], "element node")
            if (row[1], row[2]) < cleared:
                raise ValidationError(f"ext {name!r}: element older than the clear point")
            if row[0] in seen or set_element(row[0]) != row[0] \
                    or type(set_element(row[0])) is not type(row[0]):
                raise ValidationError(f"ext {name!r}: element {row[0]!r:.40} is not canonical "
                                      "or appears twice")
            seen.add(row[0])



_EXT_KEYS = frozenset("asdot")


def op_ext_wire(ext: WriteExt, ttl: bool = False) -> dict[str, Any] | None:
    """The ``ext`` element of an op, or ``None`` when it carries nothing."""
    out: dict[str, Any] = {}
    if ext.add:
        prev = ext.prev
        out["a"] = {name: [n, total, prev[name]] if prev.get(name) else [n, total]
                    for name, (n, total) in ext.add.items()}
    if ext.add_elems:
        out["s"] = {name: sorted(els, key=canonical) for name, els in ext.add_elems.items()}
    if ext.del_elems:
        out["d"] = {name: sorted(els, key=canonical) for name, els in ext.del_elems.items()}
    if ext.observed:
        out["o"] = {name: totals_wire(obs) for name, obs in ext.observed.items()}
    if ttl:
        out["t"] = True
    return out or None


def op_ext(obj: Any, where: str, trusted: bool) -> tuple[WriteExt, bool]:
    """``(ext, ttl)`` from an op's ``ext`` element, checked unless ``trusted``."""
    if not trusted:
        if not isinstance(obj, dict) or not obj or not set(obj) <= _EXT_KEYS:
            raise ValidationError(f"{where}: op ext must be a non-empty map of a/s/d/o/t")
        for key in "asdo":
            part = obj.get(key, {})
            if not isinstance(part, dict):
                raise ValidationError(f"{where}: op ext {key!r} is not a map")
            for name, value in part.items():
                check_attr_name(name, where)
                _check_part(key, name, value, where)
        if obj.get("t", True) is not True:
            raise ValidationError(f"{where}: op ext 't' must be true")
        busy = [n for key in "asd" for n in obj.get(key, {})]
        if len(busy) != len(set(busy)):
            raise ValidationError(f"{where}: one attribute in two ADD/DELETE actions")
    adds = obj.get("a", {})
    ext = WriteExt(
        {name: (a[0], a[1]) for name, a in adds.items()},
        {name: frozenset(els) for name, els in obj.get("s", {}).items()},
        {name: frozenset(els) for name, els in obj.get("d", {}).items()},
        {name: {o: (h, t) for o, h, t in rows} for name, rows in obj.get("o", {}).items()},
        {name: a[2] for name, a in adds.items() if len(a) == 3},
    )
    return (ext if ext else NO_EXT), bool(obj.get("t", False))


def _check_part(key: str, name: str, value: Any, where: str) -> None:
    what = f"{where}: attribute {name!r}"
    if key == "a":
        if not isinstance(value, list) or len(value) not in (2, 3):
            raise ValidationError(f"{what}: an ADD is [n, total] or [n, total, prev_hlc]")
        _check_number(value[0], f"{what} ADD amount")
        _check_number(value[1], f"{what} ADD total")
        if len(value) == 3 and not _check_u64(value[2], f"{what} ADD prev_hlc"):
            raise ValidationError(f"{what}: an ADD's prev_hlc is not 0 (it is left out)")
    elif key in "sd":
        if not isinstance(value, list) or not value:
            raise ValidationError(f"{what}: set elements must be a non-empty array")
        for el in value:
            _check_element(el, what)
    else:
        _check_totals(value, f"{what} observed")



def op_wire(
    kind: str, table: str, key: bytes, attrs: dict[str, Any], remove: Sequence[str],
    seen: tuple[int, int], ext: WriteExt = NO_EXT, ttl: bool = False,
) -> list[Any]:
    """The wire form of a P, U or D op (see the module docstring of :mod:`engine.codec`)."""
    if kind == "P":
        row: list[Any] = ["P", table, key, attrs, seen[0], seen[1]]
    elif kind == "U":
        row = ["U", table, key, attrs, list(remove), seen[0], seen[1]]
    else:
        row = ["D", table, key, seen[0], seen[1]]
    extw = op_ext_wire(ext, ttl)
    if extw is not None:
        row.append(extw)
    return row
