"""What this process knows about its peers, per store: the hub that every session shares.

A store that is served and replicated in one process has one :class:`Hub` (:func:`hub_for`),
whichever threads and event loops its sessions run on. It owns:

- **wake-ups**: the store's commit listener. It runs in the committing thread, right after the
  commit, and only schedules: one ``call_soon_threadsafe`` per event loop that has a pushing
  session not already woken, however many sessions that loop runs. Standby sessions (see
  :meth:`Hub.elect`) are not woken by commits: they push nothing. Commits that apply remote
  changes (:func:`applying_remote`) wake pushers ``relay_delay/4`` later, coalesced: such
  changes are only relayed once ``relay_delay`` old anyway.
- **peer knowledge**: each peer's best known vv (:meth:`Hub.know`, from handshakes, segment
  headers, ``ACK``, ``STATE`` and ``DONE``), which the senders use to skip what a peer has.
- **pusher election**: of two live connections between the same two nodes, only the one the
  lower node id opened pushes (``docs/protocol.md`` §6).
- **per-peer counters** (:class:`PeerStats`): acknowledged vv, lag windows, segment and
  change counts, the last error; :func:`peer_lag` and :func:`peer_rows` report them.

Everything here is in memory and per process; the ack table that garbage collection reads is
persisted by the sessions (``exchange.record_peer``), throttled.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine import Store

from .lag import LAG_WINDOW, LagStats, PeerLag, lag_stats
from .protocol import PeerInfo
from .vv import merge_into

__all__ = ["Hub", "Member", "PeerStats", "Waker", "applying_remote", "hub_for", "peer_lag",
           "peer_rows"]


@dataclass(slots=True)
class PeerStats:
    """Counters for one peer node, shared by every session with it in this process."""

    node: int
    region: str = ""
    acked: dict[int, int] = field(default_factory=dict)
    acks: dict[int, dict[int, int]] = field(default_factory=dict)
    forgotten: frozenset[int] = frozenset()
    out_lag: deque[float] = field(default_factory=lambda: deque(maxlen=LAG_WINDOW))
    in_lag: deque[float] = field(default_factory=lambda: deque(maxlen=LAG_WINDOW))
    sessions: int = 0
    segments_sent: int = 0
    segments_received: int = 0
    changes_applied: int = 0
    refused: int = 0
    peak_buffered: int = 0  # most bytes ever waiting in one of our send buffers to this peer
    last_error: str | None = None
    stalled: dict[int, str] = field(default_factory=dict)  # origin -> why we refused its change
    dirty: bool = False  # acked/acks changed since the ack table was last written

    def unacked(self, vv: Mapping[int, int]) -> int:
        """Changes in ``vv`` the peer has not acknowledged."""
        return sum(max(0, s - self.acked.get(o, 0)) for o, s in vv.items())

    def adopt_acks(self, rows: Mapping[int, Mapping[int, int]]) -> None:
        """Merge an ack table the peer told us (a segment header's ``acks``)."""
        for node, row in rows.items():
            if merge_into(self.acks.setdefault(node, {}), row):
                self.dirty = True


_local = threading.local()


@contextmanager
def applying_remote() -> Iterator[None]:
    """Mark commits made by this thread meanwhile as applies of remote changes (for the hub).

    Pushing sessions are then woken a little later (:meth:`Waker.defer`) rather than at once:
    only our own changes go out immediately.
    """
    _local.remote = True
    try:
        yield
    finally:
        _local.remote = False


class Waker:
    """Wake-ups of one session's sender: from any thread, coalesced, optionally deferred.

    A flag set before scheduling and reset (in :meth:`wait`) before the event is cleared
    keeps at most one cross-thread call pending without ever losing a wake-up: a commit
    landing between the reset and the clear schedules a fresh ``set()``, which runs after
    the ``clear()`` (same loop).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, defer_delay: float) -> None:
        self.loop = loop
        self.defer_delay = defer_delay
        self._thread = threading.get_ident()
        self._event = asyncio.Event()
        self._flag = False  # a set() is scheduled or done, not yet consumed by wait()
        self._deferred = False  # a deferred set() is scheduled

    def claim(self) -> bool:
        """From any thread: ``True`` if no wake-up is pending; the caller then makes sure
        :meth:`now` runs on the loop (the hub does, once per loop)."""
        if self._flag:
            return False
        self._flag = True
        return True

    def now(self) -> None:
        """Wake up (on the loop)."""
        self._event.set()

    def threadsafe(self) -> None:
        """Wake up from any thread."""
        if self.claim():
            with contextlib.suppress(RuntimeError):  # loop closed
                self.loop.call_soon_threadsafe(self._event.set)

    def defer(self) -> None:
        """From any thread: wake up ``defer_delay`` from now unless already due sooner."""
        if self._deferred or self._flag:
            return
        self._deferred = True
        if threading.get_ident() == self._thread:
            self.loop.call_later(self.defer_delay, self._deferred_set)
            return
        with contextlib.suppress(RuntimeError):  # loop closed
            self.loop.call_soon_threadsafe(self.loop.call_later, self.defer_delay,
                                           self._deferred_set)

    def _deferred_set(self) -> None:
        self._deferred = False
        self._event.set()

    async def wait(self, timeout: float | None) -> None:
        """Until woken or ``timeout`` seconds passed (``asyncio.timeout``: no task per wait)."""
        if not self._event.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._event.wait()
        self._flag = False
        self._event.clear()


def _wake_all(group: list[Waker]) -> None:
    for w in group:
        w.now()


class Member(Protocol):
    """What the hub needs of a live session (:class:`replication.session.Session` is one).

    The hub only schedules wake-ups and elects pushers; sessions depend on it, never the
    reverse, so this module does not import the session module.
    """

    @property
    def peer(self) -> PeerInfo: ...
    @property
    def live(self) -> bool: ...
    @property
    def initiator(self) -> bool: ...
    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...
    @property
    def waker(self) -> Waker: ...
    @property
    def wants_commits(self) -> bool:
        """Whether commits of this store should wake the session's sender."""
    def set_pusher(self, on: bool) -> None:
        """Make the session the one that pushes to its peer (or not)."""


class Hub:
    """Per-Store registry of live sessions: wake-ups, peer knowledge, pusher election."""

    def __init__(self, store: Store) -> None:
        # Weakly: _hubs is keyed weakly by the store, and a strong reference from the value
        # would keep every store (and its hub) that ever replicated alive for ever.
        self._store = weakref.ref(store)
        self.lock = threading.Lock()
        self.sessions: set[Member] = set()
        self.peers: dict[int, PeerStats] = {}
        self.known: dict[int, dict[int, int]] = {}  # best knowledge of each peer's vv
        self._listening = False
        self._last_gc = time.monotonic()

    @property
    def store(self) -> Store:
        store = self._store()
        if store is None:  # only reachable through a session, which holds the store
            raise ReferenceError("the store of this hub is gone")
        return store

    def __repr__(self) -> str:
        return f"<Hub node={self.store.node_id:016x} sessions={len(self.sessions)}>"

    def gc_due(self, interval: float) -> bool:
        """True at most once per ``interval`` across all sessions of this store."""
        with self.lock:
            now = time.monotonic()
            if now - self._last_gc < interval:
                return False
            self._last_gc = now
            return True

    def peer(self, node: int) -> PeerStats:
        """The counters of ``node`` (created on first use)."""
        with self.lock:
            st = self.peers.get(node)
            if st is None:
                st = self.peers[node] = PeerStats(node)
            return st

    def register(self, s: Member) -> None:
        """Add a session; the first one subscribes the hub to the store's commits."""
        with self.lock:
            self.sessions.add(s)
            if not self._listening:
                self.store.add_listener(self._on_commit)
                self._listening = True
        self.peer(s.peer.node).sessions += 1
        self.elect(s.peer.node)

    def unregister(self, s: Member) -> None:
        """Remove a session; the last one unsubscribes; a standby may become the pusher."""
        with self.lock:
            self.sessions.discard(s)
            if not self.sessions and self._listening:
                self.store.remove_listener(self._on_commit)
                self._listening = False
        self.peer(s.peer.node).sessions -= 1
        self.elect(s.peer.node)

    def elect(self, node: int) -> None:
        """Mark which live session pushes to ``node``: the one the lower node id opened."""
        with self.lock:
            live = [s for s in self.sessions if s.peer.node == node and s.live]
        if not live:
            return
        me = self.store.node_id
        preferred = [s for s in live if (s.initiator and me < node) or
                     (not s.initiator and node < me)]
        chosen = (preferred or live)[0]
        for s in live:
            s.set_pusher(s is chosen)

    def forget_known(self, node: int) -> None:
        """Drop what ``node`` told us it holds (a new handshake tells it afresh)."""
        with self.lock:
            self.known.pop(node, None)

    def know(self, node: int, vv: Mapping[int, int]) -> dict[int, int]:
        """Merge what ``node`` told us it holds; return a copy of all we know it holds."""
        with self.lock:
            k = self.known.setdefault(node, {})
            merge_into(k, vv)
            return dict(k)

    def _on_commit(self, position: int) -> None:
        # Runs in the committing thread, right after the commit: only schedule wake-ups, one
        # per event loop (a loop usually runs several sessions of this store).
        with self.lock:
            sessions = list(self.sessions)
        if getattr(_local, "remote", False):
            # Remote changes are relayed once relay_delay old and their vv advertised at most
            # once per relay_delay/4: waking then loses nothing, and under load it replaces a
            # wake-up per applied segment by one per interval.
            for s in sessions:
                if s.wants_commits and s.live:
                    s.waker.defer()
            return
        groups: dict[asyncio.AbstractEventLoop, list[Waker]] = {}
        for s in sessions:
            if s.wants_commits and s.waker.claim():
                groups.setdefault(s.loop, []).append(s.waker)
        for loop, group in groups.items():
            with contextlib.suppress(RuntimeError):  # loop closed; its sessions are ending
                loop.call_soon_threadsafe(_wake_all, group)


_hubs: weakref.WeakKeyDictionary[Store, Hub] = weakref.WeakKeyDictionary()
_hubs_lock = threading.Lock()


def hub_for(store: Store) -> Hub:
    """The hub of ``store`` in this process (created on first use)."""
    with _hubs_lock:
        hub = _hubs.get(store)
        if hub is None:
            hub = _hubs[store] = Hub(store)
        return hub


def peer_lag(address: str, node_id: int | None, region: str | None, connected: bool,
             last_error: str | None, ps: PeerStats | None, vv: Mapping[int, int]) -> PeerLag:
    """A :class:`PeerLag` for one configured peer from its counters (``None``: never met)."""
    if ps is None:
        return PeerLag(address, node_id, region, connected, None, None, None, 0,
                       sum(vv.values()), LagStats(), last_error)
    out = lag_stats(ps.out_lag)
    return PeerLag(address, node_id, region, connected, out.last_ms, out.p50_ms, out.p99_ms,
                   out.samples, ps.unacked(vv), lag_stats(ps.in_lag), last_error or ps.last_error,
                   {o: why for o, why in ps.stalled.items()})


def _lag_dict(s: LagStats) -> dict[str, Any]:
    return {"last": s.last_ms, "p50": s.p50_ms, "p99": s.p99_ms, "samples": s.samples}


def peer_rows(peers: Iterable[PeerStats], vv: Mapping[int, int]) -> list[dict[str, Any]]:
    """The ``peers`` part of :func:`replication.status`, one plain dict per peer node."""
    return [{
        "node_id": ps.node, "region": ps.region, "sessions": ps.sessions,
        "acked": dict(ps.acked), "unacked": ps.unacked(vv),
        "lag_ms": _lag_dict(lag_stats(ps.out_lag)),
        "inbound_lag_ms": _lag_dict(lag_stats(ps.in_lag)),
        "segments_sent": ps.segments_sent, "segments_received": ps.segments_received,
        "changes_applied": ps.changes_applied, "refused": ps.refused,
        "last_error": ps.last_error, "stalled": dict(ps.stalled),
    } for ps in sorted(peers, key=lambda p: p.node)]
