"""Version vectors and the ack table: what every known node has acknowledged.

A *version vector* (vv) maps an origin node id to the highest seq of that origin applied;
origins absent from it count as 0. The helpers here are pure.

The **ack table** maps every node this store knows of to the latest vv that node is known to
have held (its *acknowledgement*). It is persisted with ``store.set_meta("acks", …)`` as
``{node: {origin: seq}}``; our own row is never stored, it is always our current vv. Rows
are learned from segment headers and mailbox state files (a sender's own vv) and from the
ack tables those carry (what *it* knows of others), so a node learns what nodes it never met
have seen. Rows merge by elementwise max.

Invariants owned here:

- Every row is a vv that node really held at some moment. A node's vv only grows, so the
  elementwise max of several of its past vvs is again one of its past vvs (the latest): merging
  never invents a state. A lost update (two writers racing on the meta key) leaves an older
  true row, which only delays garbage collection.
- **Membership** is every node known (ack-table rows, origins in our vv, ourselves) minus the
  forgotten ones. A member whose row is unknown blocks all garbage collection.
- :func:`plan_gc` is the one place that decides what is causally stable; see its docstring
  and ``docs/replication.md`` for the argument.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from engine.checks import check_vv

if TYPE_CHECKING:
    from engine import Store

__all__ = [
    "AckTable",
    "GcPlan",
    "VersionVector",
    "check_vv",
    "diff_ranges",
    "dominates",
    "load_acks",
    "members",
    "merge",
    "merge_acks",
    "merge_into",
    "minimum",
    "plan_gc",
    "range_gaps",
    "save_acks",
    "update_acks",
]

VersionVector: TypeAlias = dict[int, int]
AckTable: TypeAlias = dict[int, VersionVector]
K = TypeVar("K")  # origin ids: ints, or hex strings where they travel as text (the demo)

ACKS_META = "acks"


# ------------------------------------------------------------------ pure vv helpers


def dominates(a: Mapping[int, int], b: Mapping[int, int]) -> bool:
    """True if ``a`` has applied everything ``b`` has (``a >= b`` elementwise).

    >>> dominates({1: 5, 2: 1}, {1: 3}), dominates({1: 3}, {1: 3, 2: 1})
    (True, False)
    """
    return all(a.get(o, 0) >= s for o, s in b.items())


def merge_into(into: dict[K, int], other: Mapping[K, int]) -> bool:
    """Raise ``into`` to at least ``other`` per origin, in place; ``True`` if anything grew.

    The one elementwise-max of version vectors (:func:`merge` is built on it).

    >>> vv = {1: 5}; merge_into(vv, {1: 3, 2: 1}), vv
    (True, {1: 5, 2: 1})
    """
    changed = False
    for o, s in other.items():
        if s > into.get(o, 0):
            into[o] = s
            changed = True
    return changed


def merge(*vvs: Mapping[K, int]) -> dict[K, int]:
    """Elementwise maximum (the least vv dominating all arguments); zero entries dropped.

    >>> merge({1: 5, 2: 1}, {2: 4, 3: 0})
    {1: 5, 2: 4}
    """
    out: dict[K, int] = {}
    for vv in vvs:
        merge_into(out, vv)
    return out


def minimum(vvs: Iterable[Mapping[int, int]]) -> VersionVector:
    """Elementwise minimum over ``vvs`` (absent entries count as 0); ``{}`` for no vvs.

    >>> minimum([{1: 5, 2: 3}, {1: 2}])
    {1: 2}
    """
    vvs = list(vvs)
    if not vvs:
        return {}
    origins = set().union(*vvs)
    out = {o: min(vv.get(o, 0) for vv in vvs) for o in origins}
    return {o: s for o, s in out.items() if s > 0}


def diff_ranges(have: Mapping[int, int], want: Mapping[int, int]) -> dict[int, tuple[int, int]]:
    """Per origin, the inclusive seq range ``want`` holds and ``have`` lacks.

    >>> diff_ranges({1: 3}, {1: 5, 2: 2, 3: 0})
    {1: (4, 5), 2: (1, 2)}
    """
    return {o: (have.get(o, 0) + 1, s) for o, s in sorted(want.items()) if s > have.get(o, 0)}


def range_gaps(
    have: Mapping[int, int], ranges: Mapping[int, tuple[int, int]], skip: Iterable[int] = (),
) -> dict[int, tuple[int, int]]:
    """The rule for gaps in a sender's log: per origin, ``(held, first)`` for each offered
    range that starts past what we hold, so applying it would leave seqs ``held+1..first-1``
    missing. Origins in ``skip`` never count: ourselves (our own changes are never applied
    from a peer) and forgotten nodes (refused whatever their range).

    >>> range_gaps({1: 3, 2: 1}, {1: (4, 9), 2: (5, 6), 3: (2, 2)}, skip={3})
    {2: (1, 5)}
    """
    out: dict[int, tuple[int, int]] = {}
    skipped = set(skip)
    for origin, (first, _) in sorted(ranges.items()):
        held = have.get(origin, 0)
        if origin not in skipped and first > held + 1:
            out[origin] = (held, first)
    return out


# ------------------------------------------------------------------ the ack table


def merge_acks(
    table: Mapping[int, Mapping[int, int]],
    rows: Mapping[int, Mapping[int, int]],
    *,
    self_id: int,
    forgotten: Iterable[int] = (),
) -> AckTable:
    """Fold learned rows into an ack table (elementwise max per node), pure.

    Our own row is skipped (it is always our live vv) and so are forgotten nodes.
    """
    gone = set(forgotten)
    out: AckTable = {n: dict(vv) for n, vv in table.items() if n not in gone and n != self_id}
    for node, vv in rows.items():
        if node == self_id or node in gone:
            continue
        out[node] = merge(out.get(node, {}), vv)
    return out


def members(self_id: int, vv: Mapping[int, int], acks: Mapping[int, Any],
            forgotten: Iterable[int]) -> set[int]:
    """Every node known (ack rows, origins in ``vv``, ourselves) that is not forgotten."""
    return ({self_id} | set(acks) | {o for o, s in vv.items() if s}) - set(forgotten)


_locks: weakref.WeakKeyDictionary[Any, threading.Lock] = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def _lock_for(store: Store) -> threading.Lock:
    with _locks_guard:
        lock = _locks.get(store)
        if lock is None:
            lock = _locks[store] = threading.Lock()
        return lock


def load_acks(store: Store) -> AckTable:
    """The persisted ack table (without our own row, which is ``store.version_vector()``)."""
    raw = store.get_meta(ACKS_META)
    if not isinstance(raw, dict):
        return {}
    return {int(n): {int(o): int(s) for o, s in vv.items()} for n, vv in raw.items()}


def save_acks(store: Store, table: Mapping[int, Mapping[int, int]]) -> None:
    """Persist an ack table (our own row is dropped)."""
    store.set_meta(ACKS_META, {n: dict(vv) for n, vv in table.items() if n != store.node_id})


def update_acks(store: Store, rows: Mapping[int, Mapping[int, int]]) -> AckTable:
    """Merge ``rows`` into the persisted table under a per-store lock; return the new table.

    The lock covers threads of this process; two processes racing may lose an update, which
    leaves an older (still true) row and so only delays garbage collection.
    """
    with _lock_for(store):
        forgotten = store.forgotten()
        table = merge_acks(load_acks(store), rows, self_id=store.node_id, forgotten=forgotten)
        save_acks(store, table)
        return table


# ------------------------------------------------------------------ causal stability


@dataclass(frozen=True, slots=True)
class GcPlan:
    """What :func:`plan_gc` decided: ``stable`` (per origin, the seq up to which the log may be
    truncated and its tombstones purged) or ``None`` with ``reason`` saying what blocks it."""

    stable: VersionVector | None
    reason: str = ""


def plan_gc(
    self_id: int,
    vv: Mapping[int, int],
    acks: Mapping[int, Mapping[int, int]],
    forgotten: Iterable[int],
) -> GcPlan:
    """Decide what is causally stable, or why nothing is this round. Pure.

    With ``M`` the members and ``A[n]`` their rows (``A[self] = vv``):

    1. Every member must have a row; an unknown one blocks everything.
    2. Every member ``P`` must satisfy ``vv[P] >= A[P][P]``: we hold every change ``P`` had
       made when it acknowledged. Any change ``P`` makes later was made after ``P`` applied
       everything in ``A[P]``, so its HLC is above every version there and it wins against
       every tombstone we might purge; the ones made before, we already hold (and they already
       lost to the tombstone here). Without this, a write concurrent with a delete could still
       be in flight and would resurrect the item after its tombstone is gone.
    3. Then ``stable[o] = min over members n of A[n][o]`` (capped at ``vv[o]``): every member
       has applied those changes, so no member needs them from the log and their tombstones
       have done their work everywhere.

    Truncation and tombstone purge are decided together, never apart: see
    ``docs/replication.md`` ("Why never truncate without purging").

    >>> plan_gc(1, {1: 5, 2: 3}, {2: {1: 4, 2: 3}}, ()).stable
    {1: 4, 2: 3}
    >>> plan_gc(1, {1: 5, 2: 3}, {}, ()).reason
    'no acknowledgement known from node 0000000000000002'
    """
    gone = set(forgotten)
    mem = members(self_id, vv, acks, gone)
    table: dict[int, Mapping[int, int]] = {n: r for n, r in acks.items() if n != self_id}
    table[self_id] = vv
    unknown = sorted(n for n in mem if n not in table)
    if unknown:
        return GcPlan(None, "no acknowledgement known from " +
                      ", ".join(f"node {n:016x}" for n in unknown))
    for p in sorted(mem):
        if vv.get(p, 0) < table[p].get(p, 0):
            return GcPlan(None, f"node {p:016x} acknowledged its own seq {table[p].get(p, 0)} "
                                f"but we hold only {vv.get(p, 0)} of it")
    stable = {o: min(min(table[n].get(o, 0) for n in mem), s) for o, s in vv.items()}
    return GcPlan({o: s for o, s in sorted(stable.items()) if s > 0})
