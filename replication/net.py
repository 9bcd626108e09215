"""Socket replication: :func:`serve`, one-shot :func:`sync` and continuous :class:`Replicator`.

The wire protocol is in ``docs/protocol.md`` (:mod:`replication.protocol` implements the frames
and the handshake, :mod:`replication.channel` the per-frame tags, :mod:`replication.session`
the streaming phase). This module is the front of the socket transport:

- :func:`serve` / :func:`serve_async` (:mod:`replication.server`) serve a store from a
  background thread or on the caller's loop, with admission control for handshakes.
- :func:`sync` connects, exchanges what each side lacks, waits for both sides' ACKs and
  returns a :class:`SocketSyncReport` (:func:`sync_async` for asyncio code). Network
  failures are :class:`~engine.errors.TransportError` (also ``ConnectionError`` or
  ``TimeoutError``); nothing raw (``OSError``, ``EOFError``) escapes.
- :class:`Replicator` (:mod:`replication.replicator`) keeps one connection per peer.

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
import dataclasses
import logging
import ssl as _ssl
from dataclasses import dataclass, field
from typing import Any

from engine import Store
from engine.errors import AuthError, ForgottenNodeError, ProtocolError, SegmentError

from . import exchange
from .lag import PeerLag
from .lineage import Reidentified
from .link import LoopThread, as_transport_error, check_ssl, close_writer, dial, handshake
from .link import parse_address as parse_address
from .options import NetOptions
from .peers import hub_for, peer_rows
from .protocol import normalize_secret, send_error
from .replicator import Replicator
from .server import AsyncServer, Server, serve, serve_async
from .session import Session, SessionTotals
from .workers import Workers

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
#: Old private name, still imported by replication.jetstream; new code uses link.LoopThread.
_LoopThread = LoopThread


@dataclass(slots=True)
class SocketSyncReport:
    """What a one-shot :func:`sync` did, from this store's point of view.

    ``sent``: changes the peer gained from us (its acknowledged vv minus its starting vv);
    ``applied``/``skipped``/``conflicts``: changes we received; ``refused``: origins whose
    changes we did not apply yet (clock skew: they apply on a later sync); ``peer_refused``:
    origins of ours the peer did not apply yet, and why. The other counters are the
    session's :class:`~replication.session.SessionTotals`.
    """

    peer: str
    node_id: int
    region: str
    sent: int = 0
    segments_sent: int = 0
    changes_sent: int = 0
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


async def sync_async(store: Store, address: str | tuple[str, int],
                     secret: str | bytes | None = None, ssl: _ssl.SSLContext | None = None,
                     timeout: float = 300.0, *,
                     options: NetOptions | None = None) -> SocketSyncReport:
    """:func:`sync` for asyncio code (runs on the current loop; store work in threads)."""
    host, port = parse_address(address)
    key = normalize_secret(secret)
    ctx = check_ssl(ssl)
    opts = options or NetOptions()
    try:
        try:
            return await _sync(store, host, port, key, ctx, timeout, opts)
        except Reidentified as exc:  # re-identified at the handshake: once more, as itself
            log.warning("%s", exc)
            return await _sync(store, host, port, key, ctx, timeout, opts)
    except Exception as exc:
        wrapped = as_transport_error(exc, f"sync with {host}:{port}")
        if wrapped is None or wrapped is exc:
            raise
        raise wrapped from exc


async def _sync(store: Store, host: str, port: int, key: bytes | None,
                ctx: _ssl.SSLContext | None, timeout: float,
                opts: NetOptions) -> SocketSyncReport:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    deadline = t0 + timeout
    workers = Workers("regiondb-sync", threads=2)
    try:
        reader, writer, hello = await dial(store, host, port, ctx, opts, workers, mode="sync")
    except BaseException:
        await asyncio.to_thread(workers.shutdown)
        raise
    try:
        peer, channel = await handshake(store, reader, writer, key, opts, workers,
                                        initiator=True, mode="sync", deadline=deadline,
                                        hello=hello)
        label = f"sync with {host}:{port} (node {peer.node:016x} {peer.region})"
        session = Session(store, reader, writer, peer, channel=channel, initiator=True,
                          options=opts, workers=workers, label=label)
        try:
            await session.run_sync(deadline)
        except (AuthError, ProtocolError, SegmentError) as exc:
            await send_error(writer, exc)
            raise
        gained = sum(max(0, s - peer.vv.get(o, 0)) for o, s in session.stats.acked.items())
        totals = {f.name: getattr(session.totals, f.name)
                  for f in dataclasses.fields(SessionTotals)}
        report = SocketSyncReport(f"{host}:{port}", peer.node, peer.region, sent=gained,
                                  seconds=loop.time() - t0, **totals)
        log.info("%s: sent %d, applied %d, refused %d origins in %.3f s", label, report.sent,
                 report.applied, len(report.refused), report.seconds)
        return report
    except (AuthError, ProtocolError, ForgottenNodeError) as exc:
        await send_error(writer, exc)
        raise
    finally:
        await close_writer(writer)
        await asyncio.to_thread(workers.shutdown)


def sync(store: Store, address: str | tuple[str, int], secret: str | bytes | None = None,
         ssl: _ssl.SSLContext | None = None, timeout: float = 300.0, *,
         options: NetOptions | None = None) -> SocketSyncReport:
    """Exchange changes with the node at ``address`` once, both ways; return a report.

    Returns when both sides have sent everything the other lacked and both acknowledged it.
    Changes refused for clock skew are reported (``report.refused``), not raised.

    :raises AuthError: wrong or missing secret on either side.
    :raises ProtocolError: the peer broke the protocol (a v1 peer is refused with one).
    :raises ForgottenNodeError: one side forgot the other.
    :raises TransportTimeoutError: not done within ``timeout`` seconds (a ``TimeoutError``).
    :raises TransportBrokenError: the connection could not be made or was lost (a
        ``ConnectionError``; nothing half-applied).
    """
    coro = sync_async(store, address, secret, ssl, timeout, options=options)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from inside a running loop: run on a private loop in a thread instead.
    runner = LoopThread("regiondb-sync")
    try:
        return runner.run(coro)
    finally:
        runner.stop()


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
