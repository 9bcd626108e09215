"""Replication lag: samples, their summary, and the per-peer report (DynamoDB's ReplicationLatency).

Lag is wall time from a change's HLC (its commit on the origin) to its apply on a replica.
The receiver of a segment measures it (:func:`sample_lags`), keeps the samples as *inbound* lag
and returns them in its ``ACK``, where the sender keeps them as *outbound* lag. Both ends hold
at most :data:`LAG_WINDOW` samples per peer and direction, and :func:`lag_stats` summarises
them as last/p50/p99 milliseconds.

Properties and hazards:

- An HLC's wall part is in milliseconds, so a sample is exact to about 1 ms; an HLC pushed
  ahead by a fast clock elsewhere reads as a lag too small (never below 0).
- Samples are thinned to at most 256 per segment (the protocol's limit) and one in
  ``len // 64``, so a catch-up of a million changes costs the same as a live push.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from engine.changelog import txn_hlc
from engine.clock import physical_ms

__all__ = ["LAG_WINDOW", "LagStats", "PeerLag", "lag_stats", "sample_lags", "txn_hlc"]

LAG_WINDOW = 2048  # lag samples kept per peer and direction
_MAX_SAMPLES = 256  # per segment (protocol.md: ACK.lag_us)


@dataclass(frozen=True)
class LagStats:
    """Replication latency in milliseconds over the last samples (``None`` before any)."""

    last_ms: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    samples: int = 0


def lag_stats(samples: deque[float]) -> LagStats:
    """Summarise a window of samples (milliseconds)."""
    if not samples:
        return LagStats()
    ordered = sorted(samples)
    n = len(ordered)
    return LagStats(samples[-1], ordered[(n - 1) // 2], ordered[min(n - 1, (99 * n) // 100)], n)


@dataclass(frozen=True)
class PeerLag:
    """One peer's replication health, like DynamoDB's ``ReplicationLatency`` per region pair.

    ``last_ms``/``p50_ms``/``p99_ms``: from a change's HLC (its commit) here to its apply on the
    peer, as the peer reported in its ACKs. ``unacked``: changes we hold that the peer has not
    acknowledged. ``inbound``: the same latency for the peer's changes applied here.
    ``stalled``: origins whose changes from this peer we refused as invalid (everything later
    of that origin is held; :mod:`replication.stalls`).
    """

    peer: str
    node_id: int | None
    region: str | None
    connected: bool
    last_ms: float | None
    p50_ms: float | None
    p99_ms: float | None
    samples: int
    unacked: int
    inbound: LagStats
    last_error: str | None = None
    stalled: dict[int, str] = field(default_factory=dict)


def sample_lags(records: Iterable[tuple[int, int, bytes]], before: Mapping[int, int],
                after: Mapping[int, int]) -> list[int]:
    """Microseconds from each newly applied change's HLC to now (thinned, at most 256).

    A record is new if its seq lies in ``(before[origin], after[origin]]``: the vvs around the
    apply, so re-sent changes do not count.
    """
    now_us = time.time_ns() // 1000
    fresh = [r for r in records if before.get(r[0], 0) < r[1] <= after.get(r[0], 0)]
    step = max(1, len(fresh) // 64)
    out = []
    for rec in fresh[::step][:_MAX_SAMPLES]:
        hlc = txn_hlc(rec[2])
        if hlc:
            out.append(max(0, now_us - physical_ms(hlc) * 1000))
    return out
