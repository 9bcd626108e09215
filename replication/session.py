"""One authenticated connection's streaming phase: the session state machine.

After the handshake (:mod:`replication.protocol`) both ends run the same :class:`Session`.
What sessions of one store share (wake-ups on commit, peer knowledge, pusher election,
per-peer counters) is in :mod:`replication.peers`; lag samples and reports in
:mod:`replication.lag`.

- **sender**: catches the peer up (``exchange.segments_for`` from the vv the peer announced,
  a snapshot when that is below our log floor), sends ``DONE``, then pushes new log entries as
  they commit. It never queues changes in memory: a wake-up only says "look at the log", and
  each segment is built from the log when the socket can take it, so whatever committed since
  the last push goes out as one segment (at most ``max_in_flight`` await their ``ACK``). A
  peer that stops reading therefore costs at most the transport buffer (``max_buffer``) plus
  one segment; past ``write_timeout`` the connection is dropped and the peer catches up from
  the log when it reconnects ("catch up later" mode is the normal mode).
- **receiver**: verifies each ``SEGMENT`` whole (``segment.decode_segment``), applies it in one
  transaction (``store.apply_changes``; ``exchange.apply_segment`` for snapshots and segments
  carrying a forgotten set), and answers exactly one ``ACK`` carrying our vv, the lag samples
  and any refusals (clock skew) in order. The sender's vv and ack table from segment headers,
  like the ``ACK``s we receive, go to the ack table (``exchange.record_peer``) throttled to
  one write per ``ack_flush_interval``, never as a second transaction per segment: the table
  only ever lags behind the truth, which delays garbage collection and nothing else.
- **heartbeats**: a ``PING`` after ``heartbeat`` seconds without sending; a peer silent for
  ``idle_timeout`` is dropped.

Latency: a segment up to :data:`INLINE_BYTES` is decoded and applied on the event loop (one
thread hop less per change than going through the executor); timeouts use
``asyncio.timeout`` rather than ``wait_for`` (no task per frame, wake-up or drain).

Relay: the log holds remote changes too, so "send every entry the peer lacks" serves chains
(A–B–C) as well as meshes. Our own changes go out at once; other origins' entries only once they
are ``relay_delay`` old, by which time a peer in a full mesh has them from their origin and has
told us so (every vv change is advertised with ``STATE``), so a mesh does not ship each change
twice. When two live connections join the same two nodes (both run a Replicator towards the
other), only the one opened by the lower node id pushes (and advertises); the other stays as a
standby.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar

from engine import ApplyReport, Store
from engine.errors import (
    ChangeRefused,
    LogTruncated,
    ProtocolError,
    SegmentError,
    ValidationError,
)

from . import exchange
from .lag import LagStats, PeerLag, sample_lags, txn_hlc
from .peers import PeerStats, Waker, applying_remote, hub_for
from .protocol import (
    MsgType,
    PeerInfo,
    decode_message,
    encode_frame,
    encode_message,
    read_frame,
    type_name,
)
from .segment import Segment, decode_segment, encode_segment
from .stalls import record_stall
from .vv import merge_into, range_gaps

# LagStats, PeerLag, PeerStats and hub_for live in .lag and .peers; re-exported for callers
# that imported them from here.
__all__ = ["LagStats", "NetOptions", "PeerLag", "PeerStats", "Session", "hub_for"]

log = logging.getLogger(__name__)

T = TypeVar("T")

LIVE_RECORDS = 2000  # change records per live-push segment
#: Segments up to this size are decoded and applied on the event loop itself: a thread hop
#: costs more than the work (and under load, a scheduling delay); bigger ones go to a thread.
INLINE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class NetOptions:
    """Timeouts and bounds of the socket transport (seconds and bytes)."""

    handshake_timeout: float = 10.0
    heartbeat: float = 5.0
    idle_timeout: float = 20.0
    write_timeout: float = 30.0
    connect_timeout: float = 10.0
    max_frame: int = 16 * 1024 * 1024 + 1024
    segment_bytes: int = 1024 * 1024
    max_buffer: int = 4 * 1024 * 1024
    relay_delay: float = 0.02
    retry_delay: float = 1.0
    poll_interval: float = 0.5
    backoff_base: float = 0.1
    backoff_max: float = 10.0
    max_connections: int = 256
    ack_flush_interval: float = 1.0
    max_in_flight: int = 2
    gc_interval: float = 60.0


class Session:
    """The streaming phase of one connection (both directions); see the module docstring."""

    def __init__(
        self, store: Store, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        peer: PeerInfo, *, initiator: bool, options: NetOptions, executor: Executor | None,
        label: str,
    ) -> None:
        self.store = store
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.initiator = initiator
        self.opts = options
        self.label = label
        self.live = peer.mode == "live"
        self.hub = hub_for(store)
        self.stats = self.hub.peer(peer.node)
        self.stats.region = peer.region
        self.loop = asyncio.get_running_loop()
        self.executor = executor
        self.waker = Waker(self.loop, options.relay_delay / 4)
        self._pusher = not self.live  # a sync session always sends
        self.sent: dict[int, int] = dict(peer.vv)  # what the peer has, or we sent it
        self.outstanding = 0  # segments sent, not yet acknowledged
        self.sent_done = False
        self.peer_done = asyncio.Event()
        self._hold_until = 0.0
        self._relay_marks: deque[tuple[float, dict[int, int]]] = deque()
        self._recheck_pending = False
        self._refusals = 0  # ACKs that refused something (they rewind ``sent``)
        self._last_send = time.monotonic()
        self._last_recv = time.monotonic()
        self._advertised: dict[int, int] = {}
        self._advertised_at = 0.0
        self._advert_timer = False
        self._ack_flushed = 0.0
        self._progress = asyncio.Event()  # an ACK arrived or DONE was sent
        self._closing = False
        self._relay_last: dict[int, int] = {}
        self._high_water = self.writer.transport.get_write_buffer_limits()[1]
        # Totals for the sync report.
        self.segments_sent = self.changes_sent = self.bytes_sent = 0
        self.segments_received = self.bytes_received = 0
        self.applied = self.skipped = self.conflicts = 0
        self.refused: dict[int, str] = {}  # origins we refused (clock skew, gaps)
        self.peer_refused: dict[int, str] = {}  # our origins the peer refused
        self.snapshot_sent = self.snapshot_received = False
        self.stats.forgotten = peer.forgotten
        self.stats.acks = dict(peer.acks)
        merge_into(self.stats.acked, peer.vv)
        # The handshake makes the peer a member: its row (empty for a newcomer) goes to the
        # ack table before anything is sent, so GC waits for it even if this sync is cut.
        self.stats.dirty = True
        self.hub.know(peer.node, peer.vv)

    # -- plumbing -----------------------------------------------------------------------

    @property
    def wants_commits(self) -> bool:
        """Whether commits should wake this session (it pushes, and is not a finished sync)."""
        return self._pusher and (self.live or not self.sent_done)

    def set_pusher(self, on: bool) -> None:
        if on != self._pusher:
            log.debug("%s: %s pusher", self.label, "now" if on else "no longer")
        self._pusher = on
        if on:
            self.waker.threadsafe()

    def _send(self, frame: bytes) -> None:
        """Queue a frame; refuse to grow the transport buffer past ``max_buffer``."""
        transport = self.writer.transport
        if transport.get_write_buffer_size() > self.opts.max_buffer:
            raise TimeoutError(
                f"peer is not reading: {transport.get_write_buffer_size()} bytes buffered"
            )
        self.writer.write(frame)
        buffered = transport.get_write_buffer_size()
        if buffered > self.stats.peak_buffered:
            self.stats.peak_buffered = buffered
        self.bytes_sent += len(frame)
        self._last_send = time.monotonic()

    async def _drain(self) -> None:
        if self.writer.transport.get_write_buffer_size() <= self._high_water:
            return  # drain() would not wait (writing is not paused)
        try:
            async with asyncio.timeout(self.opts.write_timeout):
                await self.writer.drain()
        except TimeoutError:
            raise TimeoutError(
                f"peer did not read for {self.opts.write_timeout} s; dropping the connection "
                "(it catches up from the log when it reconnects)"
            ) from None

    async def _blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the executor: store work and decoding stay off the event loop."""
        return await self.loop.run_in_executor(self.executor, fn, *args)

    # -- run ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until the peer closes (``EOFError`` at a frame boundary is a clean end) or fails."""
        self.hub.register(self)
        await self._flush_acks(force=True)
        tasks = [asyncio.ensure_future(c) for c in
                 (self._sender(), self._receiver(), self._heartbeat())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                exc = t.exception()
                if exc is not None:
                    raise exc
        finally:
            await self._stop(tasks)

    async def run_sync(self, timeout_at: float) -> None:
        """One-shot: both sides send what the other lacks; return when both are done and acked."""
        self.hub.register(self)
        await self._flush_acks(force=True)
        tasks = [asyncio.ensure_future(c) for c in (self._sender(), self._receiver(),
                                                    self._heartbeat())]
        finished = asyncio.ensure_future(self._synced())
        pending: set[asyncio.Future[Any]] = {finished, *tasks}
        try:
            while True:
                done, pending = await asyncio.wait(
                    pending, timeout=max(0.0, timeout_at - self.loop.time()),
                    return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    raise TimeoutError("sync did not finish in time")
                if finished in done:
                    return
                for t in done:
                    exc = t.exception()
                    if isinstance(exc, EOFError):
                        raise ConnectionError(
                            "peer closed the connection before the sync finished") from None
                    if exc is not None:
                        raise exc
        finally:
            await self._stop([finished, *tasks])

    async def _stop(self, tasks: Sequence[asyncio.Future[Any]]) -> None:
        """Cancel the session's tasks and wait for them, whatever happens (bounded)."""
        self._closing = True
        try:
            for t in tasks:
                t.cancel()
            # Python 3.11's wait_for can swallow a cancellation that races with a completed
            # read; the loops also check _closing, and aborting the transport ends any read.
            _, pending = await asyncio.wait(tasks, timeout=1.0)
            if pending:
                self.writer.transport.abort()
                for t in pending:
                    t.cancel()
                await asyncio.wait(pending, timeout=1.0)
        finally:
            for t in tasks:  # secondary failures were logged by the first; mark them seen
                if t.done() and not t.cancelled():
                    t.exception()
            self.hub.unregister(self)
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._flush_acks(force=True), 2.0)

    async def _synced(self) -> None:
        await self.peer_done.wait()
        while not (self.sent_done and self.outstanding == 0):
            self._progress.clear()
            await self._progress.wait()

    # -- sending ------------------------------------------------------------------------

    async def _sender(self) -> None:
        while not self._pusher:
            await self.waker.wait(None)
        await self._catch_up()
        self._send(encode_message(MsgType.DONE, {"vv": self.store.version_vector()}))
        self.sent_done = True
        self._progress.set()
        await self._drain()
        if not self.live:
            return  # a one-shot sync sends nothing after DONE
        while not self._closing:
            # A standby sends nothing, not even STATE: the pusher of the same pair does.
            await self.waker.wait(self.opts.poll_interval)
            if self._pusher and time.monotonic() >= self._hold_until:
                await self._window()
                await self._push(self.store.version_vector())

    async def _catch_up(self) -> None:
        """Send everything the peer lacked at the handshake (a snapshot if needed)."""
        start_vv = self.store.version_vector()
        refusals = self._refusals
        it = exchange.iter_segments(self.store, self.peer_vv_for_send(),
                                    max_bytes=self._segment_budget())
        while True:
            item = await self._blocking(next, it, None)
            if item is None:
                break
            header, data = item
            if header.kind == "snapshot":
                self.snapshot_sent = True
            await self._window()
            await self._send_segment(data, None)
        if self._refusals == refusals:
            # Unless an ACK refused part of it meanwhile (and rewound ``sent``, so the refused
            # part is offered again): the peer now has everything up to start_vv.
            merge_into(self.sent, start_vv)

    def _segment_budget(self) -> int:
        """Payload bytes per segment: ``segment_bytes``, within the peer's ``max_frame``."""
        return max(64 * 1024, min(self.opts.segment_bytes, self.peer.max_frame - 4096))

    def peer_vv_for_send(self) -> dict[int, int]:
        eff = dict(self.sent)
        merge_into(eff, self.hub.know(self.peer.node, {}))
        return eff

    async def _window(self) -> None:
        """Wait until fewer than ``max_in_flight`` segments await their ACK.

        This is the flow control that batches under load: while the peer applies one segment,
        new commits pile up in the log and go out together in the next one.
        """
        while self.outstanding >= self.opts.max_in_flight:
            self._progress.clear()
            try:
                async with asyncio.timeout(self.opts.write_timeout):
                    await self._progress.wait()
            except TimeoutError:
                raise TimeoutError(
                    f"peer acknowledged nothing for {self.opts.write_timeout} s; dropping the "
                    "connection (it catches up from the log when it reconnects)") from None

    async def _send_segment(self, data: bytes, ranges: dict[int, tuple[int, int]] | None) -> None:
        self._send(encode_frame(MsgType.SEGMENT, data))
        self.outstanding += 1
        self.segments_sent += 1
        self.stats.segments_sent += 1
        if ranges:
            for o, (first, last) in ranges.items():
                self.changes_sent += last - first + 1
                if last > self.sent.get(o, 0):
                    self.sent[o] = last
        await self._drain()

    def _relay_target(self, vv: dict[int, int]) -> tuple[dict[int, int], float | None]:
        """Per other origin, the seq we may relay now; and when to look again."""
        delay = self.opts.relay_delay
        if delay <= 0:
            return vv, None
        now = time.monotonic()
        me = self.store.node_id
        others = {o: s for o, s in vv.items() if o != me}  # our own changes go at once
        latest = self._relay_marks[-1][1] if self._relay_marks else self._relay_last
        if others != latest:
            self._relay_marks.append((now, others))
        target: dict[int, int] = {}
        while self._relay_marks and self._relay_marks[0][0] <= now - delay:
            target = self._relay_last = self._relay_marks.popleft()[1]
        if not target:
            target = self._relay_last
        again = self._relay_marks[0][0] + delay - now if self._relay_marks else None
        return target, again

    async def _push(self, vv: dict[int, int]) -> None:
        me = self.store.node_id
        target, again = self._relay_target(vv)
        eff = self.peer_vv_for_send()
        want: dict[int, int] = {}
        budget = self._segment_budget()
        sent_before = self.segments_sent
        for origin, seq in vv.items():
            upto = seq if origin == me else min(seq, target.get(origin, 0))
            if upto > eff.get(origin, 0):
                want[origin] = upto
        for origin, upto in want.items():
            after = eff.get(origin, 0)
            while after < upto:
                try:
                    records = self.store.log_range(origin, after, min(LIVE_RECORDS, upto - after))
                except LogTruncated:
                    log.info("%s: peer needs entries below our log floor; sending a snapshot",
                             self.label)
                    await self._catch_up()
                    return
                if not records:
                    break
                # Commits that piled up meanwhile must still fit the peer's max_frame: cut at
                # the byte budget (a single larger record goes alone, as in the catch-up).
                size, cut = 0, 0
                for _, _, txn in records:
                    size += len(txn) + 32
                    if cut and size > budget:
                        break
                    cut += 1
                records = records[:cut]
                await self._window()
                _, data = encode_segment(
                    kind="changes", sender=me, region=self.store.region, records=records,
                    vv=vv, acks={}, forgotten=(), created_hlc=txn_hlc(records[-1][2]),
                    compress=False)
                await self._send_segment(data, {origin: (records[0][1], records[-1][1])})
                after = records[-1][1]
        if self.segments_sent == sent_before:
            self._advertise(vv)  # segments carry our vv in their header already
        else:
            self._advertised = vv
        if again is not None and not self._recheck_pending:
            # One timer at a time: a pending one fires no later than this one would.
            self._recheck_pending = True
            self.loop.call_later(again, self._recheck)

    def _recheck(self) -> None:
        self._recheck_pending = False
        self.waker.now()

    def _advertise(self, vv: dict[int, int]) -> None:
        """Tell the peer our vv changed (so it need not relay what we already have).

        Coalesced: at most one ``STATE`` per quarter of ``relay_delay``; the latest vv goes
        out when the interval ends.
        """
        if vv == self._advertised or not self.live:
            return
        now = time.monotonic()
        gap = self.opts.relay_delay / 4
        if now - self._advertised_at >= gap:
            self._advertised, self._advertised_at = vv, now
            self._send(encode_message(MsgType.STATE, {"vv": vv}))
        elif not self._advert_timer:
            self._advert_timer = True

            def later() -> None:
                self._advert_timer = False
                if not self._closing:
                    with contextlib.suppress(Exception):  # the connection went away meanwhile
                        self._advertise(self.store.version_vector())

            self.loop.call_later(gap - (now - self._advertised_at), later)

    # -- receiving ----------------------------------------------------------------------

    async def _receiver(self) -> None:
        while not self._closing:
            try:
                msg_type, body = await read_frame(
                    self.reader, max_frame=self.opts.max_frame, timeout=self.opts.idle_timeout)
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    raise ConnectionError(
                        f"connection lost mid-frame ({len(exc.partial)} bytes of a frame "
                        "header); nothing of it was applied") from None
                raise EOFError("peer closed the connection") from None
            except TimeoutError:
                raise TimeoutError(
                    f"peer sent no complete frame for {self.opts.idle_timeout} s") from None
            self._last_recv = time.monotonic()
            self.bytes_received += 5 + len(body)
            if msg_type == MsgType.SEGMENT:
                await self._on_segment(body)
                continue
            fields = decode_message(msg_type, body) if msg_type in MsgType.NAMES else None
            if fields is None:
                raise ProtocolError(f"unknown message type {type_name(msg_type)}")
            if msg_type == MsgType.ACK:
                self._on_ack(fields)
            elif msg_type == MsgType.STATE:
                self.hub.know(self.peer.node, fields["vv"])
            elif msg_type == MsgType.DONE:
                self.hub.know(self.peer.node, fields["vv"])
                self.peer_done.set()
            elif msg_type == MsgType.PING:
                self._send(encode_message(MsgType.PONG, {"t": fields["t"]}))
            elif msg_type == MsgType.PONG:
                pass
            elif msg_type == MsgType.ERROR:
                from .protocol import error_from_message

                raise error_from_message(fields)
            else:
                raise ProtocolError(
                    f"{type_name(msg_type)} is not allowed after the handshake")

    async def _on_segment(self, body: bytes) -> None:
        inline = len(body) <= INLINE_BYTES
        seg = decode_segment(body) if inline else await self._blocking(decode_segment, body)
        h = seg.header
        if h.sender != self.peer.node:
            raise ProtocolError(
                f"segment from node {h.sender:016x} on the connection of {self.peer.node:016x}")
        self.segments_received += 1
        self.stats.segments_received += 1
        before = self.store.version_vector()
        # A range starting past what we hold follows a refused one still in flight: decline
        # it whole (the sender offers it again from our ACKed vv) instead of failing.
        skip = self.store.forgotten() | h.forgotten | {self.store.node_id}
        gaps = {o: f"gap: seq {first} offered, this node holds up to {held}"
                for o, (held, first) in range_gaps(before, h.ranges, skip).items()}
        if gaps:
            self._send(encode_message(MsgType.ACK, {"vv": before, "lag_us": [],
                                                    "refused": gaps}))
            return
        report: ApplyReport | exchange.SegmentReport
        if h.kind == "changes" and not h.forgotten:
            # No forgotten set to adopt: apply the records in one transaction and fold the
            # sender's vv and ack table into the throttled ack-table update (_flush_acks),
            # instead of a second write transaction per segment as apply_segment does.
            report = self._apply_changes(seg) if inline else \
                await self._blocking(self._apply_changes, seg)
            if merge_into(self.stats.acked, h.vv):
                self.stats.dirty = True
            self.stats.adopt_acks(h.acks)
        else:
            report = await self._blocking(self._apply_segment, seg)
        after = self.store.version_vector()
        for o in [o for o in self.stats.stalled if after.get(o, 0) > before.get(o, 0)]:
            del self.stats.stalled[o]  # the origin moves again: that stall is over
        self.hub.know(self.peer.node, h.vv)
        if h.kind == "snapshot":
            self.snapshot_received = True
        self.applied += report.applied
        self.skipped += report.skipped
        self.conflicts += report.conflicts
        self.stats.changes_applied += report.applied
        refused = {o: str(e) for o, e in report.refused.items()}
        for origin, why in refused.items():
            self.stats.refused += 1
            if origin not in self.refused:  # once per origin and session, not per segment
                log.warning("%s: refused changes of node %016x: %s", self.label, origin, why)
            self.refused[origin] = why
        for warning in getattr(report, "warnings", None) or []:
            log.warning("%s: %s", self.label, warning)
        changes: Any = seg.records if h.kind == "changes" else ()
        lags = sample_lags(changes, before, after)
        self.stats.in_lag.extend(us / 1000 for us in lags)
        self._send(encode_message(MsgType.ACK, {"vv": after, "lag_us": lags,
                                                "refused": refused}))
        self._advertised = after


    def _apply_changes(self, seg: Segment) -> ApplyReport:
        try:
            with applying_remote():
                return self.store.apply_changes(seg.change_records())
        except ChangeRefused as exc:
            record_stall(self.store, seg.header.sender, exc)
            self.stats.stalled[exc.origin] = str(exc)
            raise SegmentError(f"bad change record: {exc}") from exc
        except ValidationError as exc:
            raise SegmentError(f"bad change record: {exc}") from exc

    def _apply_segment(self, seg: Segment) -> exchange.SegmentReport:
        try:
            with applying_remote():
                return exchange.apply_segment(self.store, seg)
        except SegmentError as exc:
            if isinstance(exc.__cause__, ChangeRefused):
                self.stats.stalled[exc.__cause__.origin] = str(exc.__cause__)
            raise

    def _on_ack(self, fields: dict[str, Any]) -> None:
        if self.outstanding <= 0:
            raise ProtocolError("ACK without an unacknowledged SEGMENT")
        self.outstanding -= 1
        vv = fields["vv"]
        if merge_into(self.stats.acked, vv):
            self.stats.dirty = True
        self.hub.know(self.peer.node, vv)
        self.stats.out_lag.extend(us / 1000 for us in fields["lag_us"])
        if fields["refused"]:
            self._refusals += 1
            self.peer_refused.update(fields["refused"])
            for origin, why in fields["refused"].items():
                self.stats.last_error = f"peer refused changes of {origin:016x}: {why}"
            self._hold_until = time.monotonic() + self.opts.retry_delay
            self.loop.call_later(self.opts.retry_delay, self.waker.now)
        if self.outstanding == 0:
            # Whatever the peer did not take (refused, or a gap) is offered again later.
            for o, s in list(self.sent.items()):
                if vv.get(o, 0) < s:
                    self.sent[o] = vv.get(o, 0)
        self._progress.set()

    # -- heartbeats and bookkeeping -----------------------------------------------------

    async def _heartbeat(self) -> None:
        while not self._closing:
            await asyncio.sleep(min(self.opts.heartbeat, self.opts.ack_flush_interval))
            now = time.monotonic()
            if now - self._last_recv > self.opts.idle_timeout:
                raise TimeoutError(f"peer silent for {self.opts.idle_timeout} s")
            if now - self._last_send >= self.opts.heartbeat:
                self._send(encode_message(MsgType.PING, {"t": time.time_ns() // 1000}))
            await self._flush_acks()
            if self.hub.gc_due(self.opts.gc_interval):
                try:
                    await self._blocking(exchange.collect_garbage, self.store)
                except Exception:  # retried at the next interval
                    log.exception("%s: garbage collection failed", self.label)

    async def _flush_acks(self, force: bool = False) -> None:
        """Record the peer's acknowledged vv in the ack table, at most once a second."""
        st = self.stats
        now = time.monotonic()
        if not st.dirty or (not force and now - self._ack_flushed < self.opts.ack_flush_interval):
            return
        st.dirty = False
        self._ack_flushed = now
        try:
            await self._blocking(exchange.record_peer, self.store, st.node, dict(st.acked),
                                 dict(st.acks), st.forgotten)
        except Exception:  # bookkeeping must not end replication; the next flush retries
            st.dirty = True
            log.exception("%s: recording the peer's acknowledgements failed", self.label)
