"""Plumbing shared by the socket server, one-shot sync and the replicator.

Address parsing, connecting, the handshake with its deadline, closing, and the event loop in
a thread that lets synchronous programs use the asyncio transport. The lifecycles themselves
are in :mod:`replication.server`, :mod:`replication.net` (sync) and
:mod:`replication.replicator`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as _ssl
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from engine import Store
from engine.errors import (
    AuthError,
    ClockSkewError,
    ForgottenNodeError,
    ProtocolError,
    SegmentError,
    TransportBrokenError,
    TransportError,
    TransportTimeoutError,
    ValidationError,
)

from . import exchange, lineage
from .channel import Channel
from .lineage import Reidentified
from .options import NetOptions
from .protocol import Hello, PeerInfo, client_handshake, server_handshake
from .workers import Workers

__all__ = ["PEER_ERRORS", "LoopThread", "as_transport_error", "check_ssl", "close_writer",
           "connect", "dial", "handshake", "parse_address", "peer_label"]

T = TypeVar("T")
#: What a misbehaving or incompatible peer causes (told to the peer with ``ERROR``).
PEER_ERRORS = (AuthError, ProtocolError, ForgottenNodeError, SegmentError, ClockSkewError)


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


def check_ssl(ctx: object) -> _ssl.SSLContext | None:
    if ctx is not None and not isinstance(ctx, _ssl.SSLContext):
        raise ValidationError(f"ssl must be an ssl.SSLContext or None, not {type(ctx).__name__}")
    return ctx


def as_transport_error(exc: BaseException, where: str) -> TransportError | None:
    """The :class:`TransportError` that reports a raw network failure ``exc`` (``None``
    if ``exc`` is not one), so that ``OSError``/``EOFError``/``TimeoutError`` never escape."""
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, TimeoutError):
        return TransportTimeoutError(f"{where}: timed out{f': {exc}' if str(exc) else ''}")
    if isinstance(exc, (EOFError, asyncio.IncompleteReadError)):
        return TransportBrokenError(f"{where}: the peer closed the connection")
    if isinstance(exc, OSError):
        return TransportBrokenError(f"{where}: {exc.strerror or exc}")
    return None


def _hello(store: Store, options: NetOptions, mode: str) -> Hello:
    vv, acks, forgotten = exchange.local_state(store)
    return Hello(store.node_id, store.region, dict(vv), {k: dict(v) for k, v in acks.items()},
                 frozenset(forgotten), max_frame=options.max_frame, mode=mode,
                 tips=lineage.tips(store))


async def handshake(store: Store, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    secret: bytes | None, options: NetOptions, workers: Workers, *,
                    initiator: bool, mode: str = "live", deadline: float | None = None,
                    on_hello: Callable[[], None] | None = None,
                    hello: Hello | None = None) -> tuple[PeerInfo, Channel]:
    """Exchange HELLOs and authenticate, within ``options.handshake_timeout`` (and before
    ``deadline``, loop time). Ours is built in the worker pool: it reads the store; a server
    builds it (and calls ``on_hello``) only once the client's HELLO arrived well-formed; a
    client may pass ``hello``, built before it connected (:func:`dial`), so that its HELLO goes
    out the moment the connection is up (a server under a flood drops slow starters first).

    :raises AuthError, ProtocolError, ForgottenNodeError: as the handshake finds.
    :raises TimeoutError: if the peer does not finish in time.
    """
    loop = asyncio.get_running_loop()
    timeout = options.handshake_timeout
    if deadline is not None:
        timeout = max(0.0, min(timeout, deadline - loop.time()))

    async def me() -> Hello:
        if on_hello is not None:
            on_hello()
        return await workers.run(_hello, store, options, mode)

    async with asyncio.timeout(timeout):
        if initiator:
            ours = hello if hello is not None else await me()
            peer, channel = await client_handshake(reader, writer, ours, secret,
                                                   timeout=options.handshake_timeout)
        else:
            peer, channel = await server_handshake(reader, writer, me, secret,
                                                   timeout=options.handshake_timeout)
    # First contact: a store that reused seqs of its own id (restored from a backup) must not
    # go on under it. It re-identifies; this connection, made under the old id, ends.
    old = store.node_id
    new = await workers.run(lineage.check_peer, store, peer.node, peer.vv, peer.tips)
    if new is not None:
        raise Reidentified(f"this store reused seqs of node {old:016x} (restored from a "
                           f"backup?): it is now node {new:016x}; reconnect")
    return peer, channel


async def dial(store: Store, host: str, port: int, ctx: _ssl.SSLContext | None,
               options: NetOptions, workers: Workers, mode: str = "live",
               ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Hello]:
    """Build our HELLO (reads the store), then connect: ``(reader, writer, hello)``."""
    hello = await workers.run(_hello, store, options, mode)
    reader, writer = await connect(host, port, ctx, options)
    return reader, writer, hello


async def connect(host: str, port: int, ctx: _ssl.SSLContext | None,
                  options: NetOptions) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    async with asyncio.timeout(options.connect_timeout):
        return await asyncio.open_connection(
            host, port, ssl=ctx, server_hostname=host if ctx else None, limit=1 << 20)


def peer_label(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "?"


async def close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(TimeoutError, OSError, _ssl.SSLError):
        await asyncio.wait_for(writer.wait_closed(), 1.0)


class LoopThread:
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
