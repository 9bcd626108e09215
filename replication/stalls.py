"""Stalls: changes this node refused as invalid, which hold back every later change of their origin.

Seqs of one origin apply in order, so one change a receiver refuses (it fails validation) holds
back everything that origin — and every origin relayed behind it in the same segment — writes
afterwards. That must never be silent: each refusal is logged as an error, recorded in the
store's meta (``stalled``: ``{origin: [seq, sender, reason, wall ms]}``, not replicated) for
``regiondb status``, and kept in the sending peer's counters for ``Replicator.lag()``.

A stall resolves by itself once the origin's vv passes the refused seq (the change arrived in a
form that validates, e.g. from another relay): :func:`stalls` leaves such entries out.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from engine.checks import is_node_id, is_u64
from engine.errors import ChangeRefused

if TYPE_CHECKING:
    from engine import Store

__all__ = ["STALLED_META", "record_stall", "stalls"]

log = logging.getLogger(__name__)

STALLED_META = "stalled"
_MAX_REASON = 300


def record_stall(store: Store, sender: int, exc: ChangeRefused) -> None:
    """Log and record that ``sender`` delivered a change of ``exc.origin`` we refused."""
    reason = str(exc)[:_MAX_REASON]
    table = _load(store)
    old = table.get(exc.origin)
    if old is not None and old[0] == exc.seq and old[2] == reason:
        log.debug("still refusing change %016x/%d: %s", exc.origin, exc.seq, reason)
        return
    log.error("refused change %016x/%d from node %016x: %s; every later change of node "
              "%016x is held until it arrives in a valid form", exc.origin, exc.seq, sender,
              reason, exc.origin)
    table[exc.origin] = [exc.seq, sender, reason, int(time.time() * 1000)]
    store.set_meta(STALLED_META, table)


def stalls(store: Store) -> dict[int, dict[str, Any]]:
    """Origins whose replication is stalled here behind a refused change, still unresolved.

    ``{origin: {"seq", "sender", "reason", "at_ms"}}``.
    """
    vv = store.version_vector()
    return {o: {"seq": seq, "sender": sender, "reason": reason, "at_ms": at}
            for o, (seq, sender, reason, at) in _load(store).items() if vv.get(o, 0) < seq}


def _load(store: Store) -> dict[int, list[Any]]:
    raw = store.get_meta(STALLED_META)
    if not isinstance(raw, dict):
        return {}
    return {o: list(e) for o, e in raw.items()
            if is_node_id(o) and isinstance(e, list) and len(e) == 4 and is_u64(e[0])}
