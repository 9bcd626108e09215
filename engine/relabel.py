"""Relabeling forked changes: pure functions, no I/O (used by :mod:`engine.lineage`).

A store restored from a backup and noticed only at a first contact wrote *forked* changes:
seqs of its old id ``O`` that the world holds with other content. They cannot keep that id.
They are written again as the new id ``N``'s first seqs with their original HLCs, in order
(:func:`relabel_txn`), and every version ``(h, O)`` of a forked change in the store's item
states becomes ``(h, N)`` (:func:`rename_state`). That is exactly the state a node reaches
that merges the relabeled changes instead of the forked ones, so the restored node and the
world agree without any peer state, and each change keeps its place in last-writer-wins order.

Counter chains are the exception to a plain rename: ``incs[O]`` is one chain per origin whose
head a forked ADD replaced. Each ADD carries the hlc of the entry it replaced (``prev``,
:attr:`engine.item.WriteExt.prev`), so the earliest forked ADD of each counter gives the
chain's *base* ``(prev, total - n)``: ``O``'s chain goes back to it, and ``N``'s chain counts
the forked ADDs from zero. Observed totals (``obs``, a reset's observation) split the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cbor2

from .clock import Version
from .item import Extra, ItemState, Total, num_sub

__all__ = ["Chain", "Chains", "Fork", "chains_by_key", "chains_from_wire", "chains_wire",
           "relabel_txn", "rename_state", "split_totals"]


@dataclass(frozen=True, slots=True)
class Fork:
    """Forked changes of ``old``: the HLC of each -> the new id it became (one per
    re-identification; a node restored twice has two)."""

    old: int
    hlcs: Mapping[int, int]

    def version(self, v: Version) -> Version:
        """``v`` renamed if a forked change wrote it."""
        if v[1] != self.old:
            return v
        new = self.hlcs.get(v[0])
        return v if new is None else (v[0], new)


@dataclass(slots=True)
class Chain:
    """One counter's chain of forked ADDs: the base it started from, its last new-id hlc."""

    prev: int           # the hlc of the old id's entry the first forked ADD replaced (0: none)
    total: Any          # that entry's total (0 when none)
    last: int = 0       # the hlc of the last relabeled ADD (the new chain's ``prev``)

    def base(self) -> Total | None:
        return (self.prev, self.total) if self.prev else None


Chains = dict[tuple[bytes, str], Chain]
"""``(item key, attribute) -> Chain``, filled by :func:`relabel_txn` in seq order."""


def chains_wire(chains: Chains, keys: set[bytes] | None = None) -> list[list[Any]]:
    """``[[item key, attribute, prev hlc, total], ...]`` (of ``keys`` only, if given): the
    bases as a ``V`` op and the voids record carry them."""
    return [[k, name, c.prev, c.total] for (k, name), c in sorted(chains.items())
            if keys is None or k in keys]


def chains_from_wire(rows: list[list[Any]]) -> Chains:
    """The inverse of :func:`chains_wire`."""
    return {(k, name): Chain(p, t) for k, name, p, t in rows}


def chains_by_key(chains: Chains) -> dict[bytes, dict[str, Chain]]:
    """``chains`` grouped by item: what :func:`rename_state` takes for each item."""
    out: dict[bytes, dict[str, Chain]] = {}
    for (k, name), c in chains.items():
        out.setdefault(k, {})[name] = c
    return out

_SEEN_AT = {"P": 4, "U": 5, "D": 3}  # where an item op's seen (hlc, node) starts
_EXT_AT = {"P": 6, "U": 7, "D": 5}


def relabel_txn(raw: bytes, seq: int, fork: Fork, chains: Chains) -> bytes:
    """The transaction ``raw`` (the forked change ``seq``) as the new id's: versions and
    observations renamed, counter totals on the new id's chain, and a ``V`` op at the end
    naming the entry it was and the chain bases of its items (:mod:`engine.voids`).
    ``chains`` carries each counter's base from one forked change to the next (relabel them
    in seq order)."""
    obj = cbor2.loads(raw)
    hlc, ops = obj[0], obj[1]
    keys = {w[2] for w in ops if w[0] in _SEEN_AT}
    for w in ops:
        kind = w[0]
        if kind == "R":  # the deletion of a table incarnation a forked change created
            w[2], w[3] = fork.version((w[2], w[3]))
            continue
        at = _SEEN_AT.get(kind)
        if at is None:
            continue
        w[at], w[at + 1] = fork.version((w[at], w[at + 1]))
        ext_at = _EXT_AT[kind]
        if len(w) > ext_at:
            _relabel_ext(w[ext_at], w[2], hlc, fork, chains)
    if len(obj) == 3:
        obj[2] = {t: list(fork.version((v[0], v[1]))) for t, v in obj[2].items()}
    ops.append(["V", fork.old, seq, chains_wire(chains, keys)])
    return cbor2.dumps(obj)


def _relabel_ext(ext: dict[str, Any], key: bytes, hlc: int, fork: Fork, chains: Chains) -> None:
    for name, row in ext.get("a", {}).items():
        n, total = row[0], row[1]
        chain = chains.get((key, name))
        if chain is None:
            chain = chains[(key, name)] = Chain(row[2] if len(row) == 3 else 0, num_sub(total, n))
        new_row = [n, num_sub(total, chain.total)]
        if chain.last:
            new_row.append(chain.last)
        chain.last = hlc
        ext["a"][name] = new_row
    for name, rows in ext.get("o", {}).items():
        totals = {o: (h, t) for o, h, t in rows}
        split = split_totals(totals, fork, chains.get((key, name)))
        ext["o"][name] = [[o, split[o][0], split[o][1]] for o in sorted(split)]


def split_totals(totals: Mapping[int, Total], fork: Fork,
                 chain: Chain | None) -> dict[int, Total]:
    """Per-origin totals with the old id's forked head moved to the new id's chain."""
    head = totals.get(fork.old)
    new = None if head is None else fork.hlcs.get(head[0])
    if head is None or new is None or chain is None:
        return dict(totals)
    out = {o: t for o, t in totals.items() if o != fork.old}
    base = chain.base()
    if base is not None:
        out[fork.old] = base
    mine = (head[0], num_sub(head[1], chain.total))
    cur = out.get(new)
    if cur is None or cur[0] < mine[0]:
        out[new] = mine
    return out


def rename_state(state: ItemState, fork: Fork, chains: Mapping[str, Chain]) -> ItemState:
    """``state`` with every version of a forked change renamed and each counter chain split
    at its base (``chains``: this item's counters, by attribute)."""
    rv = fork.version
    attrs = {name: (rv(v), value) for name, (v, value) in state.attrs.items()}
    extra = {}
    for name, e in state.extra.items():
        chain = chains.get(name)
        extra[name] = Extra(rv(e.obs_v), split_totals(e.obs, fork, chain),
                            split_totals(e.incs, fork, chain),
                            {el: (rv(v), present) for el, (v, present) in e.elems.items()})
    return ItemState(rv(state.cleared), attrs, rv(state.seen), extra)
