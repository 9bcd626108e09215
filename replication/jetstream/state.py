"""What the parts of one JetStream replicator share: options, counters, the broker handles.

:class:`FleetOptions` are the settings (the stream's retention among them); :class:`FleetStats`
the counters the publisher, the consumer and the row watcher update and :meth:`Replicator.lag`
reports; :class:`Fleet` the handles of one connection (stream context, buckets) plus the store
and its executor. Everything here runs on the replicator's event loop, except reads of the
counters from other threads (plain attribute reads of values replaced whole).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from nats.js.client import JetStreamContext
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from engine import Store
from engine.errors import ValidationError

from ..lag import LAG_WINDOW
from .names import Names
from .rows import Row

__all__ = ["DEFAULT_MAX_AGE", "Fleet", "FleetOptions", "FleetStats", "Rejected"]

T = TypeVar("T")

#: Default stream retention: a node away longer than this rejoins from the snapshot.
DEFAULT_MAX_AGE = 7 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class FleetOptions:
    """Settings of the JetStream transport (seconds and bytes).

    Stream (applied when this node creates it; an existing stream keeps its configuration):
    ``max_age``/``max_msgs``/``max_bytes`` are its retention (``None``: unlimited),
    ``replicas`` its copies on a NATS cluster (also used for the buckets),
    ``duplicate_window`` how long the server remembers message ids, ``file_storage`` whether
    it lives on disk (else in memory).

    Node: ``segment_bytes`` is the payload per message (capped by the server's
    ``max_payload``); ``row_interval`` bounds how often this node rewrites its row (vv, acks)
    in the key-value bucket, ``row_heartbeat`` how long it goes without; ``gc_interval`` how
    often it truncates its log; ``snapshot_interval`` how often a member refreshes the
    snapshot once its state moved by ``snapshot_min_changes`` (``write_snapshots=False``: this
    node never writes one, it leaves that to the others); ``retry_delay`` the wait
    before a held or out-of-order message is delivered again; ``poll_interval`` how often
    the publisher looks at the log unwoken (commits by other processes on the same store);
    ``gap_grace`` how long a gap may
    last before this node loads the snapshot; ``max_ack_pending`` the consumer's window.
    """

    max_age: float | None = DEFAULT_MAX_AGE
    max_msgs: int | None = None
    max_bytes: int | None = None
    replicas: int = 1
    duplicate_window: float = 120.0
    file_storage: bool = True
    segment_bytes: int = 1 << 20
    row_interval: float = 0.1
    row_heartbeat: float = 5.0
    gc_interval: float = 60.0
    snapshot_interval: float = 300.0
    snapshot_min_changes: int = 1
    write_snapshots: bool = True
    retry_delay: float = 0.5
    poll_interval: float = 0.5
    gap_grace: float = 1.0
    max_ack_pending: int = 256
    publish_window: int = 4
    connect_timeout: float = 5.0
    reconnect_wait: float = 0.5

    def __post_init__(self) -> None:
        for name in ("max_age", "duplicate_window", "row_interval", "row_heartbeat",
                     "gc_interval", "snapshot_interval", "retry_delay", "gap_grace",
                     "poll_interval", "connect_timeout", "reconnect_wait"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)
                                  or v <= 0):
                raise ValidationError(f"FleetOptions.{name} must be a positive number, not {v!r}")
        for name in ("max_msgs", "max_bytes", "replicas", "segment_bytes", "max_ack_pending",
                     "publish_window", "snapshot_min_changes"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValidationError(f"FleetOptions.{name} must be a positive int, not {v!r}")
        if self.max_age is not None and self.duplicate_window > self.max_age:
            raise ValidationError("FleetOptions.duplicate_window must not exceed max_age")


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message refused without being applied: where it was and why."""

    subject: str
    stream_seq: int
    reason: str


@dataclass(slots=True)
class FleetStats:
    """Counters of one replicator (module docstring)."""

    connected: bool = False
    last_error: str | None = None
    published: dict[int, int] = field(default_factory=dict)  # origin -> last seq sent
    confirmed: dict[int, int] = field(default_factory=dict)  # origin -> last seq the stream acked
    messages_published: int = 0
    messages_received: int = 0
    changes_applied: int = 0
    snapshots_loaded: int = 0
    snapshots_written: int = 0
    rows: dict[int, Row] = field(default_factory=dict)  # other nodes' rows, by node id
    # senders' vvs from segment headers, not yet in the ack table (Members records them)
    header_acks: dict[int, dict[int, int]] = field(default_factory=dict)
    in_lag: dict[int, deque[float]] = field(default_factory=dict)  # origin -> ms samples
    rejected: deque[Rejected] = field(default_factory=lambda: deque(maxlen=100))
    rejected_total: int = 0

    def lag_window(self, origin: int) -> deque[float]:
        w = self.in_lag.get(origin)
        if w is None:
            w = self.in_lag[origin] = deque(maxlen=LAG_WINDOW)
        return w


@dataclass(slots=True)
class Fleet:
    """The handles one connection's tasks share."""

    store: Store
    names: Names
    opts: FleetOptions
    js: JetStreamContext
    kv: KeyValue
    objects: ObjectStore
    executor: Executor
    stats: FleetStats
    max_payload: int
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    extra: dict[str, Any] = field(default_factory=dict)

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the executor: store work stays off the event loop."""
        return await self.loop.run_in_executor(self.executor, fn, *args)
