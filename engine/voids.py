"""Voids: forked entries of an old id that their writer relabeled, as every node learns them.

A restored node that noticed its fork at a first contact relabeled its forked entries as its
new id's (:mod:`engine.relabel`). Each relabeled transaction ends with a ``V`` op naming the
entry it was — ``(old id, seq)`` at the same HLC — and the counter chain bases of the items it
touched. It travels in the log like any change, so every node learns it. A node that applies
it (:func:`apply_void`):

* deletes its own copy of the forked entry from its log, if it holds one, and sets its vv of
  the old id back below it, so that a peer sends it the entries the world holds there;
* renames the forked versions in the items the transaction touched, as the writer did;
* remembers the void (the ``voids`` meta record, :data:`engine.layout.META_VOIDS`): the entry
  is refused if it arrives again (:func:`is_void`), and a reset that observed a forked counter
  total is split the same way (:func:`split_observed`) when it arrives later.

The record holds one HLC per forked entry and one base per counter they touched: a restore's
worth, bounded by :data:`MAX_VOIDS`.
"""

from __future__ import annotations

import logging
from typing import Any

from . import codec
from .changelog import entry_hlc, floor_seq
from .env import Env, Txn
from .layout import FLOOR, LOGHDR, META_VOIDS, U64, U64x2
from .relabel import Chain, Chains, Fork, rename_state, split_totals

__all__ = ["MAX_VOIDS", "Voids", "apply_void", "is_void", "load", "record", "split_observed"]

log = logging.getLogger(__name__)

MAX_VOIDS = 100_000
"""Voided entries kept per store (the oldest go first): far more than a restore writes."""

Voids = dict[int, tuple[dict[int, tuple[int, int]], Chains]]
"""old id -> ({hlc: (seq, new id)}, {(item key, attribute): chain base})."""


def load(txn: Txn, env: Env) -> Voids:
    """The voids this store knows, as of ``txn`` (empty: one meta read)."""
    raw = txn.get(META_VOIDS, db=env.meta)
    if raw is None:
        return {}
    out: Voids = {}
    for old, entries, bases in codec.loads(raw):
        out[old] = ({h: (s, n) for h, s, n in entries},
                    {(k, name): Chain(p, t) for k, name, p, t in bases})
    return out


def _save(txn: Txn, env: Env, voids: Voids) -> None:
    rows = []
    budget = MAX_VOIDS
    for old in sorted(voids):
        entries, chains = voids[old]
        keep = sorted(entries.items())[-budget:] if budget > 0 else []
        budget -= len(keep)
        rows.append([old, [[h, s, n] for h, (s, n) in keep],
                     [[k, name, c.prev, c.total] for (k, name), c in sorted(chains.items())]])
    txn.put(META_VOIDS, codec.dumps(rows), db=env.meta)


def record(txn: Txn, env: Env, old: int, entries: dict[int, tuple[int, int]],
           chains: Chains) -> Voids:
    """Add voided entries ``{hlc: (seq, new id)}`` of ``old`` and their chain bases."""
    voids = load(txn, env)
    mine, bases = voids.setdefault(old, ({}, {}))
    mine.update(entries)
    for k, c in chains.items():
        bases.setdefault(k, Chain(c.prev, c.total))
    _save(txn, env, voids)
    return voids


def is_void(voids: Voids, origin: int, seq: int, hlc: int) -> bool:
    """Whether ``origin``'s entry ``seq`` at ``hlc`` is one its writer relabeled."""
    v = voids.get(origin)
    return v is not None and v[0].get(hlc, (0, 0))[0] == seq


def fork_of(voids: Voids, old: int) -> Fork:
    return Fork(old, {h: n for h, (_, n) in voids[old][0].items()})


def split_observed(voids: Voids, op: codec.Op) -> codec.Op:
    """``op`` with any counter total it observed at a voided entry moved to the new id's
    chain (as :func:`engine.relabel.rename_state` moves a state's)."""
    observed = op.ext.observed
    if not observed or not voids:
        return op
    out = {}
    for name, totals in observed.items():
        for old in voids.keys() & totals.keys():
            fork = fork_of(voids, old)
            chain = voids[old][1].get((op.key, name))
            totals = split_totals(totals, fork, chain)
        out[name] = totals
    return op._replace(ext=op.ext._replace(observed=out))


def apply_void(txn: Txn, env: Env, op: codec.Op, hlc: int, new: int, keys: set[bytes],
               vv: dict[int, int]) -> bool:
    """Take in the ``V`` op of a relabeled transaction of ``new`` at ``hlc`` (module
    docstring), before its other ops merge. ``vv`` is the caller's running vv (lowered here
    when our own copy of the forked entry goes). Returns whether the vv of the old id moved."""
    old, seq = op.attrs["origin"], op.attrs["seq"]
    chains = {(k, name): Chain(p, t) for k, name, p, t in op.attrs["bases"]}
    voids = record(txn, env, old, {hlc: (seq, new)}, chains)
    fork, bases = fork_of(voids, old), voids[old][1]
    for key in keys:
        raw = txn.get(key, db=env.items)
        if raw is not None:
            mine = {name: c for (k, name), c in bases.items() if k == key}
            txn.put(key, codec.encode_state(rename_state(codec.decode_state(raw), fork, mine)),
                    db=env.items)
    ikey = U64x2.pack(old, seq)
    pkey = txn.get(ikey, db=env.index)
    value = None if pkey is None else txn.get(pkey, db=env.log)
    if value is None or entry_hlc(value) != hlc or LOGHDR.unpack_from(value)[1] != seq:
        return False
    txn.delete(pkey, db=env.log)
    txn.delete(ikey, db=env.index)
    have = vv.get(old)
    if have is None:
        raw_have = txn.get(U64.pack(old), db=env.vv)
        have = U64.unpack(raw_have)[0] if raw_have else 0
    if have < seq:
        return False
    vv[old] = seq - 1
    raw_floor = txn.get(U64.pack(old), db=env.floors)
    if raw_floor is not None and floor_seq(raw_floor) >= seq:
        txn.put(U64.pack(old), FLOOR.pack(seq - 1, 0), db=env.floors)
    log.warning("a forked entry %016x/%d (relabeled as node %016x's) left this store's log; "
                "it takes the old id's entries from seq %d again", old, seq, new, seq)
    return True
