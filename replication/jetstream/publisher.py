"""Publishing: this node's committed changes, as segments, into the cluster's stream.

Woken by the store's commit listener (no polling delay), the publisher reads the log past what
the stream already holds and publishes changes segments of one origin each on
``regiondb.<cluster>.seg.<me>.<origin>``, each within the server's ``max_payload``, with the
message id ``<origin>-<first>-<last>``: the server drops a republish inside its duplicate
window, and a consumer skips one outside it (the merge is idempotent).

What it publishes:

- **its own origin**, always: from where the stream stands (the last message on its own
  subject, read at every (re)connection), so a restarted node neither republishes its history
  nor leaves a hole;
- **relayed origins**: changes of nodes that have no row in the key-value bucket (they are not
  on NATS, e.g. a TCP-only peer of this node) from what every NATS member has acknowledged.
  Origins on NATS publish for themselves.

Publishes are pipelined (``publish_window`` awaiting their ``PubAck``); a failure rewinds to
the first unacknowledged range, so the stream never gets a hole from us (it may get a
duplicate, which is harmless). A range that fell below our log floor (garbage collected: every
member already has it) is skipped; nodes that come later get it from the snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from nats.js.errors import NotFoundError

from engine.errors import LogTruncated

from .. import exchange, lineage
from ..lag import txn_hlc
from ..peers import Waker
from ..segment import encode_segment
from .names import message_id, parse_message_id
from .state import Fleet

__all__ = ["Publisher"]

log = logging.getLogger(__name__)

_LOG_CHUNK = 2000  # log entries read per segment at most
_RECORD_OVERHEAD = 32
_HEADER_ROOM = 16 * 1024  # the segment header (vv, ranges) and the NATS headers


class PayloadTooLarge(RuntimeError):
    """A single change is larger than the server's ``max_payload``: it cannot be published."""


class Publisher:
    """Publishes what the stream lacks whenever the waker fires (module docstring)."""

    def __init__(self, fleet: Fleet, waker: Waker) -> None:
        self.fleet = fleet
        self.waker = waker
        self.me = fleet.store.node_id
        self.budget = max(4096, min(fleet.opts.segment_bytes, fleet.max_payload) - _HEADER_ROOM)
        self.pending: list[tuple[asyncio.Future[Any], int, int, int]] = []
        self.idle = asyncio.Event()

    async def stream_position(self, origin: int) -> int:
        """The last seq of ``origin`` we published that the stream holds (0: none)."""
        f = self.fleet
        try:
            msg = await f.js.get_last_msg(f.names.stream, f.names.subject(self.me, origin))
        except NotFoundError:
            return 0
        ids = parse_message_id((msg.headers or {}).get("Nats-Msg-Id"))
        return ids[2] if ids and ids[0] == origin else 0

    async def run(self) -> None:
        """Publish until cancelled; connection errors propagate (the replicator reconnects)."""
        f = self.fleet
        # Within one process we know what the stream confirmed (a reconnect may have lost
        # a publish whose successor got through); after a restart, the stream says.
        pos = f.stats.confirmed.get(self.me)
        if pos is None:
            pos = await self.stream_position(self.me)
        f.stats.published = dict(f.stats.confirmed)
        f.stats.published[self.me] = max(pos, f.store.log_floor().get(self.me, 0))
        while True:
            self.idle.clear()
            await self._publish_all()
            self.idle.set()
            await self.waker.wait(f.opts.poll_interval)

    def _targets(self) -> dict[int, tuple[int, int]]:
        """Per origin to publish: (published so far, up to)."""
        f = self.fleet
        vv, _, _ = exchange.local_state(f.store)
        on_nats = set(f.stats.rows) | {self.me}
        out = {}
        for origin, seq in vv.items():
            if origin == self.me:
                start = f.stats.published.get(origin, 0)
            elif origin in on_nats or not f.stats.rows:
                continue
            else:  # relay from what every NATS member holds (or what we relayed since)
                held = min(r.vv.get(origin, 0) for r in f.stats.rows.values())
                start = max(held, f.stats.published.get(origin, 0))
            if seq > start:
                out[origin] = (start, seq)
        return out

    async def _publish_all(self) -> None:
        for origin, (after, upto) in self._targets().items():
            try:
                while after < upto:
                    after = await self._publish_one(origin, after, upto)
            except PayloadTooLarge as exc:
                # Nothing after it can go either (the stream must stay contiguous): say so,
                # loudly once, and try again when woken (the server's limit may be raised).
                if self.fleet.stats.last_error != str(exc):
                    log.error("%s", exc)
                self.fleet.stats.last_error = str(exc)
        await self._settle()

    async def _publish_one(self, origin: int, after: int, upto: int) -> int:
        """Publish the next segment of ``origin`` after ``after``; return its last seq."""
        f = self.fleet
        try:
            records = f.store.log_range(origin, after, min(_LOG_CHUNK, upto - after))
        except LogTruncated:
            floor = f.store.log_floor().get(origin, 0)
            log.info("changes %d..%d of %016x are below our log floor: every member has "
                     "them; newcomers get them from the snapshot", after + 1, floor, origin)
            f.stats.published[origin] = max(f.stats.published.get(origin, 0), floor)
            return max(floor, after + 1)
        if not records:
            return upto
        size, cut = 0, 0
        for _, _, txn in records:
            size += len(txn) + _RECORD_OVERHEAD
            if cut and size > self.budget:
                break
            cut += 1
        records = records[:cut]
        first, last = records[0][1], records[-1][1]
        vv = f.store.version_vector()
        _, data = encode_segment(kind="changes", sender=self.me, region=f.store.region,
                                 records=records, vv=vv, acks={}, forgotten=(),
                                 bases=lineage.bases_for(f.store, {origin: (first, last)}),
                                 created_hlc=txn_hlc(records[-1][2]), compress=None)
        if len(data) > f.max_payload:
            raise PayloadTooLarge(
                f"change {origin:016x}:{first} needs {len(data)} bytes, over the server's "
                f"max_payload of {f.max_payload}; raise max_payload in the NATS server "
                "configuration")
        await self._send(origin, first, last, data)
        return last

    async def _send(self, origin: int, first: int, last: int, data: bytes) -> None:
        f = self.fleet
        while len(self.pending) >= f.opts.publish_window:
            await self._reap(self.pending[0])
        fut = asyncio.ensure_future(f.js.publish(
            f.names.subject(self.me, origin), data, stream=f.names.stream,
            headers={"Nats-Msg-Id": message_id(origin, first, last)}))
        self.pending.append((fut, origin, first, last))
        f.stats.published[origin] = max(f.stats.published.get(origin, 0), last)

    async def _reap(self, entry: tuple[asyncio.Future[Any], int, int, int]) -> None:
        fut, origin, first, last = entry
        try:
            await fut
        except BaseException:
            # Rewind to the first range the stream may lack; drop the later attempts (they are
            # published again, or deduplicated).
            f = self.fleet
            for other, o, fst, _ in self.pending:
                other.cancel()
                f.stats.published[o] = min(f.stats.published.get(o, 0), fst - 1)
            with contextlib.suppress(BaseException):
                await asyncio.gather(*(p[0] for p in self.pending), return_exceptions=True)
            self.pending.clear()
            raise
        self.pending.remove(entry)
        st = self.fleet.stats
        st.messages_published += 1
        st.confirmed[origin] = max(st.confirmed.get(origin, 0), last)  # in order: contiguous

    async def _settle(self) -> None:
        while self.pending:
            await self._reap(self.pending[0])
