"""Consuming: one durable consumer per node, every message verified, applied, then acknowledged.

The consumer ``node-<hex>`` delivers the cluster's stream in order. For each message:

1. The subject must be a segment subject of this cluster (``seg.<sender>.<origin>``); our own
   messages are acknowledged and skipped.
2. The bytes are verified whole (``decode_segment``: size, checksum, bounded CBOR, record
   shapes); the header's sender must be the subject's (a segment published under another
   node's name is forged), it must be a changes segment of the subject's origin only.
3. It is applied through :func:`replication.exchange.apply_segment` (one LMDB transaction; the
   sender's vv goes to the ack table), and only then acknowledged. A crash before the ack
   redelivers it, and the apply skips what it already holds.

Refusals: a message failing 1-2, or from a forgotten node, is *terminated* (never redelivered),
counted in ``stats.rejected`` and logged: it is never applied and never stalls the consumer.
Changes held for clock skew are *nak*-ed with ``retry_delay`` (they apply once clocks agree).
A gap (a range starting past what we hold: the stream's retention dropped what came before, or
a republish arrived out of order) is nak-ed too; once it has lasted ``gap_grace`` this node
loads the cluster snapshot if that bridges it, and otherwise asks the members for a fresh one.

Bootstrap (:meth:`Consumer.bootstrap`): a node without a consumer yet (new, or new to NATS)
loads the snapshot first, if there is one, and starts reading the stream after the snapshot's
``stream_seq``; a node whose consumer fell behind the stream's first message loads it too.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from engine.errors import ForgottenNodeError, SegmentError, ValidationError

from .. import exchange, lineage
from ..exchange import GapError
from ..lag import sample_lags
from ..peers import applying_remote
from ..segment import DEFAULT_LIMITS, Segment, decode_segment
from . import snapshots
from .names import SNAPSHOT_OBJECT, SNAPSHOT_REQUEST, parse_subject
from .state import Fleet, Rejected

__all__ = ["Consumer"]

log = logging.getLogger(__name__)

INLINE_BYTES = 64 * 1024  # batches up to this size are applied on the loop (as sockets do)
BATCH = 64  # messages applied in one transaction at most


class Consumer:
    """The durable consumer of one node (module docstring)."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.me = fleet.store.node_id
        self.durable = fleet.names.durable(self.me)
        # The wire bounds a message by max_payload; decoding keeps the segment format's own
        # limits (a compressed segment may inflate past max_payload, within them).
        self.limits = DEFAULT_LIMITS
        self._gap_since: dict[int, float] = {}
        self._asked_ms = 0
        # The highest stream seq that may have been dropped (retention) before we saw it; 0:
        # every message up to our ack floor reached us, so our state may vouch for a snapshot.
        self._hole_end = 0
        self._last_seq = 0  # highest stream seq delivered to us for the first time
        self.sub: Any = None

    # -- setup ---------------------------------------------------------------------------

    async def bootstrap(self) -> None:
        """Create (or find) our durable consumer, loading the snapshot first where needed."""
        f = self.fleet
        try:
            info = await f.js.consumer_info(f.names.stream, self.durable)
        except NotFoundError:
            info = None
        start_seq = 0
        first = (await f.js.stream_info(f.names.stream)).state.first_seq or 1
        if info is None:
            snap = await self._load_snapshot()
            start_seq = snap.stream_seq + 1 if snap is not None and snap.stream_seq else 0
            self._last_seq = max(start_seq, 1) - 1
            if max(start_seq, 1) < first:  # dropped before we ever read them
                self._hole_end = first - 1
        else:
            floor = (info.ack_floor.stream_seq or 0) if info.ack_floor else 0
            self._last_seq = (info.delivered.stream_seq or 0) if info.delivered else floor
            if floor + 1 < first:
                log.info("node %016x is behind the stream's retention: loading the snapshot",
                         self.me)
                self._hole_end = first - 1
                await self._load_snapshot()
        config = ConsumerConfig(
            durable_name=self.durable, ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if start_seq else DeliverPolicy.ALL,
            opt_start_seq=start_seq or None, filter_subject=f.names.all_segments,
            max_ack_pending=f.opts.max_ack_pending, ack_wait=30.0, max_deliver=-1)
        self.sub = await f.js.subscribe(f.names.all_segments, durable=self.durable,
                                        stream=f.names.stream, config=config, manual_ack=True)

    async def _load_snapshot(self) -> snapshots.SnapshotInfo | None:
        try:
            info = await snapshots.load_snapshot(self.fleet)
        except SegmentError as exc:
            self._reject("object " + SNAPSHOT_OBJECT, 0, f"bad snapshot: {exc}")
            return None
        if info is not None and info.stream_seq >= self._hole_end:
            self._hole_end = 0  # the snapshot covers whatever we never saw
        return info

    @property
    def whole(self) -> bool:
        """Whether this node may write the cluster snapshot: no gap is pending and nothing the
        stream dropped before we read it is missing (our ack floor then means "applied")."""
        return self._hole_end == 0 and not self._gap_since

    def _track(self, msg: Msg, seq: int) -> None:
        """Notice stream seqs skipped on first delivery: the stream dropped them unseen."""
        if msg.reply and msg.metadata.num_delivered == 1:
            if self._last_seq and seq > self._last_seq + 1:
                self._hole_end = max(self._hole_end, seq - 1)
            self._last_seq = max(self._last_seq, seq)

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Handle messages until cancelled; broker errors propagate (the replicator
        reconnects). Messages already waiting are taken together (up to :data:`BATCH`)."""
        while True:
            try:
                msg = await self.sub.next_msg(timeout=5.0)
            except TimeoutError:
                continue
            batch = [msg]
            while len(batch) < BATCH and self.sub.pending_msgs > 0:
                batch.append(await self.sub.next_msg(timeout=1.0))
            await self.handle_batch(batch)

    def _reject(self, subject: str, seq: int, reason: str) -> None:
        st = self.fleet.stats
        st.rejected.append(Rejected(subject, seq, reason))
        st.rejected_total += 1
        log.warning("rejected message %s #%d: %s", subject, seq, reason)

    def _verify(self, msg: Msg, seq: int) -> Segment | None:
        """The verified segment of ``msg``, or ``None`` after rejecting it."""
        names = self.fleet.names
        subj = parse_subject(names, msg.subject)
        if subj is None:
            self._reject(msg.subject, seq, "not a segment subject of this cluster")
            return None
        try:
            seg = decode_segment(msg.data, path=f"{msg.subject} #{seq}", limits=self.limits)
        except SegmentError as exc:
            self._reject(msg.subject, seq, exc.reason if hasattr(exc, "reason") else str(exc))
            return None
        h = seg.header
        if h.sender != subj.sender:
            self._reject(msg.subject, seq, f"forged: segment of node {h.sender:016x} published "
                                           f"under node {subj.sender:016x}")
            return None
        if h.kind != "changes" or set(h.ranges) - {subj.origin}:
            self._reject(msg.subject, seq, "a stream segment must hold changes of its "
                                           "subject's origin only")
            return None
        return seg

    async def handle_batch(self, batch: list[Msg]) -> None:
        """Verify every message, apply the plain changes of all in one transaction, and
        acknowledge each message whose ranges are then held; the rest (gaps, held changes,
        forgotten senders) go one by one through :meth:`_handle_one`."""
        f = self.fleet
        f.stats.messages_received += len(batch)
        fast: list[tuple[Msg, Segment]] = []
        for msg in batch:
            seq = msg.metadata.sequence.stream if msg.reply else 0
            self._track(msg, seq)
            subj = parse_subject(f.names, msg.subject)
            if subj is not None and subj.sender == self.me:
                await msg.ack()  # our own: we hold it
                continue
            seg = self._verify(msg, seq)
            if seg is None:
                await msg.term()
                continue
            fast.append((msg, seg))
        slow = await self._apply_fast(fast) if fast else []
        for msg, seg in slow:
            await self._handle_one(msg, seg)

    async def _apply_fast(self, fast: list[tuple[Msg, Segment]]) -> list[tuple[Msg, Segment]]:
        """Apply the batch's changes at once; return the messages not wholly applied."""
        f = self.fleet
        gone = f.store.forgotten()
        plain: list[tuple[Msg, Segment]] = []
        slow: list[tuple[Msg, Segment]] = []
        for m, s in fast:
            forked = s.header.bases and lineage.forked_origins(f.store, s.header)
            (slow if s.header.forgotten or s.header.sender in gone or forked
             else plain).append((m, s))
        records = sorted({(r[0], r[1]): r for _, s in plain for r in s.change_records()}.values(),
                         key=lambda r: (r[0], r[1]))
        before = f.store.version_vector()
        size = sum(len(m.data) for m, _ in plain)
        try:
            if size <= INLINE_BYTES:
                report = self._apply_records(records)
            else:
                report = await f.blocking(self._apply_records, records)
        except ValidationError:
            return fast  # one of them is bad: find it one by one
        f.stats.changes_applied += report.applied
        after = f.store.version_vector()
        for msg, seg in plain:
            h = seg.header
            if not all(after.get(o, 0) >= last for o, (_, last) in h.ranges.items()):
                slow.append((msg, seg))
                continue
            for origin in h.ranges:
                self._gap_since.pop(origin, None)
            self._note(seg, before, after)
            await msg.ack()
        return slow

    def _note(self, seg: Segment, before: dict[int, int], after: dict[int, int]) -> None:
        """Keep the sender's vv for the ack table and the lag samples of a held segment."""
        h = seg.header
        f = self.fleet
        row = f.stats.header_acks.setdefault(h.sender, {})
        for o, s in h.vv.items():
            if s > row.get(o, 0):
                row[o] = s
        window = None
        for us in sample_lags(seg.change_records(), before, after):
            window = window if window is not None else f.stats.lag_window(h.sender)
            window.append(us / 1000)

    def _apply_records(self, records: list[tuple[int, int, bytes]]) -> Any:
        with applying_remote():
            return self.fleet.store.apply_changes(records)

    async def _handle_one(self, msg: Msg, seg: Segment) -> None:
        f = self.fleet
        seq = msg.metadata.sequence.stream if msg.reply else 0
        for attempt in (0, 1):
            before = f.store.version_vector()
            try:
                report = await f.blocking(self._apply, seg)
            except GapError as exc:
                if attempt == 0 and await self._on_gap(seg, exc):
                    continue  # the snapshot bridged it: apply again
                await msg.nak(delay=f.opts.retry_delay)
                return
            except (ForgottenNodeError, SegmentError) as exc:
                self._reject(msg.subject, seq, str(exc))
                await msg.term()
                return
            break
        for w in report.warnings:
            log.warning("%s: %s", msg.subject, w)
        if report.refused:
            log.info("%s: held (%s); retrying in %.1f s", msg.subject,
                     "; ".join(str(e) for e in report.refused.values()), f.opts.retry_delay)
            await msg.nak(delay=f.opts.retry_delay)
            return
        for origin in seg.header.ranges:
            self._gap_since.pop(origin, None)
        f.stats.changes_applied += report.applied
        self._note(seg, before, f.store.version_vector())
        await msg.ack()

    def _apply(self, seg: Segment) -> exchange.SegmentReport:
        try:
            with applying_remote():
                return exchange.apply_segment(self.fleet.store, seg)
        except ValidationError as exc:
            raise SegmentError(f"bad change record: {exc}") from exc

    async def _on_gap(self, seg: Segment, exc: GapError) -> bool:
        """Handle a gap; ``True`` if a snapshot was loaded that bridges it."""
        f = self.fleet
        now = time.monotonic()
        origin, (first, _) = next(iter(seg.header.ranges.items()))
        since = self._gap_since.setdefault(origin, now)
        if now - since < f.opts.gap_grace:
            return False
        info = await snapshots.read_info(f)
        if info is not None and info.vv.get(origin, 0) >= first - 1 \
                and info.vv.get(origin, 0) > f.store.version_vector().get(origin, 0):
            log.info("gap in the changes of %016x: loading the cluster snapshot", origin)
            if await self._load_snapshot() is not None:
                self._gap_since.pop(origin, None)
                return True
        now_ms = int(time.time() * 1000)
        if now_ms - self._asked_ms > 1000 * max(f.opts.retry_delay, 1.0):
            self._asked_ms = now_ms
            log.info("%s; asking the members for a fresh snapshot", exc)
            await f.kv.put(SNAPSHOT_REQUEST, str(now_ms).encode())
        return False

    async def ack_floor(self) -> int:
        """The stream seq at or below which this consumer has acknowledged everything."""
        f = self.fleet
        info = await f.js.consumer_info(f.names.stream, self.durable)
        return int(info.ack_floor.stream_seq or 0) if info.ack_floor else 0

