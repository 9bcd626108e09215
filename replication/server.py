"""The socket server: :func:`serve` (background thread) and :func:`serve_async` (your loop).

Each connection is handshaken (protocol v2: HMAC both ways when a secret is set, every later
frame tagged; optional TLS), then streams both ways until the peer leaves; a bad peer is
logged, told why, and closed, and the server keeps serving the others.

Admission control: connections still handshaking are *pending*; at most
``NetOptions.max_pending`` of them exist at once, each for at most ``handshake_timeout``. When
one more arrives, the oldest pending connection is dropped to admit it, so a flood of idle or
slow-loris sockets (from anywhere, the peer's own address included) can hold a slot only until
``max_pending`` newer connections arrived, while a real peer needs its slot for a round trip or
two. Connections that have not yet sent a well-formed HELLO are dropped before those that
have (a real peer sends its HELLO at once; an idle or dribbling socket never completes one),
and the server reads nothing from the store for them. Authenticated sessions count apart, up
to ``max_connections``: unauthenticated clients can never take their places.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as _ssl
import threading
import time
from collections import OrderedDict
from dataclasses import replace

from engine import Store
from engine.errors import ProtocolError

from .link import (
    PEER_ERRORS,
    LoopThread,
    as_transport_error,
    check_ssl,
    close_writer,
    handshake,
    peer_label,
)
from .options import NetOptions
from .protocol import normalize_secret, send_error
from .session import Session
from .workers import ApplyCounts, Workers, collect_garbage_periodically

__all__ = ["AsyncServer", "Server", "serve", "serve_async"]

log = logging.getLogger(__name__)
#: A pending connection younger than this (seconds) is not dropped for a newer one while the
#: pool may stretch to ``_STRETCH`` times ``max_pending``: a burst accepted in one go must not
#: evict connections whose HELLO is already in their socket, unread.
_GRACE = 0.25
_STRETCH = 4


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
        # Pending handshakes, oldest first: ``_fresh`` have not sent a well-formed HELLO yet,
        # ``_greeted`` have (and wait for their AUTH to be checked).
        self._fresh: OrderedDict[asyncio.Task[None], None] = OrderedDict()
        self._greeted: OrderedDict[asyncio.Task[None], None] = OrderedDict()
        self._sessions: set[asyncio.Task[None]] = set()
        self._evicted: set[asyncio.Task[None]] = set()
        self._admitted: dict[asyncio.Task[None], float] = {}
        self._loop_time = time.monotonic
        self._gc: asyncio.Task[None] | None = None
        self._workers = Workers(f"regiondb-serve-{store.region}")
        self.refused: dict[str, int] = {}  # error class name -> count of peers turned away
        self.address: tuple[str, int] = (host, port)

    def __repr__(self) -> str:
        return f"<AsyncServer {self.address[0]}:{self.address[1]} node={self.store.node_id:016x}>"

    async def start(self) -> AsyncServer:
        """Listen; a failure to bind is a :class:`TransportBrokenError` (an ``OSError``)."""
        try:
            await self._listen()
        except OSError as exc:
            wrapped = as_transport_error(exc, f"cannot listen on {self._host}:{self._port}")
            raise (wrapped or exc) from exc
        self._gc = asyncio.ensure_future(collect_garbage_periodically(
            self.store, self._workers, self.options.gc_interval))
        log.info("serving %s (node %016x) on %s:%d%s", self.store.path, self.store.node_id,
                 *self.address, " with TLS" if self._ssl else "")
        return self

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self._host, self._port)  # TLS per connection, inside admission
        self.address = self._server.sockets[0].getsockname()[:2]

    @property
    def connections(self) -> int:
        """Authenticated sessions open now."""
        return len(self._sessions)

    @property
    def pending(self) -> int:
        """Connections still handshaking."""
        return len(self._fresh) + len(self._greeted)

    async def close(self) -> None:
        """Stop listening, close every connection, and wait until no apply is running."""
        if self._server is not None:
            self._server.close()
        if self._gc is not None:
            self._gc.cancel()
        for t in list(self._handlers):
            t.cancel()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=5.0)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
        await asyncio.to_thread(self._workers.shutdown)

    async def __aenter__(self) -> AsyncServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _count(self, name: str) -> None:
        self.refused[name] = self.refused.get(name, 0) + 1

    def _admit(self, task: asyncio.Task[None]) -> None:
        """Add a pending handshake; past ``max_pending`` the oldest one makes room.

        The oldest of those that have not even sent a well-formed HELLO goes first (idle and
        slow-loris sockets never get past that); only when every pending connection has,
        the oldest of them.
        """
        self._fresh[task] = None
        self._admitted[task] = self._loop_time()
        while self.pending > max(1, self.options.max_pending):
            pool = self._fresh if len(self._fresh) > 1 or not self._greeted else self._greeted
            oldest = next(iter(pool))
            young = self._loop_time() - self._admitted.get(oldest, 0.0) < _GRACE
            if young and self.pending <= _STRETCH * self.options.max_pending:
                # Even the oldest is brand new (a burst accepted in one go): its HELLO may
                # be waiting in the socket unread. Let the pool stretch (up to a hard cap)
                # rather than drop a connection that had no chance to speak.
                return
            del pool[oldest]
            self._evicted.add(oldest)
            oldest.cancel()

    def _greet(self, task: asyncio.Task[None]) -> None:
        if self._fresh.pop(task, 0) is None:
            self._greeted[task] = None

    def _settle(self, task: asyncio.Task[None]) -> None:
        self._fresh.pop(task, None)
        self._greeted.pop(task, None)
        self._admitted.pop(task, None)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        label = peer_label(writer)
        self._handlers.add(task)
        self._admit(task)
        try:
            deadline = asyncio.get_running_loop().time() + self.options.handshake_timeout
            if self._ssl is not None:
                # The TLS handshake is part of the pending phase: a slow TLS client holds a
                # pending slot (and is dropped first) like any other slow client.
                async with asyncio.timeout_at(deadline):
                    await writer.start_tls(self._ssl)
            peer, channel = await handshake(self.store, reader, writer, self._secret,
                                            self.options, self._workers, initiator=False,
                                            deadline=deadline,
                                            on_hello=lambda: self._greet(task))
            self._settle(task)
            if len(self._sessions) >= self.options.max_connections:
                raise ProtocolError(f"server busy: {len(self._sessions)} sessions open")
            self._sessions.add(task)
            label = f"{label} (node {peer.node:016x} {peer.region}, {peer.mode})"
            log.info("%s: connected", label)
            session = Session(self.store, reader, writer, peer, channel=channel,
                              initiator=False, options=self.options, workers=self._workers,
                              label=label)
            await session.run()
        except EOFError:
            log.info("%s: closed by the peer", label)
        except PEER_ERRORS as exc:
            self._count(type(exc).__name__)
            log.warning("%s: %s: %s", label, type(exc).__name__, exc)
            await send_error(writer, exc)
        except TimeoutError as exc:
            self._count("TimeoutError")
            log.warning("%s: timed out: %s", label, exc or "handshake not finished in time")
        except (OSError, asyncio.IncompleteReadError) as exc:  # ssl.SSLError included
            log.info("%s: connection lost: %s", label, exc)
        except asyncio.CancelledError:
            if task in self._evicted:
                self._count("Evicted")
                log.debug("%s: pending handshake dropped for a newer connection", label)
                writer.transport.abort()
        except Exception as exc:  # a bug must not take the server down with it
            log.exception("%s: internal error", label)
            await send_error(writer, exc)
        finally:
            self._settle(task)
            self._sessions.discard(task)
            self._evicted.discard(task)
            self._handlers.discard(task)
            await close_writer(writer)


class Server:
    """A running server (from :func:`serve`): ``.address``, ``.close()``, a context manager."""

    def __init__(self, inner: AsyncServer, runner: LoopThread) -> None:
        self._inner = inner
        self._runner = runner
        self._closed = threading.Event()
        self.address: tuple[str, int] = inner.address

    @property
    def refused(self) -> dict[str, int]:
        """Peers turned away so far, by error class (``AuthError``, ``ProtocolError``, …;
        ``Evicted``: pending handshakes dropped to admit newer connections)."""
        return dict(self._inner.refused)

    @property
    def connections(self) -> int:
        """Authenticated sessions open now."""
        return self._inner.connections

    @property
    def pending(self) -> int:
        """Connections still handshaking."""
        return self._inner.pending

    @property
    def applies(self) -> ApplyCounts:
        """Change segments received and applied so far, and the commits they took (segments
        that arrived together share one: :mod:`replication.workers`). A copy; diagnostic."""
        return replace(self._inner._workers.applies)

    def close(self) -> None:
        """Stop listening, close every connection and end the thread; once it returns, no
        apply of this server is still running (the store may be closed). Idempotent."""
        if self._closed.is_set():
            return
        try:
            self._runner.run(self._inner.close(), timeout=30)
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
    :raises TransportBrokenError: if the address cannot be bound (also an ``OSError``).
    :raises ValidationError: for bad arguments.
    """
    key = normalize_secret(secret)
    ctx = check_ssl(ssl)
    runner = LoopThread(f"regiondb-serve-{store.region}")

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
    return await AsyncServer(store, host, port, normalize_secret(secret), check_ssl(ssl),
                             options or NetOptions()).start()
