"""A node's row in the cluster's key-value bucket: the mailbox state file, on the broker.

Each node writes one key, ``node.<hex>``, and reads everyone's. The value is canonical CBOR
``{node, region, vv, acks, forgotten, lag, updated_ms}``: the same vv, ack table and forgotten
set a mailbox ``state.cbor`` carries (what :func:`replication.exchange.local_state` returns),
so :func:`replication.exchange.record_peer` takes it in unchanged and garbage collection follows
the same rule. ``lag`` is the node's inbound replication latency per origin (``[last, p50, p99,
samples]`` in ms): a node reads its own outbound lag from the others' rows.

A row is untrusted input (any client of the account can write the bucket unless the account
forbids it): :func:`decode_row` is bounded and checks every field; a bad row raises
:class:`~engine.errors.SegmentError` and is ignored by the reader.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cbor2

from engine.bounded import loads_bounded
from engine.errors import SegmentError, ValidationError

from .. import vv as vvmod

__all__ = ["MAX_ROW_BYTES", "Row", "decode_row", "encode_row"]

MAX_ROW_BYTES = 256 * 1024


@dataclass(slots=True)
class Row:
    """One node's published state (module docstring)."""

    node: int
    region: str
    vv: dict[int, int]
    acks: dict[int, dict[int, int]]
    forgotten: frozenset[int] = frozenset()
    lag: dict[int, tuple[float, float, float, int]] = field(default_factory=dict)
    updated_ms: int = 0

    def age(self) -> float:
        """Seconds since the row was written (by its writer's clock)."""
        return max(0.0, time.time() - self.updated_ms / 1000)


def encode_row(row: Row) -> bytes:
    body = {"node": row.node, "region": row.region, "vv": dict(row.vv),
            "acks": {n: dict(r) for n, r in row.acks.items()},
            "forgotten": sorted(row.forgotten),
            "lag": {o: list(v) for o, v in row.lag.items()}, "updated_ms": row.updated_ms}
    return cbor2.dumps(body, canonical=True)


def _lag(value: object) -> dict[int, tuple[float, float, float, int]]:
    if not isinstance(value, Mapping):
        raise ValidationError("lag must be a map")
    out = {}
    for o, v in value.items():
        if type(o) is not int or not isinstance(v, list) or len(v) != 4 \
                or not all(isinstance(x, int | float) for x in v):
            raise ValidationError("lag entries must be [last, p50, p99, samples]")
        out[o] = (float(v[0]), float(v[1]), float(v[2]), int(v[3]))
    return out


def decode_row(data: bytes, key_node: int) -> Row:
    """Check and decode the row stored under ``node.<key_node>``.

    :raises SegmentError: for anything malformed, or a row naming another node than its key.
    """
    if len(data) > MAX_ROW_BYTES:
        raise SegmentError(f"row of {len(data)} bytes is over {MAX_ROW_BYTES}")
    try:
        body = loads_bounded(data, max_depth=4, max_bytes=MAX_ROW_BYTES)
        if not isinstance(body, dict):
            raise ValidationError("row must be a map")
        node = body.get("node")
        if node != key_node:
            raise ValidationError(f"row names node {node!r:.24} under the key of {key_node:016x}")
        region = body.get("region")
        if not isinstance(region, str) or len(region) > 256:
            raise ValidationError("region must be a short string")
        vv = vvmod.check_vv(body.get("vv"), "row vv")
        acks_raw = body.get("acks")
        if not isinstance(acks_raw, Mapping):
            raise ValidationError("acks must be a map")
        acks = {n: vvmod.check_vv(r, "ack row") for n, r in acks_raw.items()
                if type(n) is int and 0 < n < 1 << 64}
        gone = body.get("forgotten")
        if not isinstance(gone, list) or not all(type(n) is int and 0 < n < 1 << 64
                                                 for n in gone):
            raise ValidationError("forgotten must be a list of node ids")
        updated = body.get("updated_ms", 0)
        if type(updated) is not int:
            raise ValidationError("updated_ms must be an int")
        return Row(node, region, vv, acks, frozenset(gone), _lag(body.get("lag", {})), updated)
    except ValidationError as exc:
        raise SegmentError(f"bad row of node {key_node:016x}: {exc}") from None


def lag_row(samples: Mapping[int, Any]) -> dict[int, tuple[float, float, float, int]]:
    """``{origin: [last, p50, p99, n]}`` from per-origin :class:`~replication.lag.LagStats`."""
    out = {}
    for o, s in samples.items():
        if s.samples:
            out[o] = (s.last_ms, s.p50_ms, s.p99_ms, s.samples)
    return out
