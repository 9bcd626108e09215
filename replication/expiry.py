"""TTL expiry beside live replication: ``store.expire()`` every few seconds on the workers.

The live :class:`~replication.replicator.Replicator` runs :func:`expire_periodically` as one
of its tasks, so a replicating node deletes its expired items (as TTL deletes that replicate)
without anything else to run. Store work goes to the replicator's worker thread, never the
event loop. Several nodes expiring the same item is harmless: the deletes merge.
"""

from __future__ import annotations

import asyncio
import logging

from engine import Store
from engine.errors import StoreClosed
from engine.ttl import DEFAULT_EXPIRE_INTERVAL

from .workers import Workers

__all__ = ["expire_periodically"]

log = logging.getLogger(__name__)


async def expire_periodically(store: Store, workers: Workers,
                              interval: float = DEFAULT_EXPIRE_INTERVAL) -> None:
    """Run ``store.expire()`` about every ``interval`` seconds, until cancelled."""
    while True:
        await asyncio.sleep(interval)
        try:
            n = await workers.run(store.expire)
        except asyncio.CancelledError:
            raise
        except StoreClosed:
            return
        except Exception:  # retried at the next interval
            log.exception("%s: TTL expiry failed", store.path)
        else:
            if n:
                log.debug("%s: expired %d items", store.path, n)
