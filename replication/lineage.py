"""Noticing at first contact that this store reused seqs of its own id (restored from a backup,
or a ``durable=False`` store after a power loss), for every transport.

What a peer tells about itself — its vv and its *tips* (per origin, the HLC of the entry at
its vv position: :func:`engine.lineage.tips`) — travels in mailbox state files, segment
headers (vv only) and the socket handshake. :func:`check_peer` compares it with our own log
and, on a fork, re-identifies the store: its writes since the restore become the new id's
first ones (:mod:`engine.lineage` has the whole story). Callers run it before anything else of the
exchange, so nothing is sent or applied under the old identity after the fork is known.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from engine.errors import ProtocolError

if TYPE_CHECKING:
    from engine import Store

    from .segment import SegmentHeader

__all__ = ["Reidentified", "bases_for", "check_peer", "forked_origins", "reissue_pending",
           "tips"]

log = logging.getLogger(__name__)


class Reidentified(ProtocolError):
    """Raised to end a connection made under an id the store just gave up (it had reused
    seqs of it); a new connection goes under the new id."""


def tips(store: Store) -> dict[int, int]:
    """Per origin, the HLC of the entry at its vv position, where known (``store.vv_hlcs()``)."""
    return store.vv_hlcs()[1]


def check_peer(store: Store, peer: int, peer_vv: Mapping[int, int],
               peer_tips: Mapping[int, int]) -> int | None:
    """Re-identify ``store`` if ``peer``'s view of our origin shows our log forked; return the
    new node id, or ``None`` when all is well. ``peer_tips`` must hold the peer's tip for our
    origin for the split between writes before the backup and after it to be exact."""
    reason = store.divergence(peer_vv, peer_tips)
    if reason is None:
        return None
    who = "this node's own earlier state" if peer == store.node_id else f"node {peer:016x}"
    me = store.node_id
    tip = peer_tips.get(me)
    return store.reidentify(f"{reason} (seen in what {who} holds)",
                            peer_tip=None if tip is None else (peer_vv[me], tip))


def reissue_pending(store: Store) -> int:
    """Re-issue set-aside writes whose old-origin seq has now arrived (cheap when none wait)."""
    return store.reissue_pending()


def bases_for(store: Store, ranges: Mapping[int, tuple[int, int]]) -> dict[int, int]:
    """A changes segment's ``bases``: per origin of ``ranges``, the HLC of our entry just
    before its range (where known), so that a receiver holding another history of that
    origin does not continue it with ours."""
    points = {o: first - 1 for o, (first, _) in ranges.items() if first > 1}
    return store.hlcs_at(points) if points else {}


def forked_origins(store: Store, header: SegmentHeader) -> set[int]:
    """Origins whose range in ``header`` continues another history of that origin than the
    one ``store`` holds (one side holds a restored node's forked entries, the other the ones
    it lost). Their records must not be applied: the restored node relabels its forked
    entries once it notices (:mod:`engine.voids`), and the two sides then agree."""
    if not header.bases:
        return set()
    points = {o: header.ranges[o][0] - 1 for o in header.bases}
    mine = store.hlcs_at(points)
    out = {o for o, h in mine.items() if h != header.bases[o]}
    for o in sorted(out):
        log.warning("store %s: node %016x sends entries of node %016x that continue another "
                    "history of it than this store holds (a restored node's fork): held "
                    "until the fork is resolved", store.path, header.sender, o)
    return out
