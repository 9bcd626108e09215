"""The threads a server or a replicator runs store work on, and its periodic upkeep.

Store work never runs on the event loop, so one slow fsync cannot stall every session of a
server: reads and bookkeeping (handshake state, catch-up segments, ack-table writes, garbage
collection) go to a small pool, and applies of incoming segments to one dedicated thread
(LMDB has one writer per environment anyway; a single FIFO thread also keeps each session's
segments in the order they arrived). :meth:`Workers.shutdown` waits for whatever is still
running, which is what lets ``Server.close()`` and ``Replicator.stop()`` promise that no apply
runs once they return.

**Grouped applies.** Change segments that wait for the apply thread together — from one peer
(a segment that arrived while the one before it was syncing) or several — are merged in one
write transaction and one durable commit (:meth:`engine.Store.apply_change_lists`): under load
the receiver makes one fsync per group instead of one per segment, which is what keeps live
lag near one commit. Each segment still gets its own outcome: its report, or the error that
refused it alone. :attr:`Workers.applies` counts segments and commits (a diagnostic).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from engine import ApplyReport, Error, RawChange, Store

from . import exchange
from .peers import applying_remote, hub_for

__all__ = ["ApplyCounts", "Applied", "Workers", "collect_garbage_periodically"]

log = logging.getLogger(__name__)
T = TypeVar("T")
#: At most this many segments share one transaction (a bound on the group's size and time).
MAX_GROUP = 64


@dataclass(slots=True)
class Applied:
    """The outcome of one change segment applied in a group: its report or the error that
    refused it, the vv before it (as far as this group knows) and after the group's commit."""

    outcome: ApplyReport | exchange.SegmentReport | Error  # a snapshot: a SegmentReport
    before: dict[int, int]
    after: dict[int, int]


@dataclass(slots=True)
class ApplyCounts:
    """Change segments applied and the commits they took (grouping: commits < segments)."""

    segments: int = 0
    commits: int = 0
    largest_group: int = 0


@dataclass(slots=True)
class _Job:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    fn: Callable[[], Any] | None = None  # a plain job; else a change segment to group
    store: Store | None = None
    records: list[RawChange] = field(default_factory=list)


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.cancelled():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


class _ApplyThread:
    """One thread running queued jobs in order; runs of change segments of one store go
    into one transaction."""

    def __init__(self, name: str, counts: ApplyCounts) -> None:
        self.counts = counts
        self._cv = threading.Condition()
        self._jobs: deque[_Job] = deque()
        self._closed = False
        # Started with the first job (a server that never received anything, or failed to
        # bind, leaves no thread behind).
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def submit(self, job: _Job) -> None:
        with self._cv:
            if self._closed:
                raise RuntimeError("the apply thread is shut down")
            if not self._thread.is_alive() and self._thread.ident is None:
                self._thread.start()
            self._jobs.append(job)
            self._cv.notify()

    @property
    def queued(self) -> int:
        return len(self._jobs)

    def _take(self) -> list[_Job] | None:
        with self._cv:
            while not self._jobs and not self._closed:
                self._cv.wait()
            if not self._jobs:
                return None
            first = self._jobs.popleft()
            group = [first]
            if first.fn is None:
                while (self._jobs and len(group) < MAX_GROUP and self._jobs[0].fn is None
                       and self._jobs[0].store is first.store):
                    group.append(self._jobs.popleft())
            return group

    def _main(self) -> None:
        while (group := self._take()) is not None:
            if group[0].fn is not None:
                self._run_plain(group[0])
            else:
                self._run_group(group)

    @staticmethod
    def _deliver(job: _Job, result: Any, exc: BaseException | None) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for it any more
            job.loop.call_soon_threadsafe(_settle, job.future, result, exc)

    def _run_plain(self, job: _Job) -> None:
        assert job.fn is not None
        try:
            result = job.fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting coroutine
            self._deliver(job, None, exc)
        else:
            self._deliver(job, result, None)

    def _run_group(self, group: list[_Job]) -> None:
        store = group[0].store
        assert store is not None
        try:
            with applying_remote():
                before = store.version_vector()
                outcomes = store.apply_change_lists([j.records for j in group])
                after = store.version_vector()
        except BaseException as exc:  # noqa: BLE001 - a store failure fails the whole group
            for job in group:
                self._deliver(job, None, exc)
            return
        self.counts.segments += len(group)
        self.counts.commits += 1
        self.counts.largest_group = max(self.counts.largest_group, len(group))
        for job, outcome in zip(group, outcomes, strict=True):
            self._deliver(job, Applied(outcome, dict(before), after), None)
            for origin, seq, _ in job.records:  # what the next segment of the group may find
                if before.get(origin, 0) < seq <= after.get(origin, 0):
                    before[origin] = seq

    def shutdown(self) -> None:
        """Drop queued jobs (their waiters are cancelled) and wait for the running one."""
        with self._cv:
            self._closed = True
            dropped = list(self._jobs)
            self._jobs.clear()
            self._cv.notify_all()
        for job in dropped:
            with contextlib.suppress(RuntimeError):
                job.loop.call_soon_threadsafe(job.future.cancel)
        if self._thread.ident is not None and threading.current_thread() is not self._thread:
            self._thread.join()


class Workers:
    """A pool for reads and bookkeeping, and one thread for applies (grouped)."""

    def __init__(self, name: str, threads: int = 4) -> None:
        self.name = name
        self.io = ThreadPoolExecutor(threads, thread_name_prefix=name)
        self.applies = ApplyCounts()
        self._applier = _ApplyThread(f"{name}-apply", self.applies)

    def __repr__(self) -> str:
        return f"<Workers {self.name}>"

    @property
    def apply_queue(self) -> int:
        """Jobs waiting for the apply thread (not counting the one running)."""
        return self._applier.queued

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the pool."""
        return await asyncio.get_running_loop().run_in_executor(self.io, fn, *args)

    async def apply(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the apply thread, after everything queued before it."""
        return await self.submit(fn, *args)

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue ``fn(*args)`` for the apply thread now (in call order with
        :meth:`apply_changes`); the future of the running loop resolves with its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._applier.submit(_Job(loop, future, fn=lambda: fn(*args)))
        return future

    def apply_changes(self, store: Store, records: list[RawChange]) -> asyncio.Future[Applied]:
        """Queue a change segment's records for the apply thread, which merges it together
        with the change segments of ``store`` queued next to it; the future (of the running
        loop) resolves once the group's commit is durable. Queued in call order."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Applied] = loop.create_future()
        self._applier.submit(_Job(loop, future, store=store, records=records))
        return future

    def shutdown(self) -> None:
        """Drop queued work and wait for what is running (an apply finishes whole)."""
        self._applier.shutdown()
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
