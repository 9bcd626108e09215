"""Value objects the store hands out: table definitions, change-feed entries, conflicts, apply
reports and snapshots."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import codec
from .clock import BOTTOM, Version, format_hlc
from .errors import Error

if TYPE_CHECKING:
    from .index import IndexDef

__all__ = ["ApplyReport", "Change", "Conflict", "RawChange", "Snapshot", "TableDef",
           "decode_table_def", "is_tombstone"]

RawChange = tuple[int, int, bytes]
"""``(origin, seq, txn)``: one log entry as it travels between nodes."""


@dataclass(frozen=True, slots=True)
class TableDef:
    """A table's key schema and the version that created it.

    ``ttl_attribute`` names the attribute holding an item's expiry time (epoch seconds), or
    ``None``; it is a last-writer-wins register of its own, set at ``ttl_version``
    (``store.set_ttl``), replicated like the definition.
    """

    name: str
    partition_key: str
    sort_key: str | None
    version: Version = BOTTOM
    ttl_attribute: str | None = None
    ttl_version: Version = BOTTOM

    def key_dict(self, values: Sequence[Any]) -> dict[str, Any]:
        names = (self.partition_key, self.sort_key)
        return {names[i] or f"#{i}": v for i, v in enumerate(values)}

    def stored(self) -> bytes:
        """The value of this definition in the ``tables`` database: ``[pk, sk, hlc, node]``,
        then ``ttl_attribute, ttl_hlc, ttl_node`` once a TTL was ever set (store format 3)."""
        row: list[Any] = [self.partition_key, self.sort_key, self.version[0], self.version[1]]
        if self.ttl_version != BOTTOM:
            row += [self.ttl_attribute, self.ttl_version[0], self.ttl_version[1]]
        return codec.dumps(row)


def decode_table_def(name: str, raw: bytes) -> TableDef:
    """A definition from its stored value (see :meth:`TableDef.stored`)."""
    row = codec.loads(raw)
    if len(row) == 7:
        return TableDef(name, row[0], row[1], (row[2], row[3]), row[4], (row[5], row[6]))
    pk, sk, hlc, node = row
    return TableDef(name, pk, sk, (hlc, node))


def is_tombstone(raw: bytes | None) -> bool:
    """Whether a ``tables`` value is a table tombstone (a deleted table: see
    :mod:`engine.schema`)."""
    return raw is not None and codec.loads(raw)[0] is None


@dataclass(slots=True)
class Snapshot:
    """A full-state export: table definitions, item states, the vv they cover, forgotten nodes,
    and the secondary index definitions (never their entries: each replica derives its own).

    ``items`` is chunked (no long read transaction) and may include changes newer than
    ``vv`` — which is safe, since merging them again later is a no-op. ``covers`` is, per
    origin, the HLC of the change at ``vv[origin]`` (read with ``vv``): the snapshot reflects
    every change of that origin with an HLC at or below it, which lets a receiver tell an item
    it holds that is absent from the snapshot because it was deleted (see
    :meth:`engine.Store.merge_snapshot`).
    """

    vv: dict[int, int]
    tables: list[TableDef]
    forgotten: frozenset[int]
    items: Callable[[], Iterator[tuple[bytes, bytes]]]
    indexes: list[IndexDef] = field(default_factory=list)
    covers: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Change:
    """One operation of the change feed (``store.changes()``), like a DynamoDB Streams record.

    ``position`` orders the feed locally; all operations of one transaction share it, as
    they share ``version`` and ``txid``. ``kind`` is ``put``, ``update``, ``delete``,
    ``create_table``, ``create_index``, ``drop_index`` or ``set_ttl`` (these four with an
    empty ``key`` and the definition in ``delta``). ``delta`` is what the operation wrote
    (``item``; ``set``/``remove``, and ``add``/``delete`` for counters and sets);
    ``new_image`` is the visible item right after this transaction was applied here. ``ttl``
    is true for a delete made by TTL expiry (DynamoDB Streams' service identity).
    """

    position: int
    table: str
    key: dict[str, Any]
    kind: str
    version: Version
    origin: int
    seq: int
    delta: dict[str, Any]
    new_image: dict[str, Any] | None
    ttl: bool = False

    @property
    def txid(self) -> tuple[int, int]:
        """The transaction id ``(origin, seq)``, shared by every op of one batch."""
        return (self.origin, self.seq)

    @property
    def hlc(self) -> int:
        return self.version[0]


@dataclass(frozen=True, slots=True)
class Conflict:
    """A value lost to a concurrent write, recorded when a remote change was merged.

    ``winner``/``loser`` are versions ``(hlc, node)``; ``origin`` is the node whose write
    lost and ``value`` what it had written; ``local_lost`` says whether the losing value was
    the one this node held. Conflicts are local diagnostics and never replicate.
    """

    id: int
    table: str
    key: dict[str, Any]
    attribute: str
    winner: Version
    loser: Version
    origin: int
    value: Any
    winner_value: Any
    local_lost: bool

    def __str__(self) -> str:
        return (
            f"conflict #{self.id} {self.table} {self.key} .{self.attribute}: "
            f"{self.value!r} from {self.origin:016x} at {format_hlc(self.loser[0])} lost to "
            f"{self.winner_value!r} at {format_hlc(self.winner[0])}"
        )


@dataclass(slots=True)
class ApplyReport:
    """What ``Store.apply_changes`` did with a batch of remote transactions.

    ``applied`` and ``skipped`` (already known) count transactions; ``held`` counts those not
    applied because their origin stopped: ``refused`` maps an origin to why (clock skew, a
    forgotten node) and ``gaps`` to ``(have, got)`` when a sequence number is missing. Held
    changes stay with the sender and can be offered again.
    """

    applied: int = 0
    skipped: int = 0
    held: int = 0
    conflicts: int = 0
    refused: dict[int, Error] = field(default_factory=dict)
    gaps: dict[int, tuple[int, int]] = field(default_factory=dict)

    def add(self, other: ApplyReport) -> None:
        """Fold another report into this one."""
        self.applied += other.applied
        self.skipped += other.skipped
        self.held += other.held
        self.conflicts += other.conflicts
        self.refused.update(other.refused)
        self.gaps.update(other.gaps)
