"""The JetStream :class:`Replicator`: one node's link to a cluster on a NATS broker.

Lifecycle: :meth:`Replicator.start` starts a thread with its own event loop and returns at once;
the loop connects (retrying with backoff while the broker is away), makes sure the cluster's
stream and buckets exist, writes this node's row (it is a member from then on), bootstraps its
durable consumer (:mod:`.consumer`) and runs four tasks: the publisher (:mod:`.publisher`,
woken by the store's commit listener), the consumer, the row watcher and the housekeeper
(:mod:`.members`). Whatever fails in one of them (the broker restarted, a server of a NATS
cluster died and the client could not fail over in time) ends the connection; the loop then
connects again and everything resumes from state kept on both sides (the stream's last message
of ours, the durable consumer's position): nothing is lost, nothing applied twice in a way that
matters (the merge is idempotent).

NATS authentication and TLS are NATS's: ``user``/``password``, ``token``, ``credentials`` (a
``.creds`` file with a JWT and nkey seed), ``nkeys_seed`` (a seed file) and ``tls`` (a client
``ssl.SSLContext``) are passed to ``nats.connect`` unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl as _ssl
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import nats
from nats.aio.client import Client
from nats.js.api import ObjectStoreConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, BucketNotFoundError, NotFoundError

from engine import Store
from engine.errors import ValidationError

from .. import exchange
from ..lag import LagStats, PeerLag, lag_stats
from ..net import _LoopThread
from ..peers import Waker
from .consumer import Consumer
from .members import Members
from .names import Names
from .publisher import Publisher
from .state import Fleet, FleetOptions, FleetStats, Rejected

__all__ = ["Replicator"]

log = logging.getLogger(__name__)

_BACKOFF_MAX = 5.0


class Replicator:
    """Replicate ``store`` with every other node of ``cluster`` through NATS JetStream.

    :param servers: NATS URLs (several servers of one NATS cluster for failover).
    :param cluster: the regiondb cluster name: one stream and two buckets on the account.
    :param user, password, token, credentials, nkeys_seed, tls, tls_hostname: NATS
        authentication and TLS, passed to ``nats.connect``.
    :param options: :class:`FleetOptions` (retention, intervals, limits).
    :raises ValidationError: for a bad cluster name, server list or option.
    """

    def __init__(self, store: Store, servers: Iterable[str] | str = ("nats://127.0.0.1:4222",),
                 cluster: str = "regiondb", *, user: str | None = None,
                 password: str | None = None, token: str | None = None,
                 credentials: str | None = None, nkeys_seed: str | None = None,
                 tls: _ssl.SSLContext | None = None, tls_hostname: str | None = None,
                 options: FleetOptions | None = None) -> None:
        self.store = store
        self.names = Names(cluster)
        self.servers = [servers] if isinstance(servers, str) else list(servers)
        if not self.servers or not all(isinstance(s, str) and s for s in self.servers):
            raise ValidationError(f"servers must be NATS URLs, not {servers!r}")
        if tls is not None and not isinstance(tls, _ssl.SSLContext):
            raise ValidationError(f"tls must be an ssl.SSLContext, not {type(tls).__name__}")
        self.options = options or FleetOptions()
        auth: dict[str, Any] = {"user": user, "password": password, "token": token,
                                "user_credentials": credentials, "nkeys_seed": nkeys_seed,
                                "tls": tls, "tls_hostname": tls_hostname}
        self._auth = {k: v for k, v in auth.items() if v is not None}
        self.stats = FleetStats()
        self._runner: _LoopThread | None = None
        self._main: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._waker: Waker | None = None
        self._connected = threading.Event()
        self._reconnected: asyncio.Event | None = None
        self._stopping = False

    def __repr__(self) -> str:
        return (f"<jetstream.Replicator node={self.store.node_id:016x} "
                f"cluster={self.names.cluster} servers={self.servers}>")

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Replicator:
        """Start replicating in a background thread; return at once (:meth:`wait_connected`
        waits for the broker)."""
        if self._runner is not None:
            return self
        self._stopping = False
        self._executor = ThreadPoolExecutor(2, thread_name_prefix="regiondb-nats")
        self._runner = _LoopThread(f"regiondb-nats-{self.store.region}")

        async def launch() -> None:
            self._waker = Waker(asyncio.get_running_loop(), 0.0)
            self._main = asyncio.ensure_future(self._run())

        self._runner.run(launch(), timeout=10)
        self.store.add_listener(self._on_commit)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close the connection and end the thread. Idempotent. Unpublished changes stay in
        the log and go out at the next start."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._stopping = True
        self.store.remove_listener(self._on_commit)

        async def halt() -> None:
            if self._main is not None:
                self._main.cancel()
                await asyncio.wait([self._main], timeout=max(0.1, timeout - 1))
            # What the NATS client left behind (subscription timers) ends with the loop.
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in rest:
                t.cancel()
            if rest:
                await asyncio.wait(rest, timeout=1.0)

        try:
            runner.run(halt(), timeout=timeout)
        finally:
            runner.stop()
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
            self._connected.clear()
            self.stats.connected = False

    def __enter__(self) -> Replicator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_commit(self, position: int) -> None:
        waker = self._waker
        if waker is not None:
            waker.threadsafe()

    # -- what callers ask ----------------------------------------------------------------

    def wait_connected(self, timeout: float = 10.0) -> bool:
        """Wait until the node is on the cluster (connected, consumer bound)."""
        return self._connected.wait(timeout)

    def members(self) -> dict[int, str]:
        """The other nodes on the cluster (from their rows): node id -> region."""
        return {n: r.region for n, r in sorted(self.stats.rows.items())}

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the stream holds all this store had when called and every other member
        on the cluster has acknowledged it (their rows). ``False`` on timeout; nothing is lost
        either way: unsent changes stay in the log."""
        target, _, _ = exchange.local_state(self.store)
        me = self.store.node_id
        deadline = time.monotonic() + timeout
        while True:
            published = self.stats.confirmed.get(me, 0) >= target.get(me, 0)
            rows = list(self.stats.rows.values())
            if self.stats.connected and published and \
                    all(all(r.vv.get(o, 0) >= s for o, s in target.items()) for r in rows):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)

    def lag(self) -> dict[str, PeerLag]:
        """Per member (node id in hex): outbound latency (from the member's row: our changes'
        HLC to their apply there), unacknowledged changes, inbound latency (measured here)."""
        vv = self.store.version_vector()
        me = self.store.node_id
        out: dict[str, PeerLag] = {}
        fresh = 3 * self.options.row_heartbeat
        for node, row in sorted(self.stats.rows.items()):
            mine = row.lag.get(me)
            last, p50, p99, n = mine if mine else (None, None, None, 0)
            inbound = lag_stats(self.stats.in_lag[node]) if node in self.stats.in_lag \
                else LagStats()
            unacked = sum(max(0, s - row.vv.get(o, 0)) for o, s in vv.items())
            out[f"{node:016x}"] = PeerLag(
                f"{node:016x}", node, row.region, self.stats.connected and row.age() < fresh,
                last, p50, p99, n, unacked, inbound, self.stats.last_error)
        return out

    @property
    def rejected(self) -> list[Rejected]:
        """The last messages refused without being applied (bad bytes, forged, forgotten)."""
        return list(self.stats.rejected)

    # -- the loop ------------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while not self._stopping:
            try:
                await self._session()
                attempt = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("node %016x: NATS link down: %s", self.store.node_id,
                            self.stats.last_error)
            self._connected.clear()
            self.stats.connected = False
            delay = min(_BACKOFF_MAX, 0.1 * (2 ** min(attempt, 10)))
            attempt += 1
            await asyncio.sleep(delay / 2 + random.uniform(0, delay / 2))

    async def _connect(self) -> Client:
        o = self.options

        async def error(exc: Exception) -> None:
            # The client retries by itself (a wrong password included): say why meanwhile.
            self.stats.last_error = f"nats: {type(exc).__name__}: {exc}"
            log.debug("nats: %s", self.stats.last_error)

        self._reconnected = event = asyncio.Event()

        async def reconnected() -> None:
            # The client resubscribes, but watchers (ordered consumers) may not survive a
            # server restart: rebuild the session on the new connection.
            event.set()

        return await nats.connect(
            self.servers, name=f"regiondb-{self.store.node_id:016x}",
            connect_timeout=o.connect_timeout, reconnect_time_wait=o.reconnect_wait,
            max_reconnect_attempts=-1, allow_reconnect=True, error_cb=error,
            reconnected_cb=reconnected, **self._auth)

    async def _until_reconnected(self) -> None:
        assert self._reconnected is not None
        await self._reconnected.wait()
        raise ConnectionError("reconnected to the broker: rebuilding the session")

    async def _session(self) -> None:
        nc = await self._connect()
        try:
            js = nc.jetstream(timeout=max(2.0, self.options.connect_timeout))
            await self._ensure_stream(js)
            kv, objects = await self._ensure_buckets(js)
            assert self._executor is not None and self._waker is not None
            fleet = Fleet(self.store, self.names, self.options, js, kv, objects,
                          self._executor, self.stats, nc.max_payload)
            consumer = Consumer(fleet)
            waker = self._waker
            members = Members(fleet, consumer.ack_floor, waker.threadsafe,
                              lambda: consumer.whole)
            await members.write_row(force=True)
            await consumer.bootstrap()
            publisher = Publisher(fleet, waker)
            self.stats.connected = True
            self.stats.last_error = None
            self._connected.set()
            log.info("node %016x on cluster %s via %s", self.store.node_id, self.names.cluster,
                     nc.connected_url.netloc if nc.connected_url else "?")
            tasks = [asyncio.ensure_future(c) for c in
                     (publisher.run(), consumer.run(), members.watch(), members.keep(),
                      self._until_reconnected())]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
                for t in done:
                    exc = t.exception()
                    if exc is not None:
                        raise exc
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.wait(tasks, timeout=2.0)
                for t in tasks:  # secondary failures of a closing connection: seen, not news
                    if t.done() and not t.cancelled():
                        t.exception()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(members.write_row(force=True), 1.0)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), 2.0)

    async def _ensure_stream(self, js: Any) -> None:
        o = self.options
        try:
            await js.stream_info(self.names.stream)
            return
        except NotFoundError:
            pass
        config = StreamConfig(
            name=self.names.stream, subjects=[self.names.all_segments],
            retention=RetentionPolicy.LIMITS, max_age=o.max_age, max_msgs=o.max_msgs or -1,
            max_bytes=o.max_bytes or -1,
            storage=StorageType.FILE if o.file_storage else StorageType.MEMORY,
            num_replicas=o.replicas, duplicate_window=o.duplicate_window, allow_direct=True,
            description=f"regiondb cluster {self.names.cluster}: change segments")
        try:
            await js.add_stream(config)
            log.info("created stream %s", self.names.stream)
        except BadRequestError:  # created meanwhile by another member: use theirs
            await js.stream_info(self.names.stream)

    async def _ensure_buckets(self, js: Any) -> tuple[Any, Any]:
        o = self.options
        storage = StorageType.FILE if o.file_storage else StorageType.MEMORY
        try:
            kv = await js.key_value(self.names.acks_bucket)
        except (BucketNotFoundError, NotFoundError):
            kv = await js.create_key_value(bucket=self.names.acks_bucket, history=1,
                                           replicas=o.replicas, storage=storage)
        try:
            objects = await js.object_store(self.names.snapshot_bucket)
        except (BucketNotFoundError, NotFoundError):
            objects = await js.create_object_store(
                self.names.snapshot_bucket,
                config=ObjectStoreConfig(replicas=o.replicas, storage=storage))
        return kv, objects
