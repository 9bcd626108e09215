"""Continuous replication: :class:`Replicator` keeps one live connection per peer.

Reconnects with exponential backoff and "equal jitter"; reports per-peer
:class:`~replication.lag.PeerLag` through :meth:`Replicator.lag`. Runs in its own thread and
event loop, so synchronous and asyncio programs use it alike; store work runs on its
:class:`~replication.workers.Workers` and :meth:`Replicator.stop` waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl as _ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from engine import Store

from .expiry import expire_periodically
from .lag import PeerLag
from .link import (
    PEER_ERRORS,
    LoopThread,
    check_ssl,
    close_writer,
    dial,
    handshake,
    parse_address,
)
from .options import NetOptions
from .peers import hub_for, peer_lag
from .protocol import Hello, normalize_secret, send_error
from .session import Session
from .workers import ApplyCounts, Workers, collect_garbage_periodically

__all__ = ["Replicator"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _PeerState:
    address: str
    node_id: int | None = None
    region: str | None = None
    connected: bool = False
    attempts: int = 0
    last_error: str | None = None
    connected_event: threading.Event = field(default_factory=threading.Event)


class Replicator:
    """Continuous replication with ``peers``: catch up, then push every commit as it happens.

    One connection per peer, reconnected with exponential backoff and jitter; heartbeats and
    idle timeouts; bounded frames and send buffers. Use ``start()``/``stop()`` or ``with``.
    Runs in its own thread and event loop, so it works in synchronous and asyncio programs.

    :param peers: ``"host:port"`` addresses (or ``(host, port)`` tuples).
    :param secret: shared secret, as for :func:`serve`.
    :param ssl: a client-side ``ssl.SSLContext`` (server names are checked against the host).
    """

    def __init__(self, store: Store, peers: Iterable[str | tuple[str, int]],
                 secret: str | bytes | None = None, ssl: _ssl.SSLContext | None = None, *,
                 options: NetOptions | None = None) -> None:
        self.store = store
        # One link per distinct address: a peer listed twice must not shift the pairing of
        # addresses and per-peer states in start().
        self._addrs = list(dict.fromkeys(parse_address(p) for p in peers))
        self._secret = normalize_secret(secret)
        self._ssl = check_ssl(ssl)
        self.options = options or NetOptions()
        self._peers = {f"{h}:{p}": _PeerState(f"{h}:{p}") for h, p in self._addrs}
        self._runner: LoopThread | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._workers: Workers | None = None
        self._stopping = False

    def __repr__(self) -> str:
        return f"<Replicator node={self.store.node_id:016x} peers={list(self._peers)}>"

    def start(self) -> Replicator:
        """Start replicating in a background thread; return at once (:meth:`wait_connected`
        waits for the links)."""
        if self._runner is not None:
            return self
        self._stopping = False
        workers = self._workers = Workers(f"regiondb-repl-{self.store.region}")
        self._runner = LoopThread(f"regiondb-repl-{self.store.region}")

        async def launch() -> None:
            self._tasks = [asyncio.ensure_future(self._run_peer(st, h, p, workers))
                           for st, (h, p) in zip(self._peers.values(), self._addrs,
                                                 strict=True)]
            self._tasks.append(asyncio.ensure_future(collect_garbage_periodically(
                self.store, workers, self.options.gc_interval)))
            self._tasks.append(asyncio.ensure_future(expire_periodically(self.store, workers)))

        self._runner.run(launch(), timeout=10)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close every connection and end the thread; once it returns, no apply of this
        replicator is still running (the store may be closed). Idempotent."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._stopping = True

        async def halt() -> None:
            for t in self._tasks:
                t.cancel()
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=max(0.1, timeout - 1))

        try:
            runner.run(halt(), timeout=timeout)
        finally:
            runner.stop()
            if self._workers is not None:
                self._workers.shutdown()

    def __enter__(self) -> Replicator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_connected(self, timeout: float = 10.0) -> bool:
        """Wait until every peer has been connected at least once; ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        return all(st.connected_event.wait(max(0.0, deadline - time.monotonic()))
                   for st in self._peers.values())

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every peer has acknowledged all this store held when called.

        Use it before ``stop()`` when the last writes must have left this node (a batch job,
        a shutdown). Returns ``False`` on timeout; nothing is lost either way: unsent changes
        stay in the log and go out on the next connection.
        """
        target = self.store.version_vector()
        hub = hub_for(self.store)
        deadline = time.monotonic() + timeout
        while True:
            states = [hub.peers.get(st.node_id) if st.node_id is not None else None
                      for st in self._peers.values()]
            if all(ps is not None and ps.unacked(target) == 0 for ps in states):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.002)

    @property
    def applies(self) -> ApplyCounts:
        """Change segments received and applied so far, and the commits they took (segments
        that arrived together share one: :mod:`replication.workers`). A copy; diagnostic."""
        return replace(self._workers.applies) if self._workers is not None else ApplyCounts()

    def lag(self) -> dict[str, PeerLag]:
        """Per peer address: replication latency (last/p50/p99 ms) and unacknowledged changes."""
        hub = hub_for(self.store)
        vv = self.store.version_vector()
        return {addr: peer_lag(addr, st.node_id, st.region, st.connected, st.last_error,
                               hub.peers.get(st.node_id) if st.node_id is not None else None, vv)
                for addr, st in self._peers.items()}

    def _backoff(self, attempt: int) -> float:
        d = min(self.options.backoff_max, self.options.backoff_base * (1 << min(attempt, 30)))
        return d / 2 + random.uniform(0, d / 2)  # "equal jitter"

    async def _run_peer(self, st: _PeerState, host: str, port: int, workers: Workers) -> None:
        while not self._stopping:
            try:
                reader, writer, hello = await dial(self.store, host, port, self._ssl,
                                                   self.options, workers)
            except (TimeoutError, OSError) as exc:
                st.last_error = f"connect: {exc or type(exc).__name__}"
                log.debug("%s: cannot connect: %s", st.address, st.last_error)
            else:
                await self._converse(st, reader, writer, workers, hello)
            delay = self._backoff(st.attempts)
            st.attempts += 1
            await asyncio.sleep(delay)

    async def _converse(self, st: _PeerState, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter, workers: Workers, hello: Hello) -> None:
        label = st.address
        try:
            peer, channel = await handshake(self.store, reader, writer, self._secret,
                                            self.options, workers, initiator=True, hello=hello)
            st.node_id, st.region, st.connected, st.attempts = peer.node, peer.region, True, 0
            st.last_error = None
            st.connected_event.set()
            label = f"{st.address} (node {peer.node:016x} {peer.region})"
            log.info("%s: connected", label)
            session = Session(self.store, reader, writer, peer, channel=channel,
                              initiator=True, options=self.options, workers=workers,
                              label=label)
            await session.run()
        except EOFError:
            st.last_error = "closed by the peer"
            log.info("%s: closed by the peer", label)
        except PEER_ERRORS as exc:
            st.last_error = f"{type(exc).__name__}: {exc}"
            log.error("%s: %s", label, st.last_error)
            await send_error(writer, exc)
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            st.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("%s: connection lost: %s", label, st.last_error)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            st.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("%s: internal error", label)
        finally:
            st.connected = False
            await close_writer(writer)
