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
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from .clock import BOTTOM, Version

__all__ = [
    "ABSENT",
    "AttrConflict",
    "Entry",
    "ItemState",
    "delete_delta",
    "max_version",
    "merge",
    "merge_change",
    "purge",
    "put_delta",
    "update_delta",
    "visible",
]


class _Absent:
    """Marks an attribute removed at some version (an attribute tombstone)."""

    _instance: _Absent | None = None

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


@dataclass(slots=True)
class ItemState:
    """The full replicated state of one item (see the module docstring).

    ``seen`` is not part of the merged value: it is what the writer of the item's latest
    version had seen, kept so that a later, older change can be recognised as concurrent.
    """

    cleared: Version = BOTTOM
    attrs: dict[str, Entry] = field(default_factory=dict)
    seen: Version = BOTTOM

    def __repr__(self) -> str:
        extra = "" if self.seen == BOTTOM else f", seen={self.seen!r}"
        return f"ItemState(cleared={self.cleared!r}, attrs={self.attrs!r}{extra})"


class AttrConflict(NamedTuple):
    """One attribute value lost to a concurrent write during ``merge_change``."""

    attribute: str
    winner: Version
    loser: Version
    value: Any          # the losing value
    winner_value: Any   # the surviving value (ABSENT if the attribute is gone)
    local_lost: bool    # True if the local value lost, False if the incoming one did


def put_delta(item: Mapping[str, Any], version: Version, seen: Version = BOTTOM) -> ItemState:
    """The delta of ``put(item)``: clear everything older, set every attribute."""
    return ItemState(version, {name: (version, value) for name, value in item.items()}, seen)


def update_delta(
    set_: Mapping[str, Any], remove: Iterable[str], version: Version, seen: Version = BOTTOM
) -> ItemState:
    """The delta of ``update(set=…, remove=…)``: no clear point, each named entry at ``version``."""
    attrs: dict[str, Entry] = {name: (version, value) for name, value in set_.items()}
    for name in remove:
        attrs[name] = (version, ABSENT)
    return ItemState(BOTTOM, attrs, seen)


def delete_delta(version: Version, seen: Version = BOTTOM) -> ItemState:
    """The delta of ``delete``: clear everything at or below ``version``."""
    return ItemState(version, {}, seen)


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
    return ItemState(cleared, attrs, seen)


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
    """The item as readers see it: present attributes, or ``None`` for a tombstone."""
    if state is None:
        return None
    out = {name: value for name, (_, value) in state.attrs.items() if value is not ABSENT}
    return out or None


def max_version(state: ItemState | None) -> Version:
    """The largest version in ``state`` (what a writer records as ``seen``)."""
    if state is None:
        return BOTTOM
    best = state.cleared
    for v, _ in state.attrs.values():
        if v > best:
            best = v
    return best


def purge(state: ItemState, version: Version) -> ItemState | None:
    """Drop the tombstones written at ``version`` once it is causally stable.

    Removes ``ABSENT`` entries of that version; returns ``None`` when nothing is left and the
    clear point is that version (or ⊥), meaning the whole item record can go.
    """
    attrs = {n: e for n, e in state.attrs.items() if not (e[1] is ABSENT and e[0] == version)}
    if not attrs and (state.cleared == version or state.cleared == BOTTOM):
        return None
    if len(attrs) == len(state.attrs):
        return state
    return ItemState(state.cleared, attrs, state.seen)
