"""Noticing at first contact that this store reused seqs of its own id (restored from a backup,
or a ``durable=False`` store after a power loss), for every transport.

What a peer tells about itself — its vv and its *tips* (per origin, the HLC of the entry at
its vv position: :func:`engine.lineage.tips`) — travels in mailbox state files, segment
headers (vv only) and the socket handshake. :func:`check_peer` compares it with our own log
and, on a fork, re-identifies the store and re-issues the writes that collided
(:mod:`engine.lineage` has the whole story). Callers run it before anything else of the
exchange, so nothing is sent or applied under the old identity after the fork is known.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from engine.errors import ProtocolError

if TYPE_CHECKING:
    from engine import Store

__all__ = ["Reidentified", "check_peer", "reissue_pending", "tips"]


class Reidentified(ProtocolError):
    """Raised to end a connection made under an id the store just gave up (it had reused
    seqs of it); a new connection goes under the new id."""


def tips(store: Store) -> dict[int, int]:
    """Per origin, the HLC of the entry at its vv position, where known (``store.vv_hlcs()``)."""
    return store.vv_hlcs()[1]


def check_peer(store: Store, peer: int, peer_vv: Mapping[int, int],
               peer_tips: Mapping[int, int]) -> int | None:
    """Re-identify ``store`` if ``peer``'s view of our origin shows our log forked; return the
    new node id, or ``None`` when all is well."""
    reason = store.divergence(peer_vv, peer_tips)
    if reason is None:
        return None
    who = "this node's own earlier state" if peer == store.node_id else f"node {peer:016x}"
    new = store.reidentify(f"{reason} (seen in what {who} holds)")
    store.reissue_pending(peer_vv)
    return new


def reissue_pending(store: Store) -> int:
    """Re-issue set-aside writes whose old-origin seq has now arrived (cheap when none wait)."""
    return store.reissue_pending()
