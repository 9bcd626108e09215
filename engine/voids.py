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
from .checks import is_node_id
from .env import Env, Txn
from .errors import ValidationError
from .layout import FLOOR, LOGHDR, META_VOIDS, U64, U64x2
from .relabel import (
    Chain,
    Chains,
    Fork,
    chains_by_key,
    chains_from_wire,
    chains_wire,
    rename_state,
    split_totals,
)

__all__ = ["MAX_VOIDS", "Voids", "adopt", "apply_void", "is_void", "load", "record",
           "check_wire", "clip_snapshot", "split_observed", "wire"]

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
        out[old] = ({h: (s, n) for h, s, n in entries}, chains_from_wire(bases))
    return out


def _save(txn: Txn, env: Env, voids: Voids) -> None:
    rows = []
    budget = MAX_VOIDS
    for old in sorted(voids):
        entries, chains = voids[old]
        keep = sorted(entries.items())[-budget:] if budget > 0 else []
        budget -= len(keep)
        rows.append([old, [[h, s, n] for h, (s, n) in keep], chains_wire(chains)])
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


def _chain_heads(txn: Txn, env: Env, fork: Fork,
                 keys: set[bytes]) -> dict[tuple[bytes, str], tuple[int, Any]]:
    """The latest ADD total of the old id per counter of ``keys``, from its entries this
    store holds (forked ones aside). A forked total that reached us inside another node's
    reset replaced the head of the history we hold; the split puts the chain back to its
    base, and this puts our own history's head back over it."""
    out: dict[tuple[bytes, str], tuple[int, Any]] = {}
    old = fork.old
    cur = txn.cursor(db=env.index)
    ok = cur.set_range(U64x2.pack(old, 1))
    while ok:
        o, _ = U64x2.unpack(cur.key())
        if o != old:
            break
        value = txn.get(cur.value(), db=env.log)
        if value is not None and entry_hlc(value) not in fork.hlcs:
            n = LOGHDR.unpack_from(value)[2]
            h, ops = codec.decode_txn(bytes(value[LOGHDR.size:LOGHDR.size + n]), trusted=True)
            for op in ops:
                if op.kind == "U" and op.key in keys:
                    for name, (_, total) in op.ext.add.items():
                        if h > out.get((op.key, name), (0, 0))[0]:
                            out[(op.key, name)] = (h, total)
        ok = cur.next()
    return out


def _rename(txn: Txn, env: Env, voids: Voids, old: int, keys: set[bytes] | None) -> None:
    """Rename the forked versions of ``old`` in the items ``keys`` (``None``: every item)
    and put each split counter chain's head back to our own history's."""
    fork, by_key = fork_of(voids, old), chains_by_key(voids[old][1])
    heads = _chain_heads(txn, env, fork, set(by_key)) if by_key else {}
    if keys is None:
        rows = [(bytes(k), bytes(v)) for k, v in txn.cursor(db=env.items)]
    else:
        rows = [(k, bytes(v)) for k in keys if (v := txn.get(k, db=env.items)) is not None]
    for key, raw in rows:
        mine = by_key.get(key, {})
        state = rename_state(codec.decode_state(raw), fork, mine)
        for name in mine:
            e, head = state.extra.get(name), heads.get((key, name))
            if e is not None and head is not None and head[0] > e.incs.get(old, (0, 0))[0]:
                e.incs[old] = head
        new_raw = codec.encode_state(state)
        if new_raw != raw:
            txn.put(key, new_raw, db=env.items)


def _drop(txn: Txn, env: Env, old: int, seq: int, hlc: int, vv: dict[int, int]) -> bool:
    """Delete our copy of the forked entry ``old``/``seq`` (at ``hlc``), if we hold it, and
    set ``vv[old]`` below it. Returns whether the vv moved."""
    ikey = U64x2.pack(old, seq)
    pkey = txn.get(ikey, db=env.index)
    value = None if pkey is None else txn.get(pkey, db=env.log)
    if value is None or entry_hlc(value) != hlc:
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
    log.warning("a forked entry %016x/%d, relabeled by its writer, left this store's log; "
                "it takes the old id's entries from seq %d again", old, seq, seq)
    return True


def apply_void(txn: Txn, env: Env, op: codec.Op, hlc: int, new: int, keys: set[bytes],
               vv: dict[int, int]) -> tuple[bool, Voids]:
    """Take in the ``V`` op of a relabeled transaction of ``new`` at ``hlc`` (module
    docstring), before its other ops merge. ``vv`` is the caller's running vv (lowered here
    when our own copy of the forked entry goes). Returns whether the vv of the old id moved,
    and the voids now known."""
    old, seq = op.attrs["origin"], op.attrs["seq"]
    voids = record(txn, env, old, {hlc: (seq, new)}, chains_from_wire(op.attrs["bases"]))
    _rename(txn, env, voids, old, keys)
    return _drop(txn, env, old, seq, hlc, vv), voids


def wire(txn: Txn, env: Env) -> list[Any]:
    """The voids record as it travels in snapshot headers (the ``voids`` meta record)."""
    raw = txn.get(META_VOIDS, db=env.meta)
    return [] if raw is None else list(codec.loads(raw))


def check_wire(rows: Any) -> list[Any]:
    """Check voids from a peer (:func:`wire`'s form); raise ``ValidationError``."""
    if not isinstance(rows, list):
        raise ValidationError("voids are not an array")
    for row in rows:
        if not isinstance(row, list) or len(row) != 3 or not all(
                isinstance(x, list) for x in row[1:]):
            raise ValidationError("a void is [old id, [[hlc, seq, new id], ...], [bases]]")
        if not is_node_id(row[0]):
            raise ValidationError("a void's old id is not a node id")
        for e in row[1]:
            if not (isinstance(e, list) and len(e) == 3 and all(is_node_id(x) for x in e)):
                raise ValidationError("a voided entry is [hlc, seq, new id]")
        codec.check_void_bases(row[2])
    return rows


def adopt(txn: Txn, env: Env, rows: list[Any]) -> bool:
    """Take in a snapshot sender's voids (:func:`wire`) before its items merge: the item
    states it sends are renamed already, ours must be too. Returns whether anything moved."""
    known = load(txn, env)
    changed = False
    for old, entries, bases in rows:
        have = known.get(old, ({}, {}))[0]
        fresh = {h: (s, n) for h, s, n in entries if h not in have}
        if not fresh:
            continue
        changed = True
        voids = record(txn, env, old, fresh, chains_from_wire(bases))
        vv: dict[int, int] = {}
        for h, (s, _) in sorted(fresh.items(), key=lambda e: e[1][0], reverse=True):
            _drop(txn, env, old, s, h, vv)
        _rename(txn, env, voids, old, None)
        if old in vv:
            txn.put(U64.pack(old), U64.pack(vv[old]), db=env.vv)
    return changed


def clip_snapshot(voids: Voids, vv: dict[int, int], covers: dict[int, int],
                  states: list[tuple[bytes, Any]]) -> None:
    """Take a snapshot from a node that still holds forked entries we know are void (in
    place): its item states renamed as ours are, and its claim to hold the old id up to a
    forked entry cut back to before the fork, so that the entries the world holds there
    still come to us."""
    for old, (entries, bases) in voids.items():
        tip = covers.get(old)
        if tip is not None and tip in entries:
            vv[old] = min(vv.get(old, 0), min(s for s, _ in entries.values()) - 1)
            del covers[old]
        fork, by_key = fork_of(voids, old), chains_by_key(bases)
        for i, (key, state) in enumerate(states):
            states[i] = (key, rename_state(state, fork, by_key.get(key, {})))
