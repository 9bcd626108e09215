"""How many segments a sender may have unacknowledged: an ACK-clocked window sized by the
round trip.

On a LAN the window is small, and that is what batches under load: while the peer applies
(and syncs) one segment, new commits pile up in the log and go out together in the next.
Catch-up keeps ``max_in_flight`` (2) segments in flight, so the receiver never waits for the
next big segment to be read and sent; the live push keeps ``live_in_flight`` (1): each segment
then carries everything committed during the peer's previous commit, the receiver makes one
durable commit per round, and a change waits for at most the commit under way before its own.
(With two in flight on three durable nodes sharing a disk, the receivers made a third more
commits for the same changes, every commit on the disk got slower, and lag rose: bench row
``live_lag``, p50 ≈ 7.8 → 6.4 ms, p99 ≈ 21 → 15 ms when going from 2 to 1.) Over a long
link one segment per round trip is too few: a change would wait up to a whole round trip in
the log before it even leaves, so lag becomes RTT + one-way instead of one-way. So the window
grows with the *smallest* segment → ACK round trip seen on the connection (the link's own
delay; the smoothed one would also count the queue at a busy receiver and grow the window into
it: bufferbloat): at most one segment per ``window_pace`` seconds of that round trip may be
unacknowledged, never fewer than the minimum above, never more than ``max_window``. A LAN peer
(round trip ≈ apply time) keeps the small window and its batching; for a peer 150 ms away a
change waits at most ``window_pace`` before it leaves, and the peer still applies at most one
segment per ``window_pace`` of this connection.
"""

from __future__ import annotations

import math
import time
from collections import deque

__all__ = ["Window"]


class Window:
    """Send times of the unacknowledged segments (ACKs come in order) and the round trip."""

    __slots__ = ("_sent_at", "max_window", "min_rtt", "min_window", "pace", "srtt")

    def __init__(self, min_window: int, max_window: int, pace: float) -> None:
        self.min_window = max(1, min_window)
        self.max_window = max(self.min_window, max_window)
        self.pace = pace
        self.srtt: float | None = None  # smoothed (RFC 6298 weights), for reports
        self.min_rtt: float | None = None
        self._sent_at: deque[float] = deque()

    def __repr__(self) -> str:
        rtt = "?" if self.min_rtt is None else f"{self.min_rtt * 1000:.1f} ms"
        return f"<Window {len(self._sent_at)}/{self.size()} min_rtt={rtt}>"

    def size(self) -> int:
        """Segments that may be unacknowledged now."""
        if self.min_rtt is None or self.pace <= 0:
            return self.min_window
        return max(self.min_window, min(self.max_window, math.ceil(self.min_rtt / self.pace)))

    def sent(self) -> None:
        self._sent_at.append(time.monotonic())

    def acked(self) -> None:
        """One ACK arrived (for the oldest outstanding segment)."""
        if not self._sent_at:
            return
        sample = time.monotonic() - self._sent_at.popleft()
        self.srtt = sample if self.srtt is None else 0.875 * self.srtt + 0.125 * sample
        self.min_rtt = sample if self.min_rtt is None else min(self.min_rtt, sample)

    def narrow(self, min_window: int) -> None:
        """Lower (or raise) the minimum, within ``max_window``: the live push's own."""
        self.min_window = max(1, min(min_window, self.max_window))

    def reset(self) -> None:
        """Forget the send times (the ACKs will never come: the connection is new)."""
        self._sent_at.clear()
