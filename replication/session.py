"""One authenticated connection's streaming phase: the session state machine.

After the handshake (:mod:`replication.protocol`) both ends run the same :class:`Session`.
What sessions of one store share (wake-ups on commit, peer knowledge, pusher election,
per-peer counters) is in :mod:`replication.peers`; lag samples and reports in
:mod:`replication.lag`.

- **sender**: catches the peer up (``exchange.segments_for`` from the vv the peer announced,
  a snapshot when that is below our log floor), sends ``DONE``, then pushes new log entries as
  they commit. It never queues changes in memory: a wake-up only says "look at the log", and
  each segment is built from the log when the socket can take it, so whatever committed since
  the last push goes out as one segment (at most ``live_in_flight`` await their ``ACK``). A
  peer that stops reading therefore costs at most the transport buffer (``max_buffer``) plus
  one segment; past ``write_timeout`` the connection is dropped and the peer catches up from
  the log when it reconnects ("catch up later" mode is the normal mode).
- **receiver**: verifies each ``SEGMENT`` whole (``segment.decode_segment``) and queues its
  apply (:meth:`Workers.apply_changes`: segments queued together, from any session, share one
  transaction and one commit; ``exchange.apply_segment`` for snapshots and segments carrying a
  forgotten set), reading on meanwhile; the acker answers each, in order, with exactly one
  ``ACK`` once it is durable, carrying our vv, the lag samples and any refusals (clock skew,
  gaps). The sender's vv and ack table from segment headers, like the ``ACK``s we receive, go
  to the ack table (``exchange.record_peer``) throttled to one write per
  ``ack_flush_interval``, never as a second transaction per segment: the table only ever lags
  behind the truth, which delays garbage collection and nothing else.
- **heartbeats**: a ``PING`` after ``heartbeat`` seconds without sending; a peer silent for
  ``idle_timeout`` is dropped. Garbage collection is not a session's business: the server or
  replicator runs it on its own schedule (:func:`replication.workers.collect_garbage_periodically`).

Threads: applies run on the server's (or replicator's) one apply thread and every other store
access in its pool (:mod:`replication.workers`), never on the event loop, so one fsync does not
stall the other sessions; a segment up to :data:`INLINE_BYTES` is decoded on the loop (CPU
only). Timeouts use ``asyncio.timeout`` rather than ``wait_for`` (no task per frame, wake-up
or drain).

Framing: every frame after the handshake is sealed and opened by the connection's
:class:`~replication.channel.Channel` (protocol v2: an HMAC tag with an implicit sequence
number); a frame that fails is a ``ProtocolError`` and ends the session.

Relay: remote changes in our log go to peers too (chains as well as meshes), once they are
``relay_delay`` old (:mod:`replication.relay`), so a full mesh does not ship each change twice.
When two live connections join the same two nodes (both run a Replicator towards the
other), only the one opened by the lower node id pushes (and advertises); the other stays as a
standby.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from engine import ApplyReport, Store
from engine.errors import (
    ChangeRefused,
    LogTruncated,
    ProtocolError,
    SegmentError,
    TransportBrokenError,
    TransportTimeoutError,
    ValidationError,
)

from . import exchange, lineage
from .channel import Channel
from .lag import LagStats, PeerLag, sample_lags, txn_hlc
from .options import NetOptions
from .peers import PeerStats, Waker, applying_remote, hub_for
from .protocol import (
    MsgType,
    PeerInfo,
    decode_message,
    encode_body,
    error_from_message,
    read_frame,
    type_name,
)
from .relay import RelayGate
from .segment import Segment, decode_segment, encode_segment
from .stalls import record_stall
from .vv import merge_into
from .window import Window
from .workers import Applied, Workers

# LagStats, PeerLag, PeerStats and hub_for live in .lag and .peers; re-exported for callers
# that imported them from here.
__all__ = ["LagStats", "NetOptions", "PeerLag", "PeerStats", "Session", "SessionTotals",
           "hub_for"]

log = logging.getLogger(__name__)

LIVE_RECORDS = 2000  # change records per live-push segment
#: Segments up to this size are decoded on the event loop itself (pure CPU, microseconds: a
#: thread hop costs more); bigger ones in the pool. Applies always run on the apply thread.
INLINE_BYTES = 64 * 1024


@dataclass(slots=True)
class SessionTotals:
    """What one session moved, both ways (a one-shot sync reports them)."""

    segments_sent: int = 0
    changes_sent: int = 0
    bytes_sent: int = 0
    segments_received: int = 0
    bytes_received: int = 0
    applied: int = 0
    skipped: int = 0
    conflicts: int = 0
    refused: dict[int, str] = field(default_factory=dict)  # origins we refused (skew, gaps)
    peer_refused: dict[int, str] = field(default_factory=dict)  # our origins the peer refused
    snapshot_sent: bool = False
    snapshot_received: bool = False


class Session:
    """The streaming phase of one connection (both directions); see the module docstring."""

    def __init__(
        self, store: Store, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        peer: PeerInfo, *, channel: Channel, initiator: bool, options: NetOptions,
        workers: Workers, label: str,
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
        self.workers = workers
        self.channel = channel
        self.waker = Waker(self.loop, options.relay_delay / 4)
        self._pusher = not self.live  # a sync session always sends
        self.sent: dict[int, int] = dict(peer.vv)  # what the peer has, or we sent it
        self.outstanding = 0  # segments sent, not yet acknowledged
        self.window = Window(options.max_in_flight, options.max_window, options.window_pace)
        self.sent_done = False
        self.peer_done = asyncio.Event()
        self._hold_until = 0.0
        self._relay = RelayGate(store.node_id, options.relay_delay)
        self._recheck_pending = False
        self._refusals = 0  # ACKs that refused something (they rewind ``sent``)
        self._reissue = store.pending_reissues() > 0  # writes of a re-identification wait
        self._last_send = time.monotonic()
        self._last_recv = time.monotonic()
        self._advertised: dict[int, int] = {}
        self._advertised_at = 0.0
        self._advert_timer = False
        self._ack_flushed = 0.0
        self._progress = asyncio.Event()  # an ACK arrived or DONE was sent
        # Received segments whose apply is queued or running, in arrival order (the acker
        # answers each once it is durable); bounded, so a peer ignoring the window waits.
        self._applying: asyncio.Queue[tuple[Segment, asyncio.Future[Any]]] = asyncio.Queue(
            max(8, 2 * options.max_window))
        self._closing = False
        self._high_water = self.writer.transport.get_write_buffer_limits()[1]
        # Totals for the sync report.
        self.totals = SessionTotals()
        self.stats.forgotten = peer.forgotten
        self.stats.acks = dict(peer.acks)
        merge_into(self.stats.acked, peer.vv)
        # The handshake makes the peer a member: its row (empty for a newcomer) goes to the
        # ack table before anything is sent, so GC waits for it even if this sync is cut.
        self.stats.dirty = True
        # What the peer says it holds now replaces what we had learned: it may hold less
        # (it dropped a restored node's forked entries, engine.voids, or lost commits).
        self.hub.forget_known(peer.node)
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

    def _send(self, msg_type: int, body: bytes) -> None:
        """Seal and queue a frame; refuse to grow the transport buffer past ``max_buffer``."""
        transport = self.writer.transport
        if transport.get_write_buffer_size() > self.opts.max_buffer:
            raise TransportTimeoutError(
                f"peer is not reading: {transport.get_write_buffer_size()} bytes buffered"
            )
        frame = self.channel.seal(msg_type, body)
        self.writer.write(frame)
        buffered = transport.get_write_buffer_size()
        if buffered > self.stats.peak_buffered:
            self.stats.peak_buffered = buffered
        self.totals.bytes_sent += len(frame)
        self._last_send = time.monotonic()

    async def _drain(self) -> None:
        if self.writer.transport.get_write_buffer_size() <= self._high_water:
            return  # drain() would not wait (writing is not paused)
        try:
            async with asyncio.timeout(self.opts.write_timeout):
                await self.writer.drain()
        except TimeoutError:
            raise TransportTimeoutError(
                f"peer did not read for {self.opts.write_timeout} s; dropping the connection "
                "(it catches up from the log when it reconnects)"
            ) from None

    # -- run ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until the peer closes (``EOFError`` at a frame boundary is a clean end) or fails."""
        self.hub.register(self)
        await self._flush_acks(force=True)
        tasks = [asyncio.ensure_future(c) for c in
                 (self._sender(), self._receiver(), self._acker(), self._heartbeat())]
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
                                                    self._acker(), self._heartbeat())]
        finished = asyncio.ensure_future(self._synced())
        pending: set[asyncio.Future[Any]] = {finished, *tasks}
        try:
            while True:
                done, pending = await asyncio.wait(
                    pending, timeout=max(0.0, timeout_at - self.loop.time()),
                    return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    raise TransportTimeoutError("sync did not finish in time")
                if finished in done:
                    return
                for t in done:
                    exc = t.exception()
                    if isinstance(exc, EOFError):
                        raise TransportBrokenError(
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
        self._send(MsgType.DONE, encode_body({"vv": self.store.version_vector()}))
        self.sent_done = True
        self._progress.set()
        await self._drain()
        if not self.live:
            return  # a one-shot sync sends nothing after DONE
        self.window.narrow(self.opts.live_in_flight)  # live push: fewer, fuller segments
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
            item = await self.workers.run(next, it, None)
            if item is None:
                break
            header, data = item
            if header.kind == "snapshot":
                self.totals.snapshot_sent = True
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
        """Wait until fewer segments await their ACK than the window allows
        (:class:`~replication.window.Window`: ``max_in_flight`` or ``live_in_flight`` on a
        LAN, which batches under load; more on a long link, so that changes leave at once)."""
        while self.outstanding >= self.window.size():
            self._progress.clear()
            try:
                async with asyncio.timeout(self.opts.write_timeout):
                    await self._progress.wait()
            except TimeoutError:
                raise TransportTimeoutError(
                    f"peer acknowledged nothing for {self.opts.write_timeout} s; dropping the "
                    "connection (it catches up from the log when it reconnects)") from None

    async def _send_segment(self, data: bytes, ranges: dict[int, tuple[int, int]] | None) -> None:
        self._send(MsgType.SEGMENT, data)
        self.outstanding += 1
        self.window.sent()
        self.totals.segments_sent += 1
        self.stats.segments_sent += 1
        if ranges:
            for o, (first, last) in ranges.items():
                self.totals.changes_sent += last - first + 1
                if last > self.sent.get(o, 0):
                    self.sent[o] = last
        await self._drain()

    async def _push(self, vv: dict[int, int]) -> None:
        me = self.store.node_id
        target, again = self._relay.target(vv)
        eff = self.peer_vv_for_send()
        want: dict[int, int] = {}
        budget = self._segment_budget()
        sent_before = self.totals.segments_sent
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
                    compress=False, bases=lineage.bases_for(
                        self.store, {origin: (records[0][1], records[-1][1])}))
                await self._send_segment(data, {origin: (records[0][1], records[-1][1])})
                after = records[-1][1]
        if self.totals.segments_sent == sent_before:
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
            self._send(MsgType.STATE, encode_body({"vv": vv}))
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
                    raise TransportBrokenError(
                        f"connection lost mid-frame ({len(exc.partial)} bytes of a frame "
                        "header); nothing of it was applied") from None
                raise EOFError("peer closed the connection") from None
            except TimeoutError:
                raise TransportTimeoutError(
                    f"peer sent no complete frame for {self.opts.idle_timeout} s") from None
            self._last_recv = time.monotonic()
            self.totals.bytes_received += 5 + len(body)
            body = self.channel.open(msg_type, body)
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
                await self._applying.join()  # done means applied: what came before it is
                self.peer_done.set()
            elif msg_type == MsgType.PING:
                self._send(MsgType.PONG, encode_body({"t": fields["t"]}))
            elif msg_type == MsgType.PONG:
                pass
            elif msg_type == MsgType.ERROR:
                raise error_from_message(fields)
            else:
                raise ProtocolError(
                    f"{type_name(msg_type)} is not allowed after the handshake")

    async def _on_segment(self, body: bytes) -> None:
        """Decode, check and queue a segment's apply; the acker answers it once applied.

        Reading goes on meanwhile, so a segment that arrives while the one before it is
        syncing waits in the apply queue and shares the next commit with whatever else is
        queued (:class:`~replication.workers.Workers`), from this peer or others.
        """
        inline = len(body) <= INLINE_BYTES
        seg = decode_segment(body) if inline else await self.workers.run(decode_segment, body)
        h = seg.header
        if h.sender != self.peer.node:
            raise ProtocolError(
                f"segment from node {h.sender:016x} on the connection of {self.peer.node:016x}")
        self.totals.segments_received += 1
        self.stats.segments_received += 1
        future: asyncio.Future[Any]
        if h.kind == "changes" and not h.forgotten:
            # No forgotten set to adopt: the records go into the next grouped transaction;
            # the sender's vv and ack table into the throttled ack-table update (_flush_acks),
            # instead of a second write transaction per segment as apply_segment does.
            forked = lineage.forked_origins(self.store, h) if h.bases else set()
            future = self.workers.apply_changes(
                self.store, [r for r in seg.change_records() if r[0] not in forked])
        else:
            future = self.workers.submit(self._apply_segment_vv, seg)  # queued in order
        await self._applying.put((seg, future))

    async def _acker(self) -> None:
        """Answer each received segment, in order, once its apply is durable."""
        while True:
            seg, future = await self._applying.get()
            try:
                await self._answer(seg, await future)
            finally:
                self._applying.task_done()

    async def _answer(self, seg: Segment, done: Applied) -> None:
        h = seg.header
        report: ApplyReport | exchange.SegmentReport
        outcome, before, after = done.outcome, done.before, done.after
        if isinstance(outcome, ChangeRefused):
            await self.workers.apply(record_stall, self.store, h.sender, outcome)
            self.stats.stalled[outcome.origin] = str(outcome)
            raise SegmentError(f"bad change record: {outcome}") from outcome
        if isinstance(outcome, ValidationError):
            raise SegmentError(f"bad change record: {outcome}") from outcome
        if isinstance(outcome, Exception):
            raise outcome
        report = outcome
        if h.kind == "changes" and not h.forgotten:
            if report.applied and self._reissue:
                # set-aside writes of a re-identification wait for these seqs (lineage)
                self._reissue = bool(await self.workers.apply(lineage.reissue_pending, self.store)
                                     or self.store.pending_reissues() > 0)
            if merge_into(self.stats.acked, h.vv):
                self.stats.dirty = True
            self.stats.adopt_acks(h.acks)
        for o in [o for o in self.stats.stalled if after.get(o, 0) > before.get(o, 0)]:
            del self.stats.stalled[o]  # the origin moves again: that stall is over
        self.hub.know(self.peer.node, h.vv)
        if h.kind == "snapshot":
            self.totals.snapshot_received = True
        self.totals.applied += report.applied
        self.totals.skipped += report.skipped
        self.totals.conflicts += report.conflicts
        self.stats.changes_applied += report.applied
        refused = {o: str(e) for o, e in report.refused.items()}
        for origin, why in refused.items():
            self.stats.refused += 1
            if origin not in self.totals.refused:  # once per origin and session, not per segment
                log.warning("%s: refused changes of node %016x: %s", self.label, origin, why)
            self.totals.refused[origin] = why
        for warning in getattr(report, "warnings", None) or []:
            log.warning("%s: %s", self.label, warning)
        # A range starting past what we hold follows a refused one still in flight: it was
        # held (not applied); the sender offers it again from the vv in this ACK.
        gaps = getattr(report, "gaps", None)
        if gaps:
            skip = self.store.forgotten() | h.forgotten | {self.store.node_id}
            for origin, (held, first) in gaps.items():
                if origin not in skip:
                    refused.setdefault(
                        origin, f"gap: seq {first} offered, this node holds up to {held}")
        changes: Any = seg.records if h.kind == "changes" else ()
        lags = sample_lags(changes, before, after)
        self.stats.in_lag.extend(us / 1000 for us in lags)
        self._send(MsgType.ACK, encode_body({"vv": after, "lag_us": lags,
                                             "refused": refused}))
        self._advertised = after

    def _apply_segment_vv(self, seg: Segment) -> Applied:
        """:meth:`_apply_segment` with the vvs around it (on the apply thread)."""
        before = self.store.version_vector()
        report = self._apply_segment(seg)
        return Applied(report, before, self.store.version_vector())

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
        self.window.acked()
        vv = fields["vv"]
        if merge_into(self.stats.acked, vv):
            self.stats.dirty = True
        self.hub.know(self.peer.node, vv)
        self.stats.out_lag.extend(us / 1000 for us in fields["lag_us"])
        if fields["refused"]:
            self._refusals += 1
            self.totals.peer_refused.update(fields["refused"])
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
                raise TransportTimeoutError(f"peer silent for {self.opts.idle_timeout} s")
            if now - self._last_send >= self.opts.heartbeat:
                self._send(MsgType.PING, encode_body({"t": time.time_ns() // 1000}))
            await self._flush_acks()

    async def _flush_acks(self, force: bool = False) -> None:
        """Record the peer's acknowledged vv in the ack table, at most once a second."""
        st = self.stats
        now = time.monotonic()
        if not st.dirty or (not force and now - self._ack_flushed < self.opts.ack_flush_interval):
            return
        st.dirty = False
        self._ack_flushed = now
        try:
            await self.workers.run(exchange.record_peer, self.store, st.node, dict(st.acked),
                                 dict(st.acks), st.forgotten)
        except Exception:  # bookkeeping must not end replication; the next flush retries
            st.dirty = True
            log.exception("%s: recording the peer's acknowledgements failed", self.label)
