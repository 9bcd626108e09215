"""Store: one node's replica in one LMDB environment — identity, tables, the local write path.

The on-disk layout (named LMDB databases, record formats, meta records) is
:mod:`engine.layout`; every database is written only inside one write transaction per change.

The modules around it each own one job: :mod:`engine.changelog` (appends,
``log_range``, the change feed), :mod:`engine.apply` (merging remote changes, conflicts),
:mod:`engine.retention` (snapshots, compaction, tombstones, forgetting), :mod:`engine.schema`
(table definitions), :mod:`engine.lineage` (a store that reused its own seqs),
:mod:`engine.writepath` (the local write transaction) and :mod:`engine.table` (the item API
and range reads). :class:`Store` is their one entry point: it owns an
:class:`engine.context.Context` (environment, identity, clock, limits, listeners, table cache)
and passes it to them; they never see the Store, so imports run one way
(``tests/unit/test_layering.py`` keeps it so).

A local write takes two gets (clock record, item), one cursor step (the log's last entry,
which carries the clock between record writes: :func:`engine.changelog.read_clock`) and three
puts (item, log, index) in one transaction; the log entry is the exact bytes that travel to
peers, so relays are free.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import apply, changelog, codec, lineage, orphans, retention, schema, ttl, voids
from . import index as index_mod
from .batch import Batch
from .changelog import read_clock, write_clock
from .changes import (
    ApplyReport,
    Change,
    Conflict,
    RawChange,
    Snapshot,
    TableDef,
)
from .clock import DEFAULT_MAX_OFFSET_MS, physical_ms, system_wall_ms, tick
from .context import Context
from .env import DEFAULT_MAP_SIZE, Env, Txn, acquire, release
from .errors import Error, ValidationError
from .integrity import IntegrityReport, integrity_check
from .layout import (
    FORMAT,
    META_FORMAT,
    META_IDENT,
    META_USER_PREFIX,
    READABLE_FORMATS,
    U64,
)
from .table import Table

if TYPE_CHECKING:
    from .index import Index, IndexDef

__all__ = ["DEFAULT_MAX_CONFLICTS", "Snapshot", "Store", "TableDef", "open"]

log = logging.getLogger(__name__)

DEFAULT_MAX_CONFLICTS = 10_000

_REGION = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


class Store:
    """A node's replica: open with :func:`engine.open`, use as a context manager.

    Thread-safe; several processes may open the same directory (LMDB's own locking; the
    clock and sequences live in the transaction, not in Python memory).
    """

    def __init__(
        self,
        env: Env,
        *,
        node_id: int,
        region: str,
        max_offset_ms: int,
        max_conflicts: int,
        wall_clock: Callable[[], int],
    ) -> None:
        self._ctx = Context(env, node_id=node_id, region=region, max_offset_ms=max_offset_ms,
                            max_conflicts=max_conflicts, wall=wall_clock)

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The store's directory (read-only)."""
        return self._ctx.path

    @property
    def node_id(self) -> int:
        """This replica's 64-bit id: made once at creation, never reused (read-only).

        It changes only when the store re-identifies (:mod:`engine.lineage`); every Store of
        this process on the same directory shares the environment and sees the change.
        """
        return self._ctx.node_id

    @property
    def region(self) -> str:
        """The human name of this replica's region, e.g. ``ap-south-1`` (read-only)."""
        return self._ctx.region

    @property
    def durable(self) -> bool:
        """Whether every commit is synced to disk (``engine.open(durable=)``; read-only)."""
        return self._ctx.durable

    @property
    def max_offset_ms(self) -> int:
        """How far (ms) a remote change's clock may be ahead of ours (``max_clock_offset``)."""
        return self._ctx.max_offset_ms

    @max_offset_ms.setter
    def max_offset_ms(self, value: int) -> None:
        self._ctx.max_offset_ms = value

    @property
    def max_conflicts(self) -> int:
        """How many recorded conflicts are kept (the oldest are dropped past it)."""
        return self._ctx.max_conflicts

    @max_conflicts.setter
    def max_conflicts(self, value: int) -> None:
        self._ctx.max_conflicts = value

    @property
    def _wall(self) -> Callable[[], int]:
        """The wall clock this store was opened with (tests reach it to move a ManualClock)."""
        return self._ctx.wall

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the store; further use raises ``StoreClosed``. Closing twice is allowed."""
        if not self._ctx.closed:
            with contextlib.suppress(Error):
                lineage.write_stamp(self._ctx)
        self._ctx.close()

    @property
    def closed(self) -> bool:
        return self._ctx.closed

    def _e(self) -> Env:
        """The environment (``StoreClosed`` once closed); for tests that inspect LMDB."""
        return self._ctx.env

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("durable" if self.durable else "non-durable")
        return f"<Store {str(self.path)!r} region={self.region!r} node={self.node_id:016x} {state}>"

    # -- tables ------------------------------------------------------------------------

    def create_table(
        self, name: str, partition_key: str, sort_key: str | None = None, *,
        indexes: Iterable[Index] | None = None, ttl_attribute: str | None = None,
    ) -> Table:
        """Create a table (a replicated change); idempotent for the same schema.

        :param indexes: secondary indexes (:class:`engine.Index`) created with the table, in
            the same transaction; on an existing table, those missing are created
            (:meth:`create_index`).
        :param ttl_attribute: the attribute holding items' expiry time (see :meth:`set_ttl`);
            set in the same transaction, or on an existing table by :meth:`set_ttl`.
        :raises SchemaError: if the table exists with a different key schema.
        """
        return Table(self._ctx, schema.create_table(
            self._ctx, name, partition_key, sort_key, indexes=indexes,
            ttl_attribute=ttl_attribute))

    def set_ttl(self, table: str, attribute: str | None) -> None:
        """Name the attribute that holds ``table``'s items' expiry time (``None``: no TTL).

        An item whose TTL attribute is a number of epoch seconds at or before now is expired:
        reads leave it out at once and :meth:`expire` deletes it. Replicated like the table
        definition (the latest setting wins). :raises TableNotFound: if there is no such table.
        """
        ttl.set_ttl(self._ctx, table, attribute)

    def expire(self, limit: int | None = None) -> int:
        """Delete expired items (see :meth:`set_ttl`); return how many were deleted.

        Ordinary deletes, marked ``Change.ttl`` in the change feed, that replicate like any
        delete; each re-checks its item in its write transaction, so an item refreshed
        meanwhile survives. ``limit`` caps the deletes of one call. The live Replicator,
        ``regiondb serve`` and the endpoint call it every few seconds (:class:`engine.ttl.Expirer`).
        """
        return ttl.expire(self._ctx, limit)

    def create_index(
        self, table: str, index: Index, *,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> Index:
        """Add a secondary index to ``table`` (a replicated change) and fill it from the items.

        The fill runs in chunks, one write transaction each, so writers are never held back
        for long; it is idempotent, and resumed if interrupted (by calling this again with
        the same definition, or by reopening the store). Returns when the index is complete.
        Every replica fills its own when the definition reaches it. Creating the same
        definition again is a no-op.

        :param progress: called as ``progress(items read, table items or None)`` per chunk.
        :raises ValidationError: for a bad index, or a name this table already uses for a
            different definition.
        """
        return index_mod.create(self._ctx, table, index, progress)

    def drop_index(self, table: str, name: str) -> None:
        """Remove secondary index ``name`` of ``table`` (a replicated change) and its entries.

        :raises ValidationError: if the table has no such index.
        """
        index_mod.drop(self._ctx, table, name)

    def delete_table(self, name: str) -> None:
        """Remove table ``name``, its items and its indexes, on every replica (a replicated
        change, like :meth:`create_table`). A table created again under the name is a new
        table: changes of the old one that arrive late are dropped (:mod:`engine.schema`).

        :raises TableNotFound: if there is no such table.
        """
        schema.delete_table(self._ctx, name)

    def schema_orphans(self, name: str) -> list[dict[str, Any]]:
        """Items of table ``name`` stored under a key its live key schema does not give them:
        written under a key schema that lost a creation race (:mod:`engine.orphans`). The
        same on every converged replica; ``scan`` returns them too.

        :raises TableNotFound: if there is no such table.
        """
        return orphans.orphans(self._ctx, name)

    def rekey_orphans(self, name: str) -> int:
        """Move each :meth:`schema_orphans` item that carries the live key attributes under
        its key (unless an item lives there), as replicated writes; return how many moved."""
        return orphans.rekey(self._ctx, name)

    def table(self, name: str) -> Table:
        """The table called ``name``. :raises TableNotFound: if there is none."""
        return Table(self._ctx, self._ctx.table_def(name))

    def tables(self) -> list[str]:
        """Names of all tables, sorted."""
        env = self._e()

        def run(txn: Txn) -> list[str]:
            return [bytes(k).decode() for k, v in txn.cursor(db=env.tables)
                    if not schema.is_tombstone(v)]

        return env.read(run)

    def table_defs(self) -> list[TableDef]:
        """All table definitions with their versions."""
        return self._ctx.table_defs()

    def batch(self) -> Batch:
        """A batch of writes applied atomically, with one version, as one log entry."""
        self._e()
        return Batch(self._ctx)

    def get_many(self, keys: Iterable[Sequence[Any]]) -> list[dict[str, Any] | None]:
        """Several items read in one snapshot (DynamoDB's TransactGetItems).

        :param keys: ``(table, pk)`` or ``(table, pk, sk)`` tuples; ``table`` a name or Table.
        :returns: the items (``None`` where missing), in the order asked.
        """
        wanted: list[bytes] = []
        tables: list[str] = []
        for k in keys:
            if not isinstance(k, (tuple, list)) or len(k) not in (2, 3):
                raise ValidationError(f"get_many takes (table, pk[, sk]) tuples, not {k!r}")
            t = k[0] if isinstance(k[0], Table) else self.table(k[0])
            wanted.append(t._key(k[1], k[2] if len(k) == 3 else None)[0])
            tables.append(t.name)
        env = self._e()

        def run(txn: Txn) -> list[dict[str, Any] | None]:
            out = []
            for key in wanted:
                raw = txn.get(key, db=env.items)
                out.append(None if raw is None else codec.visible_from_raw(raw))
            return out

        found = env.read(run)
        return [ttl.hide_expired(self._ctx, name, item) for name, item in zip(tables, found,
                                                                          strict=True)]

    # -- change log, feed and version vector (engine.changelog) ------------------------

    def version_vector(self) -> dict[int, int]:
        """``{origin node id: highest seq applied}``, this node included."""
        return changelog.version_vector(self._ctx)

    def log_floor(self) -> dict[int, int]:
        """Per origin, the seq at or below which entries may be missing from the log."""
        return changelog.log_floor(self._ctx)

    def log_range(self, origin: int, after: int, limit: int | None = None) -> list[RawChange]:
        """Log entries of ``origin`` with seq above ``after``, ascending, contiguous.

        :raises LogTruncated: if entries right after ``after`` were truncated (send a snapshot).
        """
        return changelog.log_range(self._ctx, origin, after, limit)

    def changes(self, since: int = 0, *, limit: int | None = None) -> Iterator[Change]:
        """The change feed: every applied operation after position ``since``, in apply order.

        Local writes and merged remote changes alike; snapshot merges and truncated entries
        are not in it. Resume by passing the last ``Change.position`` seen.
        """
        return changelog.changes(self._ctx, since, limit)

    def position(self) -> int:
        """The position of the last applied transaction (0 for an empty log)."""
        return changelog.position(self._ctx)

    def tick(self) -> int:
        """Issue (and persist) a fresh HLC of this node, e.g. to stamp a segment it creates."""
        env = self._e()

        def run(txn: Txn) -> int:
            hlc, seq, pos = read_clock(txn, env)
            hlc = tick(hlc, self._ctx.wall())
            write_clock(txn, env, hlc, seq, pos)
            return hlc

        return env.write(run)

    def add_listener(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(position)`` after each commit made through this process's store."""
        self._ctx.add_listener(callback)

    def remove_listener(self, callback: Callable[[int], None]) -> None:
        """Stop calling a listener added with :meth:`add_listener`."""
        self._ctx.remove_listener(callback)

    # -- remote changes and conflicts (engine.apply) -----------------------------------

    def apply_changes(self, records: Iterable[RawChange]) -> ApplyReport:
        """Merge remote transactions ``(origin, seq, txn)`` atomically, in one LMDB transaction.

        Already-known entries are skipped; an origin stops at a gap in its sequence, at a
        change beyond the clock offset (``ClockSkewError`` in ``report.refused``) or if it was
        forgotten; other origins still apply. Transactions are never applied in part.

        :raises ValidationError: for a malformed record; nothing is applied.
        """
        return apply.apply_changes(self._ctx, records)

    def apply_change_lists(self, lists: Iterable[Iterable[RawChange]],
                           ) -> list[ApplyReport | Error]:
        """Merge several lists of remote transactions in one LMDB transaction and one commit.

        Each list is applied as :meth:`apply_changes` would, after the lists before it, and
        gets its own outcome, in order: its report, or the error that refused it (a malformed
        record refuses its own list only; nothing of it is applied). This is how segments
        that arrive together from several peers share one durable sync.
        """
        return apply.apply_change_lists(self._ctx, lists)

    def conflicts(self, since: int = 0) -> Iterator[Conflict]:
        """Recorded conflicts with id above ``since``, oldest first (bounded; never replicated)."""
        return apply.conflicts(self._ctx, since)

    def conflict_count(self) -> int:
        """How many conflicts were ever recorded here (including those trimmed)."""
        return apply.conflict_count(self._ctx)

    # -- snapshots, retention, tombstones (engine.retention) ---------------------------

    def snapshot(self) -> Snapshot:
        """A full-state export for a peer whose needs lie below the log's retention point."""
        return retention.snapshot(self._ctx)

    def merge_snapshot(
        self, vv: Mapping[int, int], tables: Iterable[TableDef],
        items: Iterable[tuple[bytes, bytes]], indexes: Iterable[IndexDef] = (), *,
        covers: Mapping[int, int] | None = None,
        span: tuple[bytes | None, bytes | None] | None = None,
    ) -> int:
        """Merge a peer's full state atomically; return how many item states were merged.

        Entries we now cover without holding them in our log raise the log floor of their
        origin, so peers needing them from us get a snapshot too.

        ``indexes`` are the sender's index definitions (``Snapshot.indexes``); any new one is
        filled here from the merged items before this returns.

        ``covers`` (the snapshot's :attr:`Snapshot.covers`) makes the snapshot authoritative
        for what its sender had seen: our item entries written by changes it covers are
        replaced by the sender's state, and within ``span`` — the inclusive key range
        ``(low, high)`` the items list completely, ``None`` for an open end — an item we hold
        that the snapshot lacks loses them (it was deleted there and its tombstone purged).
        Snapshot entries our own covers cover and we lack are dropped likewise. Tombstones
        the merge leaves are purged by :meth:`compact` once stable, like others.

        :raises ValidationError: for a malformed table, key or state; nothing is applied.
        """
        return retention.merge_snapshot(self._ctx, vv, tables, items, indexes, covers, span)

    def vv_hlcs(self) -> tuple[dict[int, int], dict[int, int]]:
        """``(vv, hlcs)``: the version vector and, per origin, the HLC of the change at its
        vv position (where known), read together. An origin's HLCs grow with its seqs, so
        ``(hlc, o)`` was written by a change this store holds iff ``hlc <= hlcs[o]``."""
        return changelog.vv_hlcs(self._ctx)

    def hlcs_at(self, points: Mapping[int, int]) -> dict[int, int]:
        """Per origin of ``points``, the HLC of its entry at seq ``points[origin]``, where
        known (the log, or the floors record of exactly that seq)."""
        env = self._e()
        return env.read(lambda txn: changelog.vv_hlcs_txn(txn, env, dict(points)))

    def compact(
        self, stable: Mapping[int, int], *, purge_tombstones: bool = True
    ) -> tuple[int, int]:
        """Truncate the log up to ``stable[origin]`` per origin and drop stable tombstones.

        The caller (replication) decides what is stable: acknowledged by every known peer.
        Returns ``(log entries removed, tombstones purged)``.
        """
        return retention.compact(self._ctx, stable, purge_tombstones)

    def forget(self, node_id: int, *, cut: int | None = None) -> int:
        """Remove a dead node for good: its changes after the *cut* are refused from now on.

        The cut is the last seq of the node still accepted: the largest of ``cut``, what this
        store holds of it, and any cut recorded before (a forget adopted from several peers
        keeps the largest). Its changes up to the cut still apply and relay, so members that
        had received different prefixes of its log end equal. Returns the cut.
        A forgotten node that comes back must rejoin as a new node from a snapshot.
        """
        return retention.forget(self._ctx, node_id, cut)

    def forget_cuts(self) -> dict[int, int]:
        """Forgotten node id -> its cut (the last seq of it still accepted)."""
        return retention.forget_cuts_of(self._ctx)

    def forgotten(self) -> frozenset[int]:
        """Node ids this store has forgotten."""
        return retention.forgotten(self._ctx)

    # -- lineage: noticing that this store reused seqs of its own id (engine.lineage) ------

    def divergence(self, peer_vv: Mapping[int, int], peer_tips: Mapping[int, int]) -> str | None:
        """Why this store's own log forked from a peer's view of it (the peer's vv and
        :meth:`vv_hlcs` tips), or ``None`` if it did not (:func:`engine.lineage.divergence`)."""
        return lineage.divergence(self._ctx, peer_vv, peer_tips)

    def reidentify(self, reason: str, *, forked: bool = True,
                   peer_tip: tuple[int, int] | None = None) -> int:
        """Stop writing under this node id and take a new one (:func:`engine.lineage.
        reidentify`). ``forked``: this id's writes after ``peer_tip`` (``(seq, hlc)`` of the
        peer's entry at its vv position of this id) become the new id's first writes (noticed
        at a contact); ``False`` (``regiondb restore``) keeps them all in the log as the old id's.
        Returns the new id; ``reason`` is logged and recorded (:meth:`lineage_events`)."""
        return lineage.reidentify(self._ctx, reason, forked=forked, peer_tip=peer_tip)

    def reissue_pending(self, peer_vv: Mapping[int, int] | None = None) -> int:
        """Re-issue writes an earlier build set aside at a re-identification, that a peer (whose
        vv is ``peer_vv``) holds differently or never had; return how many
        (:func:`engine.lineage.reissue_pending`). One meta read when none wait."""
        return lineage.reissue_pending(self._ctx, peer_vv)

    def pending_reissues(self) -> int:
        """How many set-aside writes still wait to be compared with a peer's copy."""
        return lineage.pending_reissues(self._ctx)

    def voids(self) -> list[Any]:
        """Forked entries relabeled by their writer, as snapshots carry them
        (:func:`engine.voids.wire`)."""
        env = self._e()
        return env.read(lambda txn: voids.wire(txn, env))

    def adopt_voids(self, rows: Any) -> bool:
        """Take in a snapshot sender's voids before merging its items (:func:`engine.voids.
        adopt`). :raises ValidationError: for malformed ones (nothing changes)."""
        voids.check_wire(rows)
        env = self._e()
        return env.write(lambda txn: voids.adopt(txn, env, rows))

    def lineage_events(self) -> list[dict[str, Any]]:
        """Re-identifications of this store, oldest first (for ``regiondb status``)."""
        return lineage.lineage_events(self._ctx)

    # -- state summaries ---------------------------------------------------------------

    def digest(self) -> str:
        """SHA-256 of the visible state (tables and items); equal on converged replicas."""
        env = self._e()

        def run(txn: Txn) -> str:
            h = hashlib.sha256()
            for k, v in txn.cursor(db=env.tables):
                row = codec.loads(v)
                if row[0] is None:  # a deleted table (tombstone) is not visible state
                    continue
                ttl = [row[4]] if len(row) == 7 and row[4] is not None else []
                h.update(codec.canonical(["T", bytes(k), row[0], row[1], *ttl]))
            for k, v in txn.cursor(db=env.items):
                item = codec.visible_from_raw(bytes(v))
                if item is not None:
                    h.update(codec.canonical([bytes(k), item]))
            return h.hexdigest()

        return env.read(run)

    def integrity_check(self) -> IntegrityReport:
        """Verify index == items and log == items in one consistent read (a full pass).

        Never raises for what it finds: the report's ``problems`` lists every disagreement
        (``report.ok`` when there is none). See :mod:`engine.integrity`.
        """
        return integrity_check(self._ctx)

    def get_meta(self, name: str) -> Any:
        """A value stored by :meth:`set_meta` (for replication's bookkeeping), or ``None``."""
        key = _check_meta_name(name)
        env = self._e()
        raw = env.read(lambda txn: txn.get(key, db=env.meta))
        return None if raw is None else codec.loads(raw)

    def set_meta(self, name: str, value: Any) -> None:
        """Store a small CBOR-encodable value under ``name`` (not replicated)."""
        key = _check_meta_name(name)
        env = self._e()
        data = codec.dumps_checked(value, f"meta value {name!r}")
        env.write(lambda txn: txn.put(key, data, db=env.meta))

    def stats(self) -> dict[str, Any]:
        """Sizes and counters, for ``regiondb status``."""
        env = self._e()

        def run(txn: Txn) -> dict[str, Any]:
            hlc, seq, pos = read_clock(txn, env)
            return {
                "items": txn.stat(env.items)["entries"],
                "log_entries": txn.stat(env.log)["entries"],
                "conflicts_stored": txn.stat(env.conflicts)["entries"],
                "hlc": hlc,
                # > max_clock_offset: local writes fail with ClockSkewError (clock.tick_local)
                "clock_ahead_ms": max(0, physical_ms(hlc) - self._ctx.wall()),
                "local_seq": seq,
                "position": pos,
            }

        out = env.read(run)
        info = env.lmdb.info()
        out.update({
            "node_id": self.node_id, "region": self.region, "path": str(self.path),
            "durable": self.durable, "map_size": info["map_size"],
            "commits": info["last_txnid"],  # LMDB write transactions committed, ever
            "file_bytes": os.path.getsize(self.path / "data.mdb"),
            "conflicts_total": self.conflict_count(),
            "max_clock_offset_ms": self.max_offset_ms,
        })
        return out

def _check_meta_name(name: object) -> bytes:
    """The meta key of a :meth:`Store.set_meta` name, or ``ValidationError``."""
    try:
        raw = name.encode("utf-8") if isinstance(name, str) else b""
    except UnicodeEncodeError:  # a lone surrogate
        raw = b""
    if not 0 < len(raw) <= 200:
        raise ValidationError(
            f"meta name must be a non-empty str (valid Unicode) of at most 200 bytes, "
            f"not {name!r}"
        )
    return META_USER_PREFIX + raw


def _ident_of(path: Path) -> tuple[int, int]:
    st = os.stat(path / "data.mdb")
    return st.st_dev, st.st_ino


def open(  # noqa: A001 - the contract's name, like io.open
    path: str | os.PathLike[str],
    *,
    region: str | None = None,
    durable: bool = True,
    max_clock_offset: float = DEFAULT_MAX_OFFSET_MS / 1000,
    map_size: int = DEFAULT_MAP_SIZE,
    max_conflicts: int = DEFAULT_MAX_CONFLICTS,
    wall_clock: Callable[[], int] | None = None,
    create: bool = True,
) -> Store:
    """Open the store in directory ``path``, creating it (``region`` required) if missing.

    :param durable: sync every commit (default); ``False`` may lose the last commits on
        power loss, never consistency.
    :param max_clock_offset: seconds a remote change may be ahead of our clock.
    :param map_size: initial LMDB map size in bytes; the map grows by itself when full.
    :param wall_clock: milliseconds since the epoch (tests inject :class:`ManualClock`).
    :raises ValidationError: for bad arguments, or a region that differs from the store's.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ValidationError(f"path must be a str or os.PathLike, not {type(path).__name__}")
    if region is not None and (not isinstance(region, str) or not _REGION.fullmatch(region)):
        raise ValidationError(
            f"region must be 1-64 characters of A-Z a-z 0-9 _ . -, not {region!r}"
        )
    if isinstance(max_clock_offset, bool) or not isinstance(max_clock_offset, (int, float)) \
            or not 0 <= max_clock_offset <= 86_400:
        raise ValidationError(
            f"max_clock_offset must be seconds in [0, 86400], not {max_clock_offset!r}"
        )
    if isinstance(map_size, bool) or not isinstance(map_size, int) or map_size < 1 << 16:
        raise ValidationError(f"map_size must be an int of at least 65536 bytes, not {map_size!r}")
    if isinstance(max_conflicts, bool) or not isinstance(max_conflicts, int) or max_conflicts < 0:
        raise ValidationError(f"max_conflicts must be an int >= 0, not {max_conflicts!r}")
    if not isinstance(durable, bool) or not isinstance(create, bool):
        raise ValidationError(f"durable and create must be bools, not {durable!r}, {create!r}")
    if wall_clock is not None and not callable(wall_clock):
        raise ValidationError(f"wall_clock must be a callable returning ms, not {wall_clock!r}")
    p = Path(path)
    if not (p / "data.mdb").exists():
        if not create:
            raise ValidationError(f"{p} is not a regiondb store (no data.mdb)")
        if region is None:
            raise ValidationError(f"{p} does not exist yet: give region= to create it")
    if p.exists() and not p.is_dir():
        raise ValidationError(f"{p} exists and is not a directory")
    p.mkdir(parents=True, exist_ok=True)
    env = acquire(p, map_size=map_size, durable=durable)
    try:
        node_id, stored_region = env.write(lambda txn: _identify(txn, env, p, region))
    except BaseException:
        release(env)
        raise
    if region is not None and region != stored_region:
        release(env)
        raise ValidationError(f"{p} belongs to region {stored_region!r}, not {region!r}")
    env.identity = node_id
    store = Store(env, node_id=node_id, region=stored_region,
                  max_offset_ms=round(max_clock_offset * 1000), max_conflicts=max_conflicts,
                  wall_clock=wall_clock or system_wall_ms)
    try:
        index_mod.build_pending(store._ctx)  # an index fill or clear interrupted by a crash
        lineage.check_stamp(store._ctx)  # a data file restored in place: a new id at once
        lineage.write_stamp(store._ctx)
    except BaseException:
        store.close()
        raise
    return store


def _identify(txn: Txn, env: Env, path: Path, region: str | None) -> tuple[int, str]:
    """Create the identity of a new store, or re-identify a copied one."""
    dev, ino = _ident_of(path)
    raw = txn.get(META_IDENT, db=env.meta)
    if raw is None:
        node_id = secrets.randbits(64) or 1
        assert region is not None
        txn.put(META_FORMAT, FORMAT, db=env.meta)
        txn.put(META_IDENT, codec.dumps([node_id, region, dev, ino]), db=env.meta)
        write_clock(txn, env, 0, 0, 0)
        log.info("created store %s: region %s, node %016x", path, region, node_id)
        return node_id, region
    fmt = txn.get(META_FORMAT, db=env.meta)
    if fmt not in READABLE_FORMATS:
        raise ValidationError(
            f"{path}: store format {fmt!r} is not supported (this build reads 1, 2 and 3)")
    if fmt != FORMAT:
        log.info("upgrading store %s from format %s to %s", path, fmt.decode(), FORMAT.decode())
        txn.put(META_FORMAT, FORMAT, db=env.meta)
    node_id, stored_region, s_dev, s_ino = codec.loads(raw)
    if (s_dev, s_ino) != (dev, ino):
        # A copied (or restored) directory must not act as the node it was copied from:
        # it keeps the data and the old node's log, under a fresh identity.
        old = node_id
        node_id = secrets.randbits(64) or 1
        hlc, seq, pos = read_clock(txn, env)
        if seq:
            txn.put(U64.pack(old), U64.pack(seq), db=env.vv)
        write_clock(txn, env, hlc, 0, pos)
        txn.put(META_IDENT, codec.dumps([node_id, stored_region, dev, ino]), db=env.meta)
        log.warning("store %s was copied from node %016x: it is now node %016x", path, old, node_id)
    return node_id, stored_region
