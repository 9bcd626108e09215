"""Socket replication: :func:`serve`, one-shot :func:`sync` and continuous :class:`Replicator`.

The wire protocol is in ``docs/protocol.md`` (:mod:`replication.protocol` implements the frames
and the handshake, :mod:`replication.session` the streaming phase). This module owns the
lifecycles:

- :func:`serve` starts an asyncio server in a background thread with its own event loop and
  returns once it listens, so a plain synchronous program can use it; asyncio programs may
  call it too (the server lives on its own loop) or use :func:`serve_async` to run it on
  theirs. Each connection is handshaken (HMAC both ways when a secret is set, optional TLS),
  then streams both ways until the peer leaves; a bad peer is logged, told why, and closed,
  and the server keeps serving the others.
- :func:`sync` connects, exchanges what each side lacks, waits for both sides' ACKs and
  returns a :class:`SocketSyncReport` (:func:`sync_async` for asyncio code).
- :class:`Replicator` keeps one connection per peer, reconnecting with exponential backoff and
  jitter, and reports per-peer :class:`~replication.lag.PeerLag` through :meth:`lag`.

A store that is served and replicated in one process shares one hub (wake-ups on commit, the
peers' vvs, lag samples), so :func:`status` sees every connection of the store.

>>> import engine, replication, tempfile
>>> a = engine.open(tempfile.mkdtemp(), region="ap-south-1")
>>> b = engine.open(tempfile.mkdtemp(), region="us-east-1")
>>> _ = a.create_table("orders", partition_key="id").put({"id": "o1", "total": 5})
>>> with replication.serve(a, secret="s3cret") as server:
...     report = replication.sync(b, server.address, secret="s3cret")
>>> b.table("orders").get("o1")["total"], a.digest() == b.digest()
(5, True)
>>> a.close(); b.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl as _ssl
import threading
import time
from collections.abc import Coroutine, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from engine import Store
from engine.errors import (
    AuthError,
    ClockSkewError,
    ForgottenNodeError,
    ProtocolError,
    SegmentError,
    ValidationError,
)

from . import exchange, lineage
from .lag import PeerLag
from .lineage import Reidentified
from .peers import hub_for, peer_lag, peer_rows
from .protocol import (
    Hello,
    PeerInfo,
    client_handshake,
    normalize_secret,
    send_error,
    server_handshake,
)
from .session import NetOptions, Session

__all__ = [
    "AsyncServer",
    "NetOptions",
    "PeerLag",
    "Replicator",
    "Server",
    "SocketSyncReport",
    "parse_address",
    "serve",
    "serve_async",
    "status",
    "sync",
    "sync_async",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
_PEER_ERRORS = (AuthError, ProtocolError, ForgottenNodeError, SegmentError, ClockSkewError)


def parse_address(address: str | tuple[str, int]) -> tuple[str, int]:
    """``"host:port"``, ``"[v6]:port"`` or ``(host, port)`` -> ``(host, port)``.

    :raises ValidationError: for anything else.
    """
    if isinstance(address, tuple) and len(address) == 2:
        host, port = address
    elif isinstance(address, str) and ":" in address:
        host, _, port_s = address.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            port = int(port_s)
        except ValueError:
            raise ValidationError(f"bad port in address {address!r}") from None
    else:
        raise ValidationError(f"address must be 'host:port' or (host, port), not {address!r}")
    if not isinstance(host, str) or not host or not isinstance(port, int) \
            or not 0 <= port < 65536:
        raise ValidationError(f"bad address {address!r}")
    return host, port


def _check_ssl(ctx: object) -> _ssl.SSLContext | None:
    if ctx is not None and not isinstance(ctx, _ssl.SSLContext):
        raise ValidationError(f"ssl must be an ssl.SSLContext or None, not {type(ctx).__name__}")
    return ctx


def _hello(store: Store, options: NetOptions, mode: str) -> Hello:
    vv, acks, forgotten = exchange.local_state(store)
    return Hello(store.node_id, store.region, dict(vv), {k: dict(v) for k, v in acks.items()},
                 frozenset(forgotten), max_frame=options.max_frame, mode=mode,
                 tips=lineage.tips(store))


async def _handshake(store: Store, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     secret: bytes | None, options: NetOptions, executor: Executor | None, *,
                     initiator: bool, mode: str = "live",
                     deadline: float | None = None) -> PeerInfo:
    """Exchange HELLOs and authenticate, within ``options.handshake_timeout`` (and before
    ``deadline``, loop time). Ours is built in ``executor``: it reads the store.

    :raises AuthError, ProtocolError, ForgottenNodeError: as the handshake finds.
    :raises TimeoutError: if the peer does not finish in time.
    """
    loop = asyncio.get_running_loop()
    me = await loop.run_in_executor(executor, _hello, store, options, mode)
    shake = client_handshake if initiator else server_handshake
    timeout = options.handshake_timeout
    if deadline is not None:
        timeout = max(0.0, min(timeout, deadline - loop.time()))
    peer = await asyncio.wait_for(
        shake(reader, writer, me, secret, timeout=options.handshake_timeout), timeout)
    # First contact: a store that reused seqs of its own id (restored from a backup) must not
    # go on under it. It re-identifies; this connection, made under the old id, ends.
    new = await loop.run_in_executor(executor, lineage.check_peer, store, peer.node, peer.vv,
                                     peer.tips)
    if new is not None:
        raise Reidentified(f"this store reused seqs of node {me.node:016x} (restored from a "
                           f"backup?): it is now node {new:016x}; reconnect")
    return peer


def _peer_label(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "?"


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(TimeoutError, OSError, _ssl.SSLError):
        await asyncio.wait_for(writer.wait_closed(), 1.0)


# ------------------------------------------------------------------------------- server


class AsyncServer:
    """A server on the running asyncio loop (see :func:`serve_async`)."""

    def __init__(self, store: Store, host: str, port: int, secret: bytes | None,
                 ssl: _ssl.SSLContext | None, options: NetOptions) -> None:
        self.store = store
        self._host, self._port = host, port
        self._secret = secret
        self._ssl = ssl
        self.options = options
        self._server: asyncio.base_events.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._executor = ThreadPoolExecutor(4, thread_name_prefix="regiondb-net")
        self.refused: dict[str, int] = {}  # error class name -> count of peers turned away
        self.address: tuple[str, int] = (host, port)

    async def start(self) -> AsyncServer:
        self._server = await asyncio.start_server(
            self._handle, self._host, self._port, ssl=self._ssl,
            ssl_handshake_timeout=self.options.handshake_timeout if self._ssl else None)
        self.address = self._server.sockets[0].getsockname()[:2]
        log.info("serving %s (node %016x) on %s:%d%s", self.store.path, self.store.node_id,
                 *self.address, " with TLS" if self._ssl else "")
        return self

    @property
    def connections(self) -> int:
        return len(self._handlers)

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
        for t in list(self._handlers):
            t.cancel()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=5.0)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def __aenter__(self) -> AsyncServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _count(self, exc: BaseException) -> None:
        name = type(exc).__name__
        self.refused[name] = self.refused.get(name, 0) + 1

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        label = _peer_label(writer)
        if len(self._handlers) >= self.options.max_connections:
            log.warning("%s: refused, %d connections open", label, len(self._handlers))
            await send_error(writer, ProtocolError("server busy: too many connections"))
            await _close(writer)
            return
        self._handlers.add(task)
        try:
            peer = await _handshake(self.store, reader, writer, self._secret, self.options,
                                    self._executor, initiator=False)
            label = f"{label} (node {peer.node:016x} {peer.region}, {peer.mode})"
            log.info("%s: connected", label)
            session = Session(self.store, reader, writer, peer, initiator=False,
                              options=self.options, executor=self._executor, label=label)
            await session.run()
        except EOFError:
            log.info("%s: closed by the peer", label)
        except _PEER_ERRORS as exc:
            self._count(exc)
            log.warning("%s: %s: %s", label, type(exc).__name__, exc)
            await send_error(writer, exc)
        except TimeoutError as exc:
            self._count(TimeoutError())
            log.warning("%s: timed out: %s", label, exc or "handshake not finished in time")
        except (OSError, asyncio.IncompleteReadError) as exc:
            log.info("%s: connection lost: %s", label, exc)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # a bug must not take the server down with it
            log.exception("%s: internal error", label)
            await send_error(writer, exc)
        finally:
            self._handlers.discard(task)
            await _close(writer)


class _LoopThread:
    """An event loop running in a daemon thread."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        self.loop.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self.thread:
            self.thread.join(10)


class Server:
    """A running server (from :func:`serve`): ``.address``, ``.close()``, a context manager."""

    def __init__(self, inner: AsyncServer, runner: _LoopThread) -> None:
        self._inner = inner
        self._runner = runner
        self._closed = threading.Event()
        self.address: tuple[str, int] = inner.address

    @property
    def refused(self) -> dict[str, int]:
        """Peers turned away so far, by error class (``AuthError``, ``ProtocolError``, …)."""
        return dict(self._inner.refused)

    @property
    def connections(self) -> int:
        return self._inner.connections

    def close(self) -> None:
        """Stop listening, close every connection and end the thread. Idempotent."""
        if self._closed.is_set():
            return
        try:
            self._runner.run(self._inner.close(), timeout=10)
        finally:
            self._runner.stop()
            self._closed.set()

    def serve_forever(self) -> None:
        """Block until :meth:`close` (from another thread or a signal handler) or Ctrl-C.

        For a CLI: ``server = serve(...); rep = Replicator(...).start(); server.serve_forever()``.
        """
        try:
            while not self._closed.wait(0.5):
                pass
        finally:
            self.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed.is_set() else "serving"
        host, port = self.address
        return f"<Server {host}:{port} node={self._inner.store.node_id:016x} {state}>"


def serve(store: Store, host: str = "127.0.0.1", port: int = 0, secret: str | bytes | None = None,
          ssl: _ssl.SSLContext | None = None, *, options: NetOptions | None = None) -> Server:
    """Serve ``store`` to peers from a background thread; return once listening.

    :param port: 0 picks a free port; read it from ``server.address``.
    :param secret: shared secret; peers must prove they know it (and so must we).
    :param ssl: a server-side ``ssl.SSLContext`` to wrap connections in TLS.
    :raises OSError: if the address cannot be bound.
    :raises ValidationError: for bad arguments.
    """
    key = normalize_secret(secret)
    ctx = _check_ssl(ssl)
    runner = _LoopThread(f"regiondb-serve-{store.region}")

    async def start() -> AsyncServer:
        return await AsyncServer(store, host, port, key, ctx, options or NetOptions()).start()

    try:
        inner = runner.run(start(), timeout=30)
    except BaseException:
        runner.stop()
        raise
    return Server(inner, runner)


async def serve_async(store: Store, host: str = "127.0.0.1", port: int = 0,
                      secret: str | bytes | None = None, ssl: _ssl.SSLContext | None = None,
                      *, options: NetOptions | None = None) -> AsyncServer:
    """Like :func:`serve`, on the running loop: ``async with await serve_async(...) as s:``."""
    return await AsyncServer(store, host, port, normalize_secret(secret), _check_ssl(ssl),
                             options or NetOptions()).start()


# ------------------------------------------------------------------------------- sync


@dataclass(slots=True)
class SocketSyncReport:
    """What a one-shot :func:`sync` did, from this store's point of view.

    ``sent``: changes the peer gained from us (its acknowledged vv minus its starting vv);
    ``applied``/``skipped``/``conflicts``: changes we received; ``refused``: origins whose
    changes we did not apply yet (clock skew: they apply on a later sync); ``peer_refused``:
    origins of ours the peer did not apply yet, and why.
    """

    peer: str
    node_id: int
    region: str
    sent: int = 0
    segments_sent: int = 0
    segments_received: int = 0
    applied: int = 0
    skipped: int = 0
    conflicts: int = 0
    refused: dict[int, str] = field(default_factory=dict)
    peer_refused: dict[int, str] = field(default_factory=dict)
    snapshot_sent: bool = False
    snapshot_received: bool = False
    bytes_sent: int = 0
    bytes_received: int = 0
    seconds: float = 0.0


async def _connect(host: str, port: int, ctx: _ssl.SSLContext | None,
                   options: NetOptions) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=ctx, server_hostname=host if ctx else None,
                                limit=1 << 20),
        options.connect_timeout)


async def sync_async(store: Store, address: str | tuple[str, int],
                     secret: str | bytes | None = None, ssl: _ssl.SSLContext | None = None,
                     timeout: float = 300.0, *,
                     options: NetOptions | None = None) -> SocketSyncReport:
    """:func:`sync` for asyncio code (runs on the current loop; store work in threads)."""
    try:
        return await _sync_once(store, address, secret, ssl, timeout, options=options)
    except Reidentified as exc:  # the store re-identified at the handshake: once more as itself
        log.warning("%s", exc)
        return await _sync_once(store, address, secret, ssl, timeout, options=options)


async def _sync_once(store: Store, address: str | tuple[str, int],
                     secret: str | bytes | None, ssl: _ssl.SSLContext | None,
                     timeout: float, *, options: NetOptions | None) -> SocketSyncReport:
    host, port = parse_address(address)
    key = normalize_secret(secret)
    ctx = _check_ssl(ssl)
    opts = options or NetOptions()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    deadline = t0 + timeout
    reader, writer = await _connect(host, port, ctx, opts)
    executor = ThreadPoolExecutor(2, thread_name_prefix="regiondb-sync")
    try:
        peer = await _handshake(store, reader, writer, key, opts, executor, initiator=True,
                                mode="sync", deadline=deadline)
        label = f"sync with {host}:{port} (node {peer.node:016x} {peer.region})"
        session = Session(store, reader, writer, peer, initiator=True, options=opts,
                          executor=executor, label=label)
        try:
            await session.run_sync(deadline)
        except (AuthError, ProtocolError, SegmentError) as exc:
            await send_error(writer, exc)
            raise
        gained = sum(max(0, s - peer.vv.get(o, 0)) for o, s in session.stats.acked.items())
        report = SocketSyncReport(
            f"{host}:{port}", peer.node, peer.region, sent=gained,
            segments_sent=session.segments_sent, segments_received=session.segments_received,
            applied=session.applied, skipped=session.skipped, conflicts=session.conflicts,
            refused=dict(session.refused), peer_refused=dict(session.peer_refused),
            snapshot_sent=session.snapshot_sent,
            snapshot_received=session.snapshot_received, bytes_sent=session.bytes_sent,
            bytes_received=session.bytes_received, seconds=loop.time() - t0)
        log.info("%s: sent %d, applied %d, refused %d origins in %.3f s", label, report.sent,
                 report.applied, len(report.refused), report.seconds)
        return report
    except (AuthError, ProtocolError, ForgottenNodeError) as exc:
        await send_error(writer, exc)
        raise
    finally:
        await _close(writer)
        executor.shutdown(wait=False)


def sync(store: Store, address: str | tuple[str, int], secret: str | bytes | None = None,
         ssl: _ssl.SSLContext | None = None, timeout: float = 300.0, *,
         options: NetOptions | None = None) -> SocketSyncReport:
    """Exchange changes with the node at ``address`` once, both ways; return a report.

    Returns when both sides have sent everything the other lacked and both acknowledged it.
    Changes refused for clock skew are reported (``report.refused``), not raised.

    :raises AuthError: wrong or missing secret on either side.
    :raises ProtocolError: the peer broke the protocol.
    :raises ForgottenNodeError: one side forgot the other.
    :raises TimeoutError: not done within ``timeout`` seconds.
    :raises OSError: the connection could not be made or was lost (nothing half-applied).
    """
    coro = sync_async(store, address, secret, ssl, timeout, options=options)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from inside a running loop: run on a private loop in a thread instead.
    runner = _LoopThread("regiondb-sync")
    try:
        return runner.run(coro)
    finally:
        runner.stop()


# ------------------------------------------------------------------------------- Replicator


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
        self._ssl = _check_ssl(ssl)
        self.options = options or NetOptions()
        self._peers = {f"{h}:{p}": _PeerState(f"{h}:{p}") for h, p in self._addrs}
        self._runner: _LoopThread | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._executor: ThreadPoolExecutor | None = None
        self._stopping = False

    def __repr__(self) -> str:
        return f"<Replicator node={self.store.node_id:016x} peers={list(self._peers)}>"

    def start(self) -> Replicator:
        """Start replicating in a background thread; return at once (:meth:`wait_connected`
        waits for the links)."""
        if self._runner is not None:
            return self
        self._stopping = False
        self._executor = ThreadPoolExecutor(4, thread_name_prefix="regiondb-repl")
        self._runner = _LoopThread(f"regiondb-repl-{self.store.region}")

        async def launch() -> None:
            self._tasks = [asyncio.ensure_future(self._run_peer(st, h, p))
                           for st, (h, p) in zip(self._peers.values(), self._addrs,
                                                 strict=True)]

        self._runner.run(launch(), timeout=10)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close every connection and end the thread. Idempotent."""
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
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)

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

    async def _run_peer(self, st: _PeerState, host: str, port: int) -> None:
        while not self._stopping:
            try:
                reader, writer = await _connect(host, port, self._ssl, self.options)
            except (TimeoutError, OSError) as exc:
                st.last_error = f"connect: {exc or type(exc).__name__}"
                log.debug("%s: cannot connect: %s", st.address, st.last_error)
            else:
                await self._converse(st, reader, writer)
            delay = self._backoff(st.attempts)
            st.attempts += 1
            await asyncio.sleep(delay)

    async def _converse(self, st: _PeerState, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        label = st.address
        try:
            peer = await _handshake(self.store, reader, writer, self._secret, self.options,
                                    self._executor, initiator=True)
            st.node_id, st.region, st.connected, st.attempts = peer.node, peer.region, True, 0
            st.last_error = None
            st.connected_event.set()
            label = f"{st.address} (node {peer.node:016x} {peer.region})"
            log.info("%s: connected", label)
            session = Session(self.store, reader, writer, peer, initiator=True,
                              options=self.options, executor=self._executor, label=label)
            await session.run()
        except EOFError:
            st.last_error = "closed by the peer"
            log.info("%s: closed by the peer", label)
        except _PEER_ERRORS as exc:
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
            await _close(writer)


def status(store: Store) -> dict[str, Any]:
    """Replication status of ``store`` for ``regiondb status``: vv, ack table, live peers.

    ``peers`` lists the nodes this process has sessions or history with (empty in a process
    that is not serving or replicating): region, connected sessions, acknowledged vv,
    unacknowledged changes, lag (outbound and inbound, ms) and the last error.
    """
    vv, acks, forgotten = exchange.local_state(store)
    peers = peer_rows(list(hub_for(store).peers.values()), vv)
    return {"node_id": store.node_id, "region": store.region, "vv": dict(vv),
            "acks": {k: dict(v) for k, v in acks.items()}, "forgotten": sorted(forgotten),
            "peers": peers}
