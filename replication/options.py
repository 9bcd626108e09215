"""Tuning of the socket transport: :class:`NetOptions` (``options=`` of serve, sync, Replicator).

Every field is a bound or a timeout the protocol relies on; ``docs/protocol.md`` names them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NetOptions"]


@dataclass(frozen=True, slots=True)
class NetOptions:
    """Timeouts and bounds of the socket transport (seconds and bytes).

    Admission (server side): at most ``max_pending`` connections may be handshaking at once,
    each for at most ``handshake_timeout`` (TLS included); when that many are pending, the
    oldest is dropped to admit the newest, so a flood of idle or slow clients cannot keep a
    real peer out for longer than it takes to handshake. Authenticated sessions count apart,
    up to ``max_connections``.

    Flow control: at least ``max_in_flight`` (catch-up) or ``live_in_flight`` (live push,
    after ``DONE``) and at most ``max_window`` segments may be unacknowledged; in between, one
    per ``window_pace`` seconds of the link's round trip (:mod:`replication.window`).
    """

    handshake_timeout: float = 5.0
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
    max_pending: int = 64
    ack_flush_interval: float = 1.0
    max_in_flight: int = 2
    live_in_flight: int = 1
    max_window: int = 64
    window_pace: float = 0.02
    gc_interval: float = 60.0
