"""The cluster's snapshot in the JetStream object store: written by any member, read by joiners.

The object ``snapshot`` holds one full snapshot of a member as its chained segment parts
(:func:`replication.exchange.snapshot_segments`), framed as ``b"RGDBSNAP" | (u32 length |
segment)*``. Its description is JSON ``{"node", "vv", "stream_seq", "created_ms"}``:
``stream_seq`` is the writer's consumer ack floor *read before the snapshot was taken*, so
every message at or below it is covered by the snapshot (applied, or refused for good), and a
node that loads it reads the stream from ``stream_seq + 1``.

Loading verifies every part (``decode_segment``) and applies the parts in order through
:func:`replication.exchange.apply_segment`: the same snapshot merge as every transport, with
its stale-snapshot and chain rules. A malformed object is reported and applies nothing more.

Refresh (:func:`refresh_due`): a member rewrites the snapshot when the current one is older
than ``snapshot_interval`` and its own vv moved past the snapshot's by ``snapshot_min_changes``
(never with less than the current one holds), or at once when a node asked
(``snapshot.request`` in the key-value bucket: a node whose gap no snapshot bridges yet). Two
members writing at once is harmless: each object is whole, the last
one stays. Only a member whose consumer saw every message up to its ack floor writes one (a
node that was behind the stream's retention, or has a gap pending, does not: its ack floor
counts messages the stream dropped before it read them, which it never applied).
"""

from __future__ import annotations

import json
import logging
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass

from nats.js.api import ObjectMeta
from nats.js.errors import NotFoundError, ObjectNotFoundError

from engine import Store
from engine.errors import SegmentError

from .. import exchange
from ..peers import applying_remote
from ..segment import decode_segment
from .names import SNAPSHOT_OBJECT
from .state import Fleet

__all__ = ["SnapshotInfo", "load_snapshot", "read_info", "refresh_due", "write_snapshot"]

log = logging.getLogger(__name__)

MAGIC = b"RGDBSNAP"
_LEN = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """What the object's description says (module docstring)."""

    node: int
    vv: dict[int, int]
    stream_seq: int
    created_ms: int

    def age(self) -> float:
        return max(0.0, time.time() - self.created_ms / 1000)


def _encode_info(info: SnapshotInfo) -> str:
    return json.dumps({"node": f"{info.node:016x}",
                       "vv": {f"{o:016x}": s for o, s in sorted(info.vv.items())},
                       "stream_seq": info.stream_seq, "created_ms": info.created_ms})


def _decode_info(text: str | None) -> SnapshotInfo | None:
    try:
        d = json.loads(text or "")
        return SnapshotInfo(int(d["node"], 16), {int(o, 16): int(s) for o, s in d["vv"].items()},
                            int(d["stream_seq"]), int(d["created_ms"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _frame(parts: list[bytes]) -> bytes:
    return MAGIC + b"".join(_LEN.pack(len(p)) + p for p in parts)


def _split(data: bytes) -> list[bytes]:
    if not data.startswith(MAGIC):
        raise SegmentError("snapshot object does not start with the snapshot magic")
    parts, pos = [], len(MAGIC)
    while pos < len(data):
        if pos + 4 > len(data):
            raise SegmentError("snapshot object truncated in a length")
        (n,) = _LEN.unpack_from(data, pos)
        pos += 4
        if pos + n > len(data):
            raise SegmentError("snapshot object truncated in a part")
        parts.append(data[pos:pos + n])
        pos += n
    return parts


async def read_info(fleet: Fleet) -> SnapshotInfo | None:
    """The current snapshot's description, ``None`` if there is none (or it is unreadable)."""
    try:
        info = await fleet.objects.get_info(SNAPSHOT_OBJECT)
    except (ObjectNotFoundError, NotFoundError):
        return None
    return _decode_info(info.description)


def _build(store: Store) -> tuple[bytes, dict[int, int]]:
    parts, vv = [], {}
    for header, data in exchange.snapshot_segments(store):
        parts.append(data)
        vv = dict(header.vv)
    return _frame(parts), vv


async def write_snapshot(fleet: Fleet, stream_seq: int) -> SnapshotInfo:
    """Snapshot our store into the object (``stream_seq``: our ack floor, read beforehand)."""
    data, vv = await fleet.blocking(_build, fleet.store)
    info = SnapshotInfo(fleet.store.node_id, vv, stream_seq, int(time.time() * 1000))
    await fleet.objects.put(SNAPSHOT_OBJECT, data,
                            meta=ObjectMeta(name=SNAPSHOT_OBJECT, description=_encode_info(info)))
    fleet.stats.snapshots_written += 1
    log.info("node %016x wrote the cluster snapshot (%d bytes, stream seq %d)",
             fleet.store.node_id, len(data), stream_seq)
    return info


def _apply_parts(store: Store, parts: list[bytes]) -> bool:
    segments = [decode_segment(p, path="snapshot object") for p in parts]  # all verified first
    complete = False
    with applying_remote():
        for seg in segments:
            if seg.header.kind != "snapshot":
                raise SegmentError("snapshot object holds a changes segment",
                                   path="snapshot object")
            report = exchange.apply_segment(store, seg)
            for w in report.warnings:
                log.warning("snapshot: %s", w)
            complete = bool(report.snapshot_complete)
    return complete


async def load_snapshot(fleet: Fleet) -> SnapshotInfo | None:
    """Merge the cluster's snapshot into our store; its info if it completed, else ``None``.

    :raises SegmentError: for a malformed object (nothing more of it is applied).
    """
    try:
        res = await fleet.objects.get(SNAPSHOT_OBJECT)
    except (ObjectNotFoundError, NotFoundError):
        return None
    info = _decode_info(res.info.description if res.info else None)
    data = res.data or b""
    parts = _split(data)
    complete = await fleet.blocking(_apply_parts, fleet.store, parts)
    if not complete:
        log.warning("snapshot object did not complete a snapshot here")
        return None
    fleet.stats.snapshots_loaded += 1
    log.info("node %016x loaded the cluster snapshot of node %016x (%d bytes)",
             fleet.store.node_id, info.node if info else 0, len(data))
    return info


def refresh_due(fleet: Fleet, info: SnapshotInfo | None, vv: Mapping[int, int],
                requested_ms: int) -> bool:
    """Whether this member should rewrite the snapshot now (module docstring)."""
    if info is None:
        return bool(vv)
    if not all(vv.get(o, 0) >= s for o, s in info.vv.items()):
        return False  # never replace a snapshot with one that holds less
    if requested_ms > info.created_ms:
        return True
    moved = sum(max(0, s - info.vv.get(o, 0)) for o, s in vv.items())
    return info.age() >= fleet.opts.snapshot_interval and \
        moved >= fleet.opts.snapshot_min_changes
