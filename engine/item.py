"""The item CRDT: per-attribute last-writer-wins with a clear point. Pure functions, no I/O.

State of one item::

    cleared : Version             the last put/delete; attributes older than it are gone (⊥ if none)
    attrs   : name -> (Version, value | ABSENT)

A change (delta) is itself a state fragment whose entries all carry the change's version, so
applying a change *is* ``merge``. ``merge`` takes the larger ``cleared``, for each attribute
the entry with the larger version, then drops every entry below ``cleared``. It is
commutative, associative and idempotent; entries with equal versions (which only a hostile
or buggy peer could make differ) are ordered by their canonical encoding, so even then every
replica picks the same one.

Key attributes are ordinary present attributes written by every put and update, so they
double as the existence marker: an item is visible while any attribute is present, and a
state with none is a tombstone. Tombstones (the cleared point and ``ABSENT`` entries) are kept
until the store learns they are causally stable and ``purge`` drops them.

Conflicts. Each change also carries ``seen``: the largest version in the item as its writer
had it. An entry whose version is above ``seen`` is one the writer provably had not seen, so
when such an entry and the change overwrite one another the loss is a real concurrent-write
conflict and ``merge_change`` reports it. Entries at or below ``seen`` never produce one, which
keeps detection free of false positives (it can miss a concurrent write that has a lower
version than something the writer had seen).

Counters and sets (merge types beyond last-writer-wins). An attribute may also have an
:class:`Extra` beside its register entry in ``attrs``:

    incs  : origin -> (hlc, total)    each origin's running total of its ADDs, at its latest ADD
    obs   : origin -> (hlc, total)    the totals the attribute's last reset (at ``obs_v``) had seen
    elems : element -> (version, present)   set elements added (True) or deleted (False)

``incs`` merge per origin by the larger hlc (an origin's ADDs form one chain, each total
including the earlier ones), so concurrent ADDs in any number of regions all count. A SET,
REMOVE, put or delete of a counter is a *reset*: it writes the register as usual and records,
in ``obs``, the totals it had observed. The counter reads as ``base + sum(incs - obs)`` — the
value set (0 if absent) plus exactly the ADDs the reset had not seen (observed-reset). A reset's
delta carries its observed totals as ``incs`` entries too, so ``incs`` never lag behind ``obs``.
``obs`` is a register of its own (the larger ``obs_v`` wins) and is dropped once the attribute's
register is newer than it. Elements merge per element by version (last writer wins per
element, an add beating a delete of the same version); elements older than the attribute's
register — a SET of the whole attribute, or a put/delete clear point — are dropped, so a SET
replaces a set like any value. Increments never conflict; a register value overwritten still
does. ``incs`` are never dropped, not even by a delete (an ADD the delete had not seen
survives it: it shows if the item is written again); one entry per origin that ever added.

An item is visible while a register attribute is present (the key attributes, which every put
and update writes); counters and sets then read as plain numbers and sets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Context, Decimal
from typing import Any, ClassVar, Final, NamedTuple

from .clock import BOTTOM, Version

__all__ = [
    "ABSENT",
    "AttrConflict",
    "Entry",
    "Extra",
    "ItemState",
    "WriteExt",
    "attribute_value",
    "counter_names",
    "delete_delta",
    "max_version",
    "merge",
    "merge_change",
    "num_add",
    "num_sub",
    "plan_write",
    "purge",
    "put_delta",
    "set_element",
    "update_delta",
    "visible",
]


class _Absent:
    """Marks an attribute removed at some version (an attribute tombstone)."""

    _instance: ClassVar[_Absent | None] = None

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"

    def __reduce__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()

Entry = tuple[Version, Any]
"""``(version, value)`` of one attribute; value may be ``ABSENT``."""


Total = tuple[int, Any]
"""``(hlc, total)`` of one origin's counter chain (its version is ``(hlc, origin)``)."""


@dataclass(slots=True)
class Extra:
    """Counter and set bookkeeping of one attribute (see the module docstring)."""

    obs_v: Version = BOTTOM
    obs: dict[int, Total] = field(default_factory=dict)
    incs: dict[int, Total] = field(default_factory=dict)
    elems: dict[Any, tuple[Version, bool]] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"Extra(obs_v={self.obs_v!r}, obs={self.obs!r}, incs={self.incs!r}, "
                f"elems={self.elems!r})")


@dataclass(slots=True)
class ItemState:
    """The full replicated state of one item (see the module docstring).

    ``seen`` is not part of the merged value: it is what the writer of the item's latest
    version had seen, kept so that a later, older change can be recognised as concurrent.
    ``extra`` holds the counter and set bookkeeping of the attributes that have any.
    """

    cleared: Version = BOTTOM
    attrs: dict[str, Entry] = field(default_factory=dict)
    seen: Version = BOTTOM
    extra: dict[str, Extra] = field(default_factory=dict)

    def __repr__(self) -> str:
        more = "" if self.seen == BOTTOM else f", seen={self.seen!r}"
        if self.extra:
            more += f", extra={self.extra!r}"
        return f"ItemState(cleared={self.cleared!r}, attrs={self.attrs!r}{more})"


class WriteExt(NamedTuple):
    """What a write carries beyond ``set``/``remove``: counter ADDs, set ADD/DELETE, resets.

    ``add`` maps a counter attribute to ``(n, total)``: the amount added and the writer's own
    running total after it (what merges). ``observed`` maps each counter the write resets to
    the totals it had seen. ``prev`` maps an added counter to the hlc of the writer's chain
    entry its ADD replaced (absent: none): never merged, it lets a re-identified node put its
    old chain back (:mod:`engine.relabel`). Built by :func:`plan_write` on the writer.
    """

    add: Mapping[str, tuple[Any, Any]] = {}
    add_elems: Mapping[str, frozenset[Any]] = {}
    del_elems: Mapping[str, frozenset[Any]] = {}
    observed: Mapping[str, Mapping[int, Total]] = {}
    prev: Mapping[str, int] = {}

    def __bool__(self) -> bool:
        return bool(self.add or self.add_elems or self.del_elems or self.observed)


NO_EXT: Final = WriteExt()


class AttrConflict(NamedTuple):
    """One attribute value lost to a concurrent write during ``merge_change``."""

    attribute: str
    winner: Version
    loser: Version
    value: Any          # the losing value
    winner_value: Any   # the surviving value (ABSENT if the attribute is gone)
    local_lost: bool    # True if the local value lost, False if the incoming one did


def put_delta(
    item: Mapping[str, Any], version: Version, seen: Version = BOTTOM, ext: WriteExt = NO_EXT
) -> ItemState:
    """The delta of ``put(item)``: clear everything older, set every attribute.

    ``ext.observed``: the counters the put resets (every counter the writer held).
    """
    delta = ItemState(version, {name: (version, value) for name, value in item.items()}, seen)
    if ext:
        _apply_ext(delta, ext, version)
    return delta


def update_delta(
    set_: Mapping[str, Any], remove: Iterable[str], version: Version, seen: Version = BOTTOM,
    ext: WriteExt = NO_EXT,
) -> ItemState:
    """The delta of ``update(set=…, remove=…, add=…, delete=…)``: no clear point, each named
    entry at ``version``; ``ext`` (from :func:`plan_write`) adds the counter and set parts.
    """
    attrs: dict[str, Entry] = {name: (version, value) for name, value in set_.items()}
    for name in remove:
        attrs[name] = (version, ABSENT)
    delta = ItemState(BOTTOM, attrs, seen)
    if ext:
        for name in ext.observed:
            # a reset that neither sets nor removes (a write recreating an invisible item)
            # still resets the register, so an older base value cannot show through
            attrs.setdefault(name, (version, ABSENT))
        _apply_ext(delta, ext, version)
    return delta


def delete_delta(version: Version, seen: Version = BOTTOM, ext: WriteExt = NO_EXT) -> ItemState:
    """The delta of ``delete``: clear everything at or below ``version``, reset counters."""
    delta = ItemState(version, {}, seen)
    if ext:
        _apply_ext(delta, ext, version)
    return delta


def _apply_ext(delta: ItemState, ext: WriteExt, version: Version) -> None:
    hlc, origin = version
    extra = delta.extra
    for name, obs in ext.observed.items():
        # the observed totals are entries of their chains too: incs never lag behind obs
        if obs:
            extra[name] = Extra(version, dict(obs), dict(obs))
    for name, (_, total) in ext.add.items():
        extra.setdefault(name, Extra()).incs[origin] = (hlc, total)
    for name, elements in ext.add_elems.items():
        elems = extra.setdefault(name, Extra()).elems
        for el in elements:
            elems[set_element(el)] = (version, True)
    for name, elements in ext.del_elems.items():
        elems = extra.setdefault(name, Extra()).elems
        for el in elements:
            elems[set_element(el)] = (version, False)


def counter_names(state: ItemState | None) -> list[str]:
    """The attributes of ``state`` that have counter increments (what a reset must observe)."""
    if state is None:
        return []
    return [name for name, e in state.extra.items() if e.incs]


def plan_write(
    local: ItemState | None, origin: int, *, add: Mapping[str, Any] | None = None,
    add_elems: Mapping[str, Iterable[Any]] | None = None,
    del_elems: Mapping[str, Iterable[Any]] | None = None,
    reset: Iterable[str] | None = None,
) -> WriteExt:
    """The :class:`WriteExt` of a local write by ``origin`` given its current state ``local``.

    ``add`` maps counter attributes to numbers to add; ``add_elems``/``del_elems`` map set
    attributes to elements; ``reset`` names the attributes the write sets or removes, or is
    ``None`` for a put or delete (which reset every counter). An update of an item that is not
    visible resets every counter as well: to its writer the item is new.
    """
    if local is None:
        local_extra: dict[str, Extra] = {}
    else:
        local_extra = local.extra
    counters = [name for name, e in local_extra.items() if e.incs]
    if counters:
        if reset is None or visible(local) is None:
            names: Iterable[str] = counters
        else:
            names = [name for name in reset if name in local_extra and local_extra[name].incs]
        observed = {name: dict(local_extra[name].incs) for name in names}
    else:
        observed = {}
    totals: dict[str, tuple[Any, Any]] = {}
    prev: dict[str, int] = {}
    for name, n in (add or {}).items():
        e = local_extra.get(name)
        # an origin's own chain is always current on the origin itself
        mine = e.incs.get(origin) if e is not None else None
        totals[name] = (n, n if mine is None else num_add(mine[1], n))
        if mine is not None:
            prev[name] = mine[0]
    return WriteExt(
        totals,
        {name: frozenset(v) for name, v in (add_elems or {}).items()},
        {name: frozenset(v) for name, v in (del_elems or {}).items()},
        observed,
        prev,
    )


# -- numbers and set elements ------------------------------------------------------------

_DECIMAL = Context(prec=38)  # DynamoDB's 38 significant digits


def _dec(x: Any) -> Decimal:
    if isinstance(x, Decimal):
        return x
    if isinstance(x, float):
        return Decimal(float.__repr__(x))  # the value's, whatever a subclass prints
    return Decimal(x)


def num_add(a: Any, b: Any) -> Any:
    """``a + b`` for counter arithmetic: exact for ints, else a 38-digit Decimal (as DynamoDB)."""
    if type(a) is int and type(b) is int:
        return a + b
    return _DECIMAL.add(_dec(a), _dec(b))


def num_sub(a: Any, b: Any) -> Any:
    """``a - b`` in counter arithmetic (as :func:`num_add`)."""
    if type(a) is int and type(b) is int:
        return a - b
    return _DECIMAL.subtract(_dec(a), _dec(b))


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float, Decimal)) and not isinstance(x, bool)


def set_element(el: Any) -> Any:
    """The one representation of a set element that merges per element.

    Numbers that are equal must be one element with one encoding on every replica (1, 1.0
    and Decimal("1.0") are the same DynamoDB number): integral ones become ``int``, others a
    normalized ``Decimal``. Strings and bytes are themselves.
    """
    if isinstance(el, (float, Decimal)) and not isinstance(el, bool):
        d = _dec(el)
        if d == d.to_integral_value():
            return int(d)
        return d.normalize(_DECIMAL)
    return el


def _tiebreak(a: Entry, b: Entry, order: Callable[[Any], bytes]) -> Entry:
    """Pick deterministically between two entries of equal version and different value."""
    if a[1] is ABSENT:
        return b
    if b[1] is ABSENT:
        return a
    return a if order(a[1]) >= order(b[1]) else b


_PLAIN = frozenset({str, bytes, int, bool, type(None)})


def _pick(a: Entry, b: Entry, order: Callable[[Any], bytes]) -> Entry:
    if a[0] != b[0]:
        return a if a[0] > b[0] else b
    x, y = a[1], b[1]
    if x is y:
        return a
    # Python equality is not enough: 1 == 1.0 == True and 0.0 == -0.0 encode differently, and
    # replicas must end up with byte-identical values. Only plain scalars of one type are safe.
    if type(x) is type(y) and type(x) in _PLAIN and x == y:
        return a
    return _tiebreak(a, b, order)


def merge(a: ItemState, b: ItemState, order: Callable[[Any], bytes]) -> ItemState:
    """Merge two states of one item. Commutative, associative, idempotent.

    ``order`` maps a value to bytes for the equal-version tie-break (the store passes its
    canonical CBOR encoder, :func:`engine.codec.canonical`; every replica must use the same);
    it is consulted only when two entries share a version.
    """
    cleared = a.cleared if a.cleared >= b.cleared else b.cleared
    attrs = {name: e for name, e in a.attrs.items() if e[0] >= cleared}
    for name, e in b.attrs.items():
        if e[0] < cleared:
            continue
        cur = attrs.get(name)
        attrs[name] = e if cur is None else _pick(cur, e, order)
    # the latest write's ``seen`` goes with the larger max version (ties: the larger seen)
    seen = a.seen if (max_version(a), a.seen) >= (max_version(b), b.seen) else b.seen
    if not (a.extra or b.extra):
        return ItemState(cleared, attrs, seen)
    extra: dict[str, Extra] = {}
    for name in sorted(a.extra.keys() | b.extra.keys()):
        reg = attrs.get(name)
        floor = cleared if reg is None else reg[0]  # the attribute's register version
        joined = _merge_extra(a.extra.get(name), b.extra.get(name), floor, order)
        if joined is not None:
            extra[name] = joined
    return ItemState(cleared, attrs, seen, extra)


def _same(x: Any, y: Any, order: Callable[[Any], bytes]) -> bool:
    return x is y or (type(x) is type(y) and x == y and order(x) == order(y))


def _merge_totals(
    x: dict[int, Total], y: dict[int, Total], order: Callable[[Any], bytes]
) -> dict[int, Total]:
    out = dict(x)
    for o, t in y.items():
        cur = out.get(o)
        if cur is None or t[0] > cur[0]:
            out[o] = t
        elif t[0] == cur[0] and not _same(t[1], cur[1], order) and order(t[1]) > order(cur[1]):
            out[o] = t  # one hlc, two totals: only a hostile peer; still deterministic
    return out


def _obs_key(e: Extra, order: Callable[[Any], bytes]) -> tuple[Version, bytes]:
    return e.obs_v, order(sorted([o, h, order(t)] for o, (h, t) in e.obs.items()))


def _merge_extra(
    x: Extra | None, y: Extra | None, floor: Version, order: Callable[[Any], bytes]
) -> Extra | None:
    """Join two attributes' counter/set parts, then drop what the register at ``floor`` hides."""
    if x is None or y is None:
        one = x if y is None else y
        assert one is not None
        obs_v, obs, incs, elems = one.obs_v, one.obs, one.incs, one.elems
    else:
        if x.obs_v != y.obs_v:
            win = x if x.obs_v > y.obs_v else y
        else:
            win = x if x.obs == y.obs or _obs_key(x, order) >= _obs_key(y, order) else y
        obs_v, obs = win.obs_v, win.obs
        incs = _merge_totals(x.incs, y.incs, order)
        elems = dict(x.elems)
        for el, ent in y.elems.items():
            cur = elems.get(el)
            # per element by version; at one version an add beats a delete
            if cur is None or ent[0] > cur[0] or (ent[0] == cur[0] and ent[1] and not cur[1]):
                elems[el] = ent
    if obs_v < floor or not obs:
        # the reset it belonged to was overwritten (every reset writes the register at its
        # version, so an empty observation is the same as none)
        obs_v, obs = BOTTOM, {}
    if elems and any(ent[0] < floor for ent in elems.values()):
        elems = {el: ent for el, ent in elems.items() if ent[0] >= floor}
    if not (obs or incs or elems):
        return None
    return Extra(obs_v, dict(obs), dict(incs), dict(elems))


def merge_change(
    local: ItemState | None,
    delta: ItemState,
    version: Version,
    seen: Version,
    order: Callable[[Any], bytes],
) -> tuple[ItemState, list[AttrConflict]]:
    """Merge an incoming change into local state and report what concurrent writes lost.

    ``version`` is the change's version and ``seen`` the largest version its writer had seen
    of this item. A conflict is reported only when a present value is lost to a different
    value and neither writer had seen the other's version: a local value lost to the change
    is concurrent if it is above ``seen``; an incoming value lost to a local entry is
    concurrent if that entry is the local latest write and its writer's ``seen`` is below
    ``version`` (for older local entries we cannot tell, so nothing is reported).
    """
    if local is None:
        return merge(ItemState(), delta, order), []
    merged = merge(local, delta, order)
    local_latest = max_version(local)
    conflicts: list[AttrConflict] = []
    # local values that the change overwrote or cleared
    for name, (lv, lval) in local.attrs.items():
        if lval is ABSENT or lv <= seen:
            continue
        now = merged.attrs.get(name)
        if now is not None and now[0] == lv:
            continue  # local entry survived
        win_v, win_val = (now if now is not None else (merged.cleared, ABSENT))
        if win_val is not ABSENT and win_val == lval:
            continue
        conflicts.append(AttrConflict(name, win_v, lv, lval, win_val, True))
    # incoming values that lost to a local write made without knowledge of this change
    for name, (dv, dval) in delta.attrs.items():
        if dval is ABSENT:
            continue
        now = merged.attrs.get(name)
        if now is not None and now[0] == dv:
            continue
        if now is not None:
            win_v, win_val = now
        else:
            win_v, win_val = merged.cleared, ABSENT
        if win_v != local_latest or version <= local.seen:
            continue  # the local writer had seen this change, or we cannot tell
        if win_val is not ABSENT and win_val == dval:
            continue
        conflicts.append(AttrConflict(name, win_v, dv, dval, win_val, False))
    return merged, conflicts


def visible(state: ItemState | None) -> dict[str, Any] | None:
    """The item as readers see it: present attributes, or ``None`` for a tombstone.

    Counters read as plain numbers and element-wise sets as sets; an item needs a present
    register attribute (its keys) to be visible.
    """
    if state is None:
        return None
    out = {name: value for name, (_, value) in state.attrs.items() if value is not ABSENT}
    if not out:
        return None
    for name, e in state.extra.items():
        reg = state.attrs.get(name)
        value = _extra_value(ABSENT if reg is None else reg[1], e)
        if value is ABSENT:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def attribute_value(state: ItemState, name: str) -> Any:
    """One attribute's value (``ABSENT`` if none), whether or not the item is visible."""
    reg = state.attrs.get(name)
    base = ABSENT if reg is None else reg[1]
    e = state.extra.get(name)
    return base if e is None else _extra_value(base, e)


def _extra_value(base: Any, e: Extra) -> Any:
    """An attribute's value from its register ``base`` and its counter/set parts."""
    total: Any = None
    top = BOTTOM
    for o in sorted(e.incs):
        hlc, t = e.incs[o]
        seen = e.obs.get(o)
        if seen is not None and seen[0] >= hlc:
            continue  # all of this origin's ADDs were seen by the last reset
        d = t if seen is None else num_sub(t, seen[1])
        total = d if total is None else num_add(total, d)
        top = max(top, (hlc, o))
    elem_top = max((ent[0] for ent in e.elems.values()), default=BOTTOM)
    if total is not None and (not e.elems or top > elem_top):
        if base is ABSENT:
            return total
        return num_add(base, total) if _is_num(base) else base
    if not e.elems:
        return base
    if base is ABSENT:
        cur: set[Any] = set()
    elif isinstance(base, (set, frozenset)):
        cur = set(base)
    else:
        return base  # elements of a set on a value that is not a set: the value stands
    for el in sorted(e.elems, key=_elem_order):
        if e.elems[el][1]:
            cur.add(el)
        else:
            cur.discard(el)
    return cur if cur else ABSENT


def _elem_order(el: Any) -> tuple[int, Any]:
    if isinstance(el, str):
        return (0, el)
    if isinstance(el, bytes):
        return (1, el)
    return (2, _dec(el))


def max_version(state: ItemState | None) -> Version:
    """The largest version in ``state`` (what a writer records as ``seen``)."""
    if state is None:
        return BOTTOM
    best = state.cleared
    for v, _ in state.attrs.values():
        if v > best:
            best = v
    for e in state.extra.values():
        if e.obs_v > best:
            best = e.obs_v
        for o, (h, _) in e.incs.items():
            if h > best[0] or (h == best[0] and o > best[1]):
                best = (h, o)
        for ent in e.elems.values():
            if ent[0] > best:
                best = ent[0]
    return best


def purge(state: ItemState, version: Version) -> ItemState | None:
    """Drop the tombstones written at ``version`` once it is causally stable.

    Removes ``ABSENT`` entries of that version; returns ``None`` when nothing is left and the
    clear point is that version (or ⊥), meaning the whole item record can go. Attributes with
    counter or set parts keep their entries: a counter's increments are never folded away
    (a late ADD of an origin must still find the totals it continues).
    """
    extra = state.extra
    attrs = {n: e for n, e in state.attrs.items()
             if not (e[1] is ABSENT and e[0] == version and n not in extra)}
    if not attrs and not extra and (state.cleared == version or state.cleared == BOTTOM):
        return None
    if len(attrs) == len(state.attrs):
        return state
    return ItemState(state.cleared, attrs, state.seen, extra)
