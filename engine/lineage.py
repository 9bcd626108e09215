"""Lineage: noticing that this store reused sequence numbers of its own id, and recovering.

A store restored from a backup (``cp backup/data.mdb store/`` keeps the inode, so the copy
check of :func:`engine.store.open` cannot see it), or a ``durable=False`` store that lost its
last commits to a power loss, goes back in time: it issues seqs of its own id that its peers
already hold with other content. Peers skip them as known; both sides end with equal version
vectors and different data, for ever.

Detection needs one value per origin beyond the vv: the HLC of the entry at each vv position
(:func:`tips`). At its first contact with a peer a node compares (:func:`divergence`): the peer
holding more of our own origin than we ever wrote here, or a different entry (another HLC) at
the peer's position of our origin, means our log forked from what the world holds.

Recovery (:func:`reidentify`), in one write transaction: the node stops writing under that id
and takes a new one; the old id becomes an ordinary remote origin. Its entries written before
the backup (HLCs up to the peer's tip: every forked entry comes after every lost one) stay in
the log; its vv entry for the old id ends at the last of them, so the peer sends back
everything it holds beyond (the entries lost here are *taken back* and merged). The entries
written since the restore (*forked*) become the new id's first entries under their original
HLCs, and the item states are renamed to match (:mod:`engine.relabel`): nothing is lost,
nothing counts twice, and every change keeps its place in last-writer-wins order. A node that
took forked entries before the fork was known drops them when the relabeled ones reach it
(:mod:`engine.voids`). Both steps are logged and recorded (``lineage`` meta record) for
``regiondb status``.

Other processes with the store open keep the old id in memory until they reopen: re-identify
with the store open in one process only (``regiondb restore`` does it up front, offline).
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from . import codec, voids
from .batch import Batch
from .changelog import (
    append,
    entry_hlc,
    floor_seq,
    read_clock,
    version_vector,
    vv_hlcs,
    write_clock,
)
from .changes import decode_table_def
from .env import Env, Txn
from .errors import SchemaError
from .keys import decode_key
from .layout import LOGHDR, META_IDENT, META_LINEAGE, META_REISSUE, U64, U64x2
from .relabel import Chains, Fork, chains_by_key, relabel_txn, rename_state
from .schema import create_table
from .table import Table

if TYPE_CHECKING:
    from .context import Context

__all__ = ["STAMP_FILE", "check_stamp", "divergence", "lineage_events", "pending_reissues",
           "reidentify", "reissue_pending", "tips", "write_stamp"]

log = logging.getLogger(__name__)

_MAX_EVENTS = 32


def _hlc_at(txn: Txn, env: Env, origin: int, seq: int) -> int | None:
    """The HLC of ``origin``'s entry ``seq`` if the log holds it."""
    pkey = txn.get(U64x2.pack(origin, seq), db=env.index)
    if pkey is None:
        return None
    value = txn.get(pkey, db=env.log)
    return None if value is None else entry_hlc(value)


def _entry(txn: Txn, *, env: Env, origin: int, seq: int) -> bytes | None:
    pkey = txn.get(U64x2.pack(origin, seq), db=env.index)
    value = None if pkey is None else txn.get(pkey, db=env.log)
    if value is None:
        return None
    n = LOGHDR.unpack_from(value)[2]
    return bytes(value[LOGHDR.size:LOGHDR.size + n])


def tips(ctx: Context) -> dict[int, int]:
    """Per origin, the HLC of the entry at its vv position (where known): the store's
    :func:`engine.changelog.vv_hlcs`, the one home of that value."""
    return vv_hlcs(ctx)[1]


def divergence(
    ctx: Context, peer_vv: Mapping[int, int], peer_tips: Mapping[int, int]
) -> str | None:
    """Why this store's own log forked from a peer's view of it, or ``None`` if it did not."""
    me = ctx.node_id
    p = peer_vv.get(me, 0)
    if not p:
        return None
    env = ctx.env

    def run(txn: Txn) -> str | None:
        seq = read_clock(txn, env)[1]
        if p > seq:
            return (f"the peer holds seqs up to {p} of this node's id {me:016x}, but this store "
                    f"wrote only {seq}: it was restored from a backup or lost commits")
        want = peer_tips.get(me)
        have = _hlc_at(txn, env, me, p)
        if want is None or have is None or want == have:
            return None
        return (f"the peer holds a different change under seq {p} of this node's id {me:016x}: "
                "this store reissued sequence numbers (restored from a backup or lost commits)")

    return env.read(run)


def reidentify(ctx: Context, reason: str, *, forked: bool = True,
               peer_tip: tuple[int, int] | None = None) -> int:
    """Stop writing under this id: take a new one (module docstring). Returns the new id.

    ``forked``: this store wrote entries under the old id that its peers hold differently
    (noticed at a contact). ``peer_tip`` is ``(seq, hlc)`` of the peer's entry at its vv
    position of the old id: our entries with an HLC up to it were written before the backup
    (every forked entry comes after every lost one, unless our clock was behind) and stay;
    the later ones are relabeled as the new id's first entries (:mod:`engine.relabel`).
    Unknown, every entry above the log floor counts as forked. Not ``forked`` (``regiondb
    restore``, or a data file restored in place and noticed at open, :func:`check_stamp`):
    every entry of the old id is one the world holds too; they stay in the log, as an
    ordinary origin's, the way a copied directory keeps them."""
    env = ctx.env
    old = ctx.node_id
    wall = ctx.wall()

    def run(txn: Txn) -> int:
        node, region, dev, ino = codec.loads(txn.get(META_IDENT, db=env.meta))
        if node != old:
            return int(node)  # another process re-identified it meanwhile
        hlc, seq, pos = read_clock(txn, env)
        new = secrets.randbits(64) or 1
        kept, relabeled = seq, 0
        if forked:
            kept, relabeled, pos = _relabel_forked(ctx, txn, old, new, seq, pos, peer_tip)
        if kept:
            txn.put(U64.pack(old), U64.pack(kept), db=env.vv)
        txn.put(META_IDENT, codec.dumps([new, region, dev, ino]), db=env.meta)
        write_clock(txn, env, hlc, relabeled, pos)
        raw = txn.get(META_LINEAGE, db=env.meta)
        events = (codec.loads(raw) if raw else [])[-(_MAX_EVENTS - 1):]
        events.append([old, new, wall, reason[:300]])
        txn.put(META_LINEAGE, codec.dumps(events), db=env.meta)
        log.error("store %s: %s; it stops writing as node %016x and is now node %016x (%d "
                  "writes made under the old id since the backup are now the new id's first)",
                  ctx.path, reason, old, new, relabeled)
        return new

    new = env.write(run)
    ctx.adopt_identity(new)
    ctx.uncache_tables()
    return new


def _relabel_forked(ctx: Context, txn: Txn, old: int, new: int, seq: int, pos: int,
                    peer_tip: tuple[int, int] | None) -> tuple[int, int, int]:
    """Move the forked entries of ``old`` to ``new`` (seqs 1, 2, …, original HLCs) and rename
    their versions in the items and tables they touched. Returns ``(the last seq of old kept,
    how many moved, the log position)``."""
    env = ctx.env
    raw_floor = txn.get(U64.pack(old), db=env.floors)
    floor = min(floor_seq(raw_floor) if raw_floor else 0, seq)
    entries: list[tuple[int, bytes, bytes]] = []
    for s in range(floor + 1, seq + 1):
        pkey = txn.get(U64x2.pack(old, s), db=env.index)
        value = None if pkey is None else txn.get(pkey, db=env.log)
        if value is not None:
            entries.append((s, bytes(pkey), bytes(value)))
    first = _first_forked(ctx, entries, peer_tip)
    if first == len(entries):
        return seq, 0, pos
    forked = entries[first:]
    fork = Fork(old, {entry_hlc(v): new for _, _, v in forked})
    chains: Chains = {}
    keys: set[bytes] = set()
    for k, (s, pkey, value) in enumerate(forked, 1):
        n = LOGHDR.unpack_from(value)[2]
        raw = value[LOGHDR.size:LOGHDR.size + n]
        txn.delete(pkey, db=env.log)
        txn.delete(U64x2.pack(old, s), db=env.index)
        pos = append(txn, env, new, k, relabel_txn(raw, s, fork, chains),
                     [*codec.loads(value[LOGHDR.size + n:]), None], pos)
        for op in codec.decode_txn(raw, trusted=True)[1]:
            if op.kind in "PUD":
                keys.add(op.key)
            elif op.kind in "IX":
                log.warning("store %s: an index definition made after the restore keeps its "
                            "old-id version here", ctx.path)
    voids.record(txn, env, old, {entry_hlc(v): (s, new) for s, _, v in forked}, chains)
    by_key = chains_by_key(chains)
    for key in keys:
        raw_state = txn.get(key, db=env.items)
        if raw_state is not None:
            txn.put(key, codec.encode_state(rename_state(codec.decode_state(raw_state), fork,
                                                         by_key.get(key, {}))), db=env.items)
    for name, raw_def in list(txn.cursor(db=env.tables)):
        tdef = decode_table_def(bytes(name).decode(), bytes(raw_def))
        renamed = replace(tdef, version=fork.version(tdef.version),
                          ttl_version=fork.version(tdef.ttl_version))
        if renamed != tdef:
            txn.put(name, renamed.stored(), db=env.tables)
    return forked[0][0] - 1, len(forked), pos


def _first_forked(ctx: Context, entries: list[tuple[int, bytes, bytes]],
                  peer_tip: tuple[int, int] | None) -> int:
    """The index in ``entries`` (our own, ascending) of the first forked one: the first
    with an HLC above the peer's tip. Our entry at the tip's seq differs from the peer's, so
    it is forked whatever its HLC: if it is not above the tip, our clock was behind the lost
    writes' and the split is a guess, said in the log."""
    if peer_tip is None:
        return 0
    at, tip = peer_tip
    first = next((i for i, (_, _, v) in enumerate(entries) if entry_hlc(v) > tip),
                 len(entries))
    late = [i for i, (s, _, v) in enumerate(entries[:first]) if s >= at]
    if late or any(entry_hlc(v) <= tip for _, _, v in entries[first:]):
        log.warning("store %s: writes made after the restore have HLCs below the lost ones "
                    "(the clock was behind): the split between writes before the backup "
                    "and after it is a guess", ctx.path)
        first = min([first, *late])
    return first


STAMP_FILE = "lineage.cbor"
"""Beside ``data.mdb``: ``[node id, seq, hlc]`` of the last own entry this directory's store
had written when it was last opened or closed (:func:`write_stamp`)."""


def write_stamp(ctx: Context) -> None:
    """Record in :data:`STAMP_FILE` how far this store's own log went (at open and close).

    It stays when ``data.mdb`` alone is replaced (``cp backup/data.mdb store/``), so the next
    open can tell (:func:`check_stamp`). Best effort: a stamp that cannot be written (a
    read-only directory) only disables that check."""
    env = ctx.env
    me = ctx.node_id

    def run(txn: Txn) -> list[int]:
        seq = read_clock(txn, env)[1]
        return [me, seq, (_hlc_at(txn, env, me, seq) or 0) if seq else 0]

    stamp = env.read(run)
    path = ctx.path / STAMP_FILE
    tmp = path.with_name(f".{STAMP_FILE}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(codec.dumps(stamp))
        os.replace(tmp, path)
    except OSError as exc:
        log.debug("store %s: lineage stamp not written: %s", ctx.path, exc)


def check_stamp(ctx: Context) -> int | None:
    """At open: if :data:`STAMP_FILE` shows that this store had written more of its own id
    than its data file holds (or another entry at the same seq), the data file was restored
    in place from a backup, or lost its last commits: re-identify at once (without setting
    anything aside: everything it holds of the old id, the world holds too). Returns the new
    node id, or ``None``."""
    try:
        node, seq, hlc = codec.loads((ctx.path / STAMP_FILE).read_bytes())
    except (OSError, ValueError, TypeError):  # missing or unreadable: nothing to compare
        return None
    env = ctx.env
    if node != ctx.node_id or not isinstance(seq, int) or not seq:
        return None

    def run(txn: Txn) -> tuple[int, int | None]:
        have = read_clock(txn, env)[1]
        return have, _hlc_at(txn, env, node, seq) if have == seq else None

    have, at = env.read(run)
    if have > seq or (have == seq and (at is None or not hlc or at == hlc)):
        return None
    what = (f"holds seqs up to {have} of node {node:016x}, but this directory's store had "
            f"written {seq}" if have < seq else
            f"holds another entry under seq {seq} of node {node:016x} than the one written")
    return reidentify(ctx, f"its data file {what} (lineage stamp): it was restored in place "
                      "from a backup or lost its last commits", forked=False)


def pending_reissues(ctx: Context) -> int:
    """How many set-aside writes still wait to be compared with a peer's copy."""
    env = ctx.env
    raw = env.read(lambda txn: txn.get(META_REISSUE, db=env.meta))
    return sum(len(entries) for _, entries in codec.loads(raw)) if raw else 0


def lineage_events(ctx: Context) -> list[dict[str, Any]]:
    """Re-identifications of this store, oldest first (for ``regiondb status``)."""
    env = ctx.env
    raw = env.read(lambda txn: txn.get(META_LINEAGE, db=env.meta))
    return [{"old": o, "new": n, "at_ms": at, "reason": why}
            for o, n, at, why in (codec.loads(raw) if raw else [])]


def reissue_pending(ctx: Context, peer_vv: Mapping[int, int] | None = None) -> int:
    """Compare set-aside writes with what arrived of their old origin; re-issue the ones that
    differ (or that the peer, whose vv is ``peer_vv``, never had). Returns how many."""
    env = ctx.env
    raw = env.read(lambda txn: txn.get(META_REISSUE, db=env.meta))
    if not raw:
        return 0
    vv = version_vector(ctx)
    keep: list[list[Any]] = []
    todo: list[bytes] = []
    for old, entries in codec.loads(raw):
        have = vv.get(old, 0)
        beyond = None if peer_vv is None else peer_vv.get(old, 0)
        rest = []
        for s, txn_bytes in entries:
            if s <= have:
                theirs = env.read(partial(_entry, env=env, origin=old, seq=s))
                if theirs != txn_bytes:
                    todo.append(txn_bytes)  # collided (or covered only by a snapshot)
            elif beyond is not None and s > beyond:
                todo.append(txn_bytes)  # the peer never had this seq: nothing to compare
            else:
                rest.append([s, txn_bytes])
        if rest:
            keep.append([old, rest])
    for txn_bytes in todo:
        _reissue(ctx, txn_bytes)
    def save(txn: Txn) -> None:
        if keep:
            txn.put(META_REISSUE, codec.dumps(keep), db=env.meta)
        else:
            txn.delete(META_REISSUE, db=env.meta)

    if keep != codec.loads(raw):
        env.write(save)
    if todo:
        log.warning("store %s: re-issued %d writes that collided under its old node id",
                    ctx.path, len(todo))
    return len(todo)


def _reissue(ctx: Context, txn_bytes: bytes) -> None:
    """Write one set-aside transaction again, as a new local write (atomically): puts,
    deletes and updates with their counter ADDs (the amount, not the old id's running total)
    and set element ADDs and DELETEs."""
    _, ops = codec.decode_txn(txn_bytes, trusted=True)
    items = [op for op in ops if op.kind in ("P", "U", "D")]  # table/index definitions:
    # a definition is idempotent (re-created below) or rare enough to leave to the operator
    for op in ops:
        if op.kind == "T":
            try:
                create_table(ctx, op.table, op.attrs["partition_key"], op.attrs["sort_key"])
            except SchemaError as exc:
                log.warning("re-issue of table %r skipped: %s", op.table, exc)
    if not items:
        return
    with Batch(ctx) as b:
        for op in items:
            table = Table(ctx, ctx.table_def(op.table))
            _, values = decode_key(op.key)
            pk, sk = values[0], values[1] if len(values) > 1 else None
            if op.kind == "P":
                b.put(table, dict(op.attrs))
            elif op.kind == "U":
                keys = {table.partition_key, table.sort_key}
                add: dict[str, Any] = {name: n for name, (n, _) in op.ext.add.items()}
                add.update({name: set(els) for name, els in op.ext.add_elems.items()})
                delete = {name: set(els) for name, els in op.ext.del_elems.items()}
                b.update(table, pk, sk, set={k: v for k, v in op.attrs.items() if k not in keys},
                         remove=list(op.remove), add=add or None, delete=delete or None)
            else:
                b.delete(table, pk, sk)
