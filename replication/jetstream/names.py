"""Where a cluster lives on the broker: stream, subjects, buckets, consumer and message names.

One regiondb cluster (``cluster="shopease"``) owns, on its NATS account:

=====================  =====================================================================
stream                 ``REGIONDB_<cluster>``, subjects ``regiondb.<cluster>.seg.>``
segment subject        ``regiondb.<cluster>.seg.<sender hex>.<origin hex>``: one origin each
key-value bucket       ``regiondb_<cluster>_acks``: ``node.<hex>`` rows, ``snapshot.request``
object-store bucket    ``regiondb_<cluster>_snap``: object ``snapshot``
durable consumer       ``node-<hex>`` on the stream (one per node)
message id             ``<origin hex>-<first>-<last>`` (``Nats-Msg-Id``: a republish is a no-op)
=====================  =====================================================================

The sender is in the subject so that an account can allow each node to publish on its own
subjects only (``docs/replication.md``, "Fleet accounts"); a segment whose header names
another sender than its subject is forged and refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.errors import ValidationError

__all__ = ["Names", "SegmentSubject", "message_id", "parse_message_id", "parse_subject"]

_CLUSTER = re.compile(r"[A-Za-z0-9_-]{1,48}")
_HEX16 = re.compile(r"[0-9a-f]{16}")
_MSG_ID = re.compile(r"([0-9a-f]{16})-([1-9][0-9]{0,19})-([1-9][0-9]{0,19})")
SNAPSHOT_OBJECT = "snapshot"
SNAPSHOT_REQUEST = "snapshot.request"


@dataclass(frozen=True, slots=True)
class SegmentSubject:
    """What a segment's subject says: who published it and whose changes it carries."""

    sender: int
    origin: int


@dataclass(frozen=True, slots=True)
class Names:
    """The broker names of one cluster (module docstring)."""

    cluster: str

    def __post_init__(self) -> None:
        if not isinstance(self.cluster, str) or not _CLUSTER.fullmatch(self.cluster):
            raise ValidationError(
                f"cluster name must be 1-48 letters, digits, '_' or '-', not {self.cluster!r}")

    @property
    def stream(self) -> str:
        return f"REGIONDB_{self.cluster}"

    @property
    def prefix(self) -> str:
        return f"regiondb.{self.cluster}.seg"

    @property
    def all_segments(self) -> str:
        return f"{self.prefix}.>"

    @property
    def acks_bucket(self) -> str:
        return f"regiondb_{self.cluster}_acks"

    @property
    def snapshot_bucket(self) -> str:
        return f"regiondb_{self.cluster}_snap"

    def subject(self, sender: int, origin: int) -> str:
        return f"{self.prefix}.{sender:016x}.{origin:016x}"

    @staticmethod
    def durable(node: int) -> str:
        return f"node-{node:016x}"

    @staticmethod
    def row_key(node: int) -> str:
        return f"node.{node:016x}"

    @staticmethod
    def row_node(key: str) -> int | None:
        """The node id of a ``node.<hex>`` key, ``None`` for any other key."""
        head, _, tail = key.partition(".")
        return int(tail, 16) if head == "node" and _HEX16.fullmatch(tail) and int(tail, 16) \
            else None


def parse_subject(names: Names, subject: str) -> SegmentSubject | None:
    """The sender and origin of a segment subject of ``names``; ``None`` if it is not one."""
    head, _, tail = subject.rpartition(".")
    head, _, mid = head.rpartition(".")
    if head != names.prefix or not (_HEX16.fullmatch(mid) and _HEX16.fullmatch(tail)):
        return None
    sender, origin = int(mid, 16), int(tail, 16)
    return SegmentSubject(sender, origin) if sender and origin else None


def message_id(origin: int, first: int, last: int) -> str:
    """The ``Nats-Msg-Id`` of the changes ``first..last`` of ``origin``."""
    return f"{origin:016x}-{first}-{last}"


def parse_message_id(value: str | None) -> tuple[int, int, int] | None:
    """``(origin, first, last)`` of a message id, ``None`` if it is not one of ours."""
    m = _MSG_ID.fullmatch(value or "")
    if m is None:
        return None
    origin, first, last = int(m[1], 16), int(m[2]), int(m[3])
    return (origin, first, last) if origin and first <= last else None
