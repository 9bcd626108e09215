"""Membership on the broker: our row in the key-value bucket, everyone else's, and what follows.

:class:`Members` runs two tasks per connection:

- **watch**: every row the bucket holds or receives (``node.<hex>``) is decoded
  (:func:`~replication.jetstream.rows.decode_row`, bad rows are logged and ignored) and kept in
  ``stats.rows``; ``snapshot.request`` is noted. Rows of forgotten nodes are dropped.
- **keep**: writes our row (vv, ack table, forgotten set, inbound lag) when it changed, at most
  every ``row_interval`` and at least every ``row_heartbeat``; records the other rows in our
  ack table (:func:`replication.exchange.record_peer`, which also adopts their forgotten sets:
  ``forget`` spreads through the cluster); runs :func:`replication.exchange.collect_garbage`
  every ``gc_interval`` (never alone: a node that knows no other member keeps everything, as
  in a mailbox); and refreshes the cluster snapshot when due
  (:func:`~replication.jetstream.snapshots.refresh_due`).

The rows are this transport's mailbox state files: garbage collection sees exactly what it
would see there, with the same rule (:func:`replication.vv.plan_gc`): nothing is purged that a
member may still need. A node is a member from its first row, written before it consumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable

from nats.js.kv import KV_DEL, KV_PURGE

from engine.errors import ForgottenNodeError, SegmentError, ValidationError

from .. import exchange
from .. import vv as vvmod
from ..lag import lag_stats
from . import snapshots
from .names import SNAPSHOT_REQUEST, Names
from .rows import Row, decode_row, encode_row, lag_row
from .state import Fleet

__all__ = ["Members"]

log = logging.getLogger(__name__)

_RECORD_INTERVAL = 1.0  # other rows go to the ack table at most this often


class Members:
    """Row watcher and housekeeper of one connection (module docstring)."""

    def __init__(self, fleet: Fleet, ack_floor: Callable[[], Awaitable[int]],
                 on_rows: Callable[[], None], whole: Callable[[], bool]) -> None:
        self.fleet = fleet
        self.me = fleet.store.node_id
        self.ack_floor = ack_floor
        self.whole = whole  # may our state vouch for a snapshot (the consumer says)
        self.on_rows = on_rows
        self.requested_ms = 0
        self._dirty: set[int] = set()
        self._written: tuple[object, ...] | None = None
        self._written_at = 0.0
        self._recorded_at = 0.0
        self._gc_at = time.monotonic()
        self._snap_check_at = 0.0
        self.wake = asyncio.Event()

    # -- our row -------------------------------------------------------------------------

    def _row(self) -> Row:
        f = self.fleet
        vv, acks, forgotten = exchange.local_state(f.store)
        acks.pop(self.me, None)
        lag = lag_row({o: lag_stats(w) for o, w in f.stats.in_lag.items()})
        return Row(self.me, f.store.region, vv, acks, forgotten, lag, int(time.time() * 1000))

    async def write_row(self, force: bool = False) -> None:
        """Write our row if it changed (or ``force``)."""
        row = self._row()
        key = (row.vv, row.acks, row.forgotten)
        now = time.monotonic()
        if not force and key == self._written and \
                now - self._written_at < self.fleet.opts.row_heartbeat:
            return
        await self.fleet.kv.put(Names.row_key(self.me), encode_row(row))
        self._written, self._written_at = key, now

    # -- watching ------------------------------------------------------------------------

    async def watch(self) -> None:
        """Follow the bucket until cancelled."""
        f = self.fleet
        watcher = await f.kv.watchall()
        try:
            async for entry in watcher:
                if entry is None:
                    continue  # the end of the initial values
                self._take(entry.key, entry.value, entry.operation)
        finally:
            with contextlib.suppress(Exception):  # the connection may be gone already
                await watcher.stop()  # type: ignore[no-untyped-call]

    def _take(self, key: str, value: bytes | None, op: str | None) -> None:
        f = self.fleet
        if key == SNAPSHOT_REQUEST:
            try:
                self.requested_ms = max(self.requested_ms, int(value or b"0"))
            except ValueError:
                log.warning("ignoring a malformed snapshot request %r", (value or b"")[:40])
            self.wake.set()
            return
        node = Names.row_node(key)
        if node is None or node == self.me:
            return
        if op in (KV_DEL, KV_PURGE) or node in f.store.forgotten():
            f.stats.rows.pop(node, None)
            return
        try:
            row = decode_row(value or b"", node)
        except SegmentError as exc:
            log.warning("ignoring the row of %016x: %s", node, exc)
            return
        new = node not in f.stats.rows
        f.stats.rows[node] = row
        self._dirty.add(node)
        if new:
            log.info("node %016x (%s) is on the cluster", node, row.region)
        self.on_rows()

    # -- housekeeping --------------------------------------------------------------------

    async def keep(self) -> None:
        """Rows, acks, garbage and the snapshot, until cancelled."""
        f = self.fleet
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(f.opts.row_interval):
                    await self.wake.wait()
            self.wake.clear()
            await self.write_row()
            now = time.monotonic()
            if (self._dirty or f.stats.header_acks) and \
                    now - self._recorded_at >= _RECORD_INTERVAL:
                self._recorded_at = now
                await self._record()
            if now - self._gc_at >= f.opts.gc_interval:
                self._gc_at = now
                await self._collect()
            if not f.opts.write_snapshots:
                continue
            if self.requested_ms or now - self._snap_check_at >= \
                    min(f.opts.snapshot_interval, 5.0):
                self._snap_check_at = now
                await self._maybe_snapshot()

    async def _record(self) -> None:
        f = self.fleet
        heard, f.stats.header_acks = f.stats.header_acks, {}
        if heard:
            await f.blocking(vvmod.update_acks, f.store, heard)
        dirty, self._dirty = self._dirty, set()
        for node in sorted(dirty):
            row = f.stats.rows.get(node)
            if row is None:
                continue
            try:
                warnings = await f.blocking(exchange.record_peer, f.store, node, row.vv,
                                            row.acks, row.forgotten)
            except ForgottenNodeError:
                f.stats.rows.pop(node, None)
                continue
            except ValidationError as exc:
                log.warning("row of %016x not recorded: %s", node, exc)
                continue
            for w in warnings:
                log.warning("row of %016x: %s", node, w)
        for node in list(f.stats.rows):  # forgotten through someone's row just now
            if node in f.store.forgotten():
                f.stats.rows.pop(node, None)

    async def _collect(self) -> None:
        f = self.fleet
        await self._record()
        vv, acks, forgotten = exchange.local_state(f.store)
        if vvmod.members(self.me, vv, acks, forgotten) == {self.me}:
            return  # alone: keep everything for whoever comes next
        removed, purged = await f.blocking(exchange.collect_garbage, f.store)
        if removed or purged:
            log.info("gc: %d log entries, %d tombstones", removed, purged)

    async def _maybe_snapshot(self) -> None:
        f = self.fleet
        if not self.whole():
            return  # behind (a gap, or messages dropped unseen): leave it to the others
        info = await snapshots.read_info(f)
        requested = self.requested_ms
        vv = f.store.version_vector()
        if not snapshots.refresh_due(f, info, vv, requested):
            if info is not None and requested <= info.created_ms:
                self.requested_ms = 0
            return
        if requested:  # every member hears the request: let one answer, the others see it
            await asyncio.sleep(random.uniform(0, 0.3))
            info = await snapshots.read_info(f)
            if info is not None and info.created_ms >= requested:
                self.requested_ms = 0
                return
        floor = await self.ack_floor()
        if not self.whole():
            return
        await snapshots.write_snapshot(f, floor)
        self.requested_ms = 0
