"""The threads a server or a replicator runs store work on, and its periodic upkeep.

Store work never runs on the event loop, so one slow fsync cannot stall every session of a
server: reads and bookkeeping (handshake state, catch-up segments, ack-table writes, garbage
collection) go to a small pool, and applies of incoming segments to one dedicated thread
(LMDB has one writer per environment anyway; a single thread also keeps the order in which
sessions apply). :meth:`Workers.shutdown` waits for whatever is still running, which is what
lets ``Server.close()`` and ``Replicator.stop()`` promise that no apply runs once they return.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from engine import Store

from . import exchange
from .peers import hub_for

__all__ = ["Workers", "collect_garbage_periodically"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class Workers:
    """A pool for reads and bookkeeping, and one thread for applies."""

    def __init__(self, name: str, threads: int = 4) -> None:
        self.name = name
        self.io = ThreadPoolExecutor(threads, thread_name_prefix=name)
        self.applier = ThreadPoolExecutor(1, thread_name_prefix=f"{name}-apply")

    def __repr__(self) -> str:
        return f"<Workers {self.name}>"

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the pool."""
        return await asyncio.get_running_loop().run_in_executor(self.io, fn, *args)

    async def apply(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the apply thread."""
        return await asyncio.get_running_loop().run_in_executor(self.applier, fn, *args)

    def shutdown(self) -> None:
        """Drop queued work and wait for what is running (an apply finishes whole)."""
        self.applier.shutdown(wait=True, cancel_futures=True)
        self.io.shutdown(wait=True, cancel_futures=True)


async def collect_garbage_periodically(store: Store, workers: Workers, interval: float) -> None:
    """Run :func:`exchange.collect_garbage` about every ``interval`` seconds, forever.

    Its own task (not part of any session's heartbeat): sessions of one store share the
    schedule through the hub, so a store served and replicated in one process collects once
    per interval, whether it has one session or a hundred, or none.
    """
    hub = hub_for(store)
    while True:
        await asyncio.sleep(max(0.05, interval / 4))
        if not hub.gc_due(interval):
            continue
        try:
            await workers.run(exchange.collect_garbage, store)
        except asyncio.CancelledError:
            raise
        except Exception:  # retried at the next interval
            log.exception("%s: garbage collection failed", store.path)
