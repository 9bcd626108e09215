"""Secondary indexes: definitions, entry keys, maintenance in the write transaction, backfill.

An index is a second ordering of a table's items, by other attributes (DynamoDB's GSIs and
LSIs; regiondb needs no difference between them). It is *derived* state: each replica computes
its own entries from its own merged items, in the same LMDB write transaction as every change
of a visible item — local writes and batches, remote merges, snapshot merges, TTL deletes — so
an index read never disagrees with the table. Entries never travel; definitions replicate like
table definitions (log ops ``I``/``X``, :mod:`engine.codec`).

Layout (two named LMDB databases):

=========  =============================================  ======================================
database   key                                            value
=========  =============================================  ======================================
idxdefs    table name (UTF-8)                             CBOR list of definition records
idx        ``enc(table) enc(index) enc(ipk) [enc(isk)]``   ``ALL``: the item key; otherwise the
           ``+ item key without enc(table)``              CBOR map of the projected attributes
=========  =============================================  ======================================

A definition record is ``[name, pk, sk, projection, hlc, node, dropped, table pk, table sk,
phase, resume]``. ``(hlc, node)`` is the version of the create or drop that made it: the larger
version wins, like a table definition. ``phase`` is local state, never replicated:

* ``ready``: entries are complete (or, when ``dropped``, gone);
* ``fill``: being backfilled; items up to ``resume`` (a key of ``items``) have their entries,
  later ones have them if they were written since the fill began;
* ``clear``: old entries (of a dropped or redefined index) are being deleted; a redefined index
  then fills.

Maintenance covers every definition in ``fill`` or ``ready`` (not dropped), so an interrupted
fill resumes from ``resume`` and is idempotent: re-putting an entry is a no-op. Backfill and
clearing run in chunks of :data:`BUILD_CHUNK` items, one write transaction each, never one
giant transaction; a store resumes unfinished ones when opened, and when a definition arrives
by sync the receiving call (``apply_changes``, ``merge_snapshot``) backfills before returning.

Sparse: an item lacking an index key attribute, or holding a value there that is not a key type
(str, number, bytes), is not in that index. A *local* write that sets an index key attribute
to a non-key type is refused (``ValidationError``, nothing written); a merged one is just not
indexed (logged at debug level).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from . import codec
from .changelog import append, read_clock
from .clock import Version, tick_local
from .env import Env, Txn
from .errors import ValidationError
from .keys import encode_value

if TYPE_CHECKING:
    from .changes import TableDef
    from .store import Store

__all__ = [
    "BUILD_CHUNK",
    "Index",
    "IndexDef",
    "active_defs",
    "build",
    "build_pending",
    "entry_of",
    "load_defs",
    "maintain",
    "merge_def",
]

log = logging.getLogger(__name__)

BUILD_CHUNK = 2000  # items (or entries) per backfill transaction
_MAX_KEY = codec.MAX_KEY_BYTES
_KEY_TYPES = (str, int, float, Decimal, bytes)

Projection = str | tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Index:
    """A secondary index definition: ``Index("by_status", "status", "placed_at")``.

    ``projection`` is ``"ALL"`` (every attribute; the default), ``"KEYS_ONLY"`` or a list of
    attribute names; the table's and the index's key attributes are always projected. A list
    is kept as a sorted tuple.

    :raises ValidationError: for a bad name, key attribute or projection.
    """

    name: str
    partition_key: str
    sort_key: str | None = None
    projection: Projection = "ALL"

    def __post_init__(self) -> None:
        proj = codec.check_index_spec("?", self.name, self.partition_key, self.sort_key,
                                      self.projection)
        object.__setattr__(self, "projection", proj)


@dataclass(frozen=True, slots=True)
class IndexDef:
    """An index definition as stored here, with its version and local build state."""

    table: str
    index: Index
    version: Version
    dropped: bool = False
    table_pk: str = ""
    table_sk: str | None = None
    phase: str = "ready"
    resume: bytes | None = None
    prefix: bytes = field(default=b"", compare=False)   # enc(table) + enc(index name)
    tlen: int = field(default=0, compare=False)         # len(enc(table))

    @property
    def maintained(self) -> bool:
        """Whether writes keep this index's entries (filled, or being filled)."""
        return not self.dropped and self.phase != "clear"

    @property
    def ready(self) -> bool:
        """Whether the index can be queried: live and completely filled."""
        return not self.dropped and self.phase == "ready"

    def record(self) -> list[Any]:
        ix = self.index
        proj = ix.projection if isinstance(ix.projection, str) else list(ix.projection)
        return [ix.name, ix.partition_key, ix.sort_key, proj, self.version[0], self.version[1],
                self.dropped, self.table_pk, self.table_sk, self.phase, self.resume]


def _make(table: str, ix: Index, version: Version, dropped: bool, tpk: str, tsk: str | None,
          phase: str, resume: bytes | None) -> IndexDef:
    tprefix = table_prefix(table)
    return IndexDef(table, ix, version, dropped, tpk, tsk, phase, resume,
                    tprefix + encode_value(ix.name, "index name"), len(tprefix))


_TPREFIX: dict[str, bytes] = {}


def table_prefix(table: str) -> bytes:
    """``enc(table)``: the prefix of the table's item keys (cached)."""
    p = _TPREFIX.get(table)
    if p is None:
        if len(_TPREFIX) >= 4096:
            _TPREFIX.clear()
        p = _TPREFIX[table] = encode_value(table, "table name")
    return p


# -- definitions in the idxdefs database -----------------------------------------------------

_PARSED: dict[tuple[str, bytes], tuple[IndexDef, ...]] = {}


def _parse(table: str, raw: bytes) -> tuple[IndexDef, ...]:
    got = _PARSED.get((table, raw))
    if got is not None:
        return got
    out = []
    for r in codec.loads(raw):
        name, pk, sk, proj, hlc, node, dropped, tpk, tsk, phase, resume = r
        # no pk: a drop tombstone of an index this store never saw created
        ix = Index(name, pk, sk, proj if isinstance(proj, str) else tuple(proj)) if pk \
            else _tombstone_index(name)
        out.append(_make(table, ix, (hlc, node), dropped, tpk, tsk, phase, resume))
    parsed = tuple(out)
    if len(_PARSED) >= 1024:
        _PARSED.clear()
    _PARSED[(table, raw)] = parsed
    return parsed


def load_defs(txn: Txn, env: Env, table: str) -> tuple[IndexDef, ...]:
    """Every index definition of ``table`` (dropped ones included), as of this transaction."""
    raw = txn.get(table.encode(), db=env.idxdefs)
    return () if raw is None else _parse(table, bytes(raw))


_ACTIVE: dict[bytes, tuple[IndexDef, ...]] = {}


def active_defs(txn: Txn, env: Env, table: str) -> tuple[IndexDef, ...]:
    """The definitions of ``table`` that writes must maintain; ``()`` when it has none.

    This is the write path's one extra get per table: cheap when the table has no index.
    """
    raw = txn.get(table.encode(), db=env.idxdefs)
    if raw is None:
        return ()
    raw = bytes(raw)
    got = _ACTIVE.get(raw)
    if got is None:
        got = tuple(d for d in _parse(table, raw) if d.maintained)
        if len(_ACTIVE) >= 1024:
            _ACTIVE.clear()
        _ACTIVE[raw] = got
    return got


def _save_defs(txn: Txn, env: Env, table: str, defs: Iterable[IndexDef]) -> None:
    records = [d.record() for d in defs]
    if records:
        txn.put(table.encode(), codec.dumps(records), db=env.idxdefs)
    else:
        txn.delete(table.encode(), db=env.idxdefs)


def _replace(txn: Txn, env: Env, table: str, new: IndexDef) -> None:
    defs = [d for d in load_defs(txn, env, table) if d.index.name != new.index.name]
    defs.append(new)
    defs.sort(key=lambda d: d.index.name)
    _save_defs(txn, env, table, defs)


def _same_spec(a: Index, b: Index) -> bool:
    return (a.partition_key, a.sort_key, a.projection) == (b.partition_key, b.sort_key,
                                                          b.projection)


def merge_def(txn: Txn, env: Env, table: str, ix: Index | None, name: str, v: Version,
              *, dropped: bool | None = None) -> bool:
    """Merge a create (``ix``) or a drop (``ix is None``) of index ``name`` at version ``v``.

    The larger version wins, as for table definitions. Returns whether the index now needs
    building or clearing (the caller runs :func:`build_pending` after its commit).
    """
    is_drop = ix is None if dropped is None else dropped
    cur = next((d for d in load_defs(txn, env, table) if d.index.name == name), None)
    if cur is not None and cur.version >= v:
        if cur.version != v or cur.dropped != is_drop:
            log.info("index %s.%s: definition from %016x at an older version ignored",
                     table, name, v[1])
        return False
    traw = txn.get(table.encode(), db=env.tables)
    tpk, tsk = (codec.loads(traw)[:2] if traw is not None else ("", None))
    spec = ix if ix is not None else (cur.index if cur is not None
                                      else _tombstone_index(name))
    if cur is None:
        phase = "ready" if is_drop else "fill"
    elif cur.dropped == is_drop and _same_spec(cur.index, spec):
        phase = cur.phase  # the same definition again, at a later version
    elif is_drop:
        phase = "clear"
    else:
        phase = "fill" if cur.dropped and cur.phase == "ready" else "clear"
    resume = cur.resume if cur is not None and phase == cur.phase else None
    new = _make(table, spec, v, is_drop, tpk, tsk, phase, resume)
    _replace(txn, env, table, new)
    if cur is not None and not cur.dropped and not is_drop and not _same_spec(cur.index, spec):
        log.warning("index %s.%s redefined by %016x: rebuilding", table, name, v[1])
    return new.phase != "ready"


def _tombstone_index(name: str) -> Index:
    ix = Index(name, "?")
    object.__setattr__(ix, "partition_key", "")
    return ix


# -- entries ---------------------------------------------------------------------------------


def _key_part(d: IndexDef, attr: str, value: Any, strict: bool, key: bytes) -> bytes | None:
    """The encoding of one index key value, or ``None`` (not indexed)."""
    if isinstance(value, bool) or not isinstance(value, _KEY_TYPES):
        if strict:
            raise ValidationError(
                f"attribute {attr!r} is a key of index {d.index.name!r} of table "
                f"{d.table!r} and must be str, number or bytes, not {type(value).__name__}"
            )
        log.debug("%s.%s: item %r not indexed: %r is a %s", d.table, d.index.name, key, attr,
                  type(value).__name__)
        return None
    try:
        return encode_value(value, attr)
    except ValidationError:
        if strict:
            raise
        log.debug("%s.%s: item %r not indexed: %r is not a key value", d.table, d.index.name,
                  key, attr)
        return None


def entry_of(d: IndexDef, key: bytes, item: Mapping[str, Any] | None,
             written: Mapping[str, Any] | None = None) -> tuple[bytes, bytes] | None:
    """The entry ``(key, value)`` of ``item`` (stored under item key ``key``) in index ``d``.

    ``None`` when the item is not in the index (sparse). ``written`` holds the attributes a
    local write set: a non-key value there, or an entry key over LMDB's limit, raises
    ``ValidationError`` instead of leaving the item out.
    """
    if item is None:
        return None
    ix = d.index
    pv = item.get(ix.partition_key, _MISSING)
    if pv is _MISSING:
        return None
    strict = written is not None and ix.partition_key in written
    part = _key_part(d, ix.partition_key, pv, strict, key)
    if part is None:
        return None
    ekey = d.prefix + part
    if ix.sort_key is not None:
        sv = item.get(ix.sort_key, _MISSING)
        if sv is _MISSING:
            return None
        part = _key_part(d, ix.sort_key, sv, written is not None and ix.sort_key in written,
                         key)
        if part is None:
            return None
        ekey += part
    ekey += key[d.tlen:]
    if len(ekey) > _MAX_KEY:
        if written is not None and ({ix.partition_key, ix.sort_key} & written.keys()):
            raise ValidationError(
                f"index {ix.name!r} of table {d.table!r}: entry key would be {len(ekey)} bytes, "
                f"more than the {_MAX_KEY} LMDB allows"
            )
        log.debug("%s.%s: item %r not indexed: entry key too long", d.table, ix.name, key)
        return None
    if ix.projection == "ALL":
        return ekey, key
    return ekey, codec.dumps(project(d, item))


_MISSING = object()


def project(d: IndexDef, item: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes of ``item`` that index ``d`` holds (keys always included)."""
    ix = d.index
    names = [d.table_pk, d.table_sk, ix.partition_key, ix.sort_key]
    if ix.projection != "KEYS_ONLY":
        names += list(ix.projection)
    return {n: item[n] for n in names if n is not None and n in item}


def maintain(txn: Txn, env: Env, defs: tuple[IndexDef, ...], key: bytes,
             old: Mapping[str, Any] | None, new: Mapping[str, Any] | None,
             written: Mapping[str, Any] | None = None) -> None:
    """Move item ``key``'s entries from its old visible item to its new one, in ``txn``.

    Called by every path that changes a visible item, with ``defs`` from
    :func:`active_defs`: one delete and one put per index at most, never a scan. ``written``
    (local writes only): the attributes the write set, checked strictly (see
    :func:`entry_of`); raising aborts the caller's transaction, so nothing is written.
    """
    idx = env.idx
    for d in defs:
        after = entry_of(d, key, new, written)
        before = entry_of(d, key, old) if old is not None else None
        if before == after:
            continue
        if before is not None and (after is None or before[0] != after[0]):
            txn.delete(before[0], db=idx)
        if after is not None:
            txn.put(after[0], after[1], db=idx)


def maintain_table(txn: Txn, env: Env, table: str, key: bytes,
                   old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> None:
    """:func:`maintain` for a merged (non-local) change, looking the definitions up itself.

    The hook for paths that change a visible item outside ``_commit_local`` and
    ``apply_changes`` (TTL deletes, snapshot merges, table deletion).
    """
    defs = active_defs(txn, env, table)
    if defs:
        maintain(txn, env, defs, key, old, new)


def drop_table_entries(txn: Txn, env: Env, table: str, limit: int | None = None) -> bool:
    """Delete the definitions and entries of every index of ``table`` (table deletion).

    With ``limit``, deletes at most that many entries and returns ``False`` if some remain
    (call again in a new transaction); the definitions go with the last call.
    """
    prefix = table_prefix(table)
    cur = txn.cursor(db=env.idx)
    n = 0
    ok = cur.set_range(prefix)
    while ok and bytes(cur.key()).startswith(prefix):
        if limit is not None and n >= limit:
            return False
        ok = cur.delete() and bool(cur.key())
        n += 1
    txn.delete(table.encode(), db=env.idxdefs)
    return True


# -- backfill and clearing -------------------------------------------------------------------


def _step(txn: Txn, env: Env, table: str, name: str, chunk: int) -> tuple[bool, int, str]:
    """One chunk of work on index ``name``: ``(finished, items or entries done, phase)``."""
    d = next((d for d in load_defs(txn, env, table) if d.index.name == name), None)
    if d is None or d.phase == "ready":
        return True, 0, "ready"
    n = 0
    if d.phase == "clear":
        cur = txn.cursor(db=env.idx)
        ok = cur.set_range(d.prefix)
        while ok and n < chunk and bytes(cur.key()).startswith(d.prefix):
            ok = cur.delete() and bool(cur.key())
            n += 1
        more = ok and bytes(cur.key()).startswith(d.prefix)
        if not more:
            phase = "ready" if d.dropped else "fill"
            _replace(txn, env, table, _make(table, d.index, d.version, d.dropped, d.table_pk,
                                            d.table_sk, phase, None))
        return False, n, "clear"
    tprefix = table_prefix(table)
    cur = txn.cursor(db=env.items)
    start = d.resume or tprefix
    ok = cur.set_range(start)
    if ok and d.resume is not None and cur.key() == d.resume:
        ok = cur.next()
    last = d.resume
    idx = env.idx
    while ok and n < chunk:
        k = bytes(cur.key())
        if not k.startswith(tprefix):
            ok = False
            break
        item = codec.visible_from_raw(bytes(cur.value()))
        e = entry_of(d, k, item)
        if e is not None:
            txn.put(e[0], e[1], db=idx)
        last = k
        n += 1
        ok = cur.next()
    more = ok and bytes(cur.key()).startswith(tprefix)
    _replace(txn, env, table, _make(table, d.index, d.version, d.dropped, d.table_pk,
                                    d.table_sk, "fill" if more else "ready",
                                    last if more else None))
    return not more, n, "fill"


def build(store: Store, table: str, name: str,
          progress: Callable[[int, int | None], None] | None = None,
          chunk: int | None = None) -> int:
    """Run index ``name``'s pending clear and fill to the end; return the items filled.

    Each chunk is its own write transaction, so other writers interleave and a crash loses
    at most one chunk of work (which is redone, idempotently).
    """
    env = store._e()
    step = BUILD_CHUNK if chunk is None else chunk
    filled = 0
    total = _total(store, env, table) if progress is not None else None
    while True:
        done, n, phase = env.write(lambda txn: _step(txn, env, table, name, step))
        if phase == "fill":
            filled += n
            if progress is not None:
                progress(filled, total)
        if done:
            break
    log.info("index %s.%s built: %d items read", table, name, filled)
    return filled


def _total(store: Store, env: Env, table: str) -> int | None:
    """The table's item count if cheap to know (the only table), else ``None``."""
    def run(txn: Txn) -> int | None:
        if txn.stat(env.tables)["entries"] != 1:
            return None
        return int(txn.stat(env.items)["entries"])
    return env.read(run)


def pending(store: Store) -> list[tuple[str, str]]:
    """``(table, index)`` of every definition whose fill or clear is unfinished."""
    env = store._e()

    def run(txn: Txn) -> list[tuple[str, str]]:
        out = []
        for k, v in txn.cursor(db=env.idxdefs):
            table = bytes(k).decode()
            out += [(table, d.index.name) for d in _parse(table, bytes(v)) if d.phase != "ready"]
        return out

    return env.read(run)


def build_pending(store: Store) -> None:
    """Finish every unfinished fill or clear (after a crash, or a definition merged)."""
    for table, name in pending(store):
        log.info("resuming build of index %s.%s", table, name)
        build(store, table, name)


# -- the local API (Store.create_index, drop_index, Table.indexes, queries) ----------------------


def check_for_table(tdef: TableDef, ix: object) -> Index:
    """``ix`` if it is an :class:`Index` that can index table ``tdef``, else ``ValidationError``."""
    if not isinstance(ix, Index):
        raise ValidationError(f"an index must be an engine.Index, not {ix!r}")
    if ix.partition_key == tdef.partition_key and ix.sort_key in (None, tdef.sort_key):
        raise ValidationError(
            f"index {ix.name!r} of table {tdef.name!r} has the table's own key schema "
            f"({tdef.partition_key!r}, {tdef.sort_key!r}): it would only duplicate the table"
        )
    return ix


def describe(ix: Index) -> str:
    """``name(pk, sk) projection`` for messages."""
    proj = ix.projection if isinstance(ix.projection, str) else list(ix.projection)
    return f"{ix.name}({ix.partition_key!r}, {ix.sort_key!r}) projection {proj!r}"


def wire_create(table: str, ix: Index) -> list[Any]:
    """The log op of a create (see :mod:`engine.codec`)."""
    proj = ix.projection if isinstance(ix.projection, str) else list(ix.projection)
    return ["I", table, ix.name, ix.partition_key, ix.sort_key, proj]


def create(store: Store, table: str, ix: Index,
           progress: Callable[[int, int | None], None] | None = None) -> Index:
    """See :meth:`engine.Store.create_index`."""
    tdef = store._table_def(table)
    check_for_table(tdef, ix)
    env = store._e()

    def run(txn: Txn) -> int | None:
        cur = next((d for d in load_defs(txn, env, table) if d.index.name == ix.name), None)
        if cur is not None and not cur.dropped:
            if _same_spec(cur.index, ix):
                return None  # idempotent; an interrupted fill is resumed below
            raise ValidationError(
                f"index name {ix.name!r} is already used in table {table!r} by "
                f"{describe(cur.index)}"
            )
        # a local write: the log entry carries the clock (engine.changelog.read_clock), and
        # the definition's version is above everything this node holds
        hlc, seq, pos = read_clock(txn, env)
        hlc = tick_local(hlc, store._wall(), store.max_offset_ms)
        merge_def(txn, env, table, ix, ix.name, (hlc, store.node_id))
        return append(txn, env, store.node_id, seq + 1,
                      codec.encode_txn(hlc, [wire_create(table, ix)]), [None], pos)

    pos = env.write(run)
    if pos is not None:
        store._notify(pos)
    build(store, table, ix.name, progress)
    return ix


def drop(store: Store, table: str, name: str) -> None:
    """See :meth:`engine.Store.drop_index`."""
    store._table_def(table)
    if not isinstance(name, str):
        raise ValidationError(f"index name must be a string, not {name!r}")
    env = store._e()

    def run(txn: Txn) -> int:
        cur = next((d for d in load_defs(txn, env, table) if d.index.name == name), None)
        if cur is None or cur.dropped:
            raise ValidationError(f"table {table!r} has no index {name!r}")
        hlc, seq, pos = read_clock(txn, env)
        hlc = tick_local(hlc, store._wall(), store.max_offset_ms)
        merge_def(txn, env, table, None, name, (hlc, store.node_id))
        return append(txn, env, store.node_id, seq + 1,
                      codec.encode_txn(hlc, [["X", table, name]]), [None], pos)

    store._notify(env.write(run))
    build(store, table, name)


def new_table_ops(txn: Txn, env: Env, table: str, indexes: Iterable[Index],
                  v: Version) -> list[list[Any]]:
    """Merge the definitions of a table's initial indexes; return their log ops."""
    ops = []
    for ix in indexes:
        merge_def(txn, env, table, ix, ix.name, v)
        ops.append(wire_create(table, ix))
    return ops


def check_new(tdef: TableDef, indexes: object) -> list[Index]:
    """Validate ``create_table(..., indexes=…)``: a list of distinct, fitting indexes."""
    if indexes is None:
        return []
    if isinstance(indexes, (str, bytes, Mapping, Index)) or not isinstance(indexes, Iterable):
        raise ValidationError(f"indexes must be a list of engine.Index, not {indexes!r}")
    out = [check_for_table(tdef, ix) for ix in indexes]
    names = [ix.name for ix in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValidationError(f"table {tdef.name!r}: index names {dup} are used twice")
    return out


def indexes(store: Store, table: str) -> list[Index]:
    """The live index definitions of ``table`` (ready or being built), by name."""
    env = store._e()
    return env.read(lambda txn: [d.index for d in load_defs(txn, env, table) if not d.dropped])


def queryable(store: Store, table: str, name: object) -> IndexDef:
    """The definition of index ``name`` for a query; ``ValidationError`` unless it is ready."""
    if not isinstance(name, str):
        raise ValidationError(f"index must be an index name (str), not {name!r}")
    env = store._e()
    d = env.read(lambda txn: next(
        (d for d in load_defs(txn, env, table) if d.index.name == name), None))
    if d is None or d.dropped:
        raise ValidationError(f"table {table!r} has no index {name!r}")
    if d.phase != "ready":
        raise ValidationError(
            f"cannot read from index {name!r} of table {table!r}: it is being backfilled "
            "(store.create_index with the same definition, or reopening the store, finishes it)"
        )
    return d


def read_rows(d: IndexDef, env: Env) -> Callable[..., list[tuple[bytes, Any]]]:
    """A row reader for :func:`engine.table._range` over index ``d``: ``(entry key, item)``.

    ``ALL`` entries are resolved to their item in the same read transaction (so the result is
    exactly the table's item); projected entries decode their own value.
    """
    all_ = d.index.projection == "ALL"

    def rows(txn: Txn, *, lo: bytes, lo_incl: bool, hi: bytes, hi_incl: bool, reverse: bool,
             most: int) -> list[tuple[bytes, Any]]:
        from .table import _range_rows

        raw = _range_rows(txn, db=env.idx, lo=lo, lo_incl=lo_incl, hi=hi, hi_incl=hi_incl,
                          reverse=reverse, most=most)
        out: list[tuple[bytes, Any]] = []
        for k, v in raw:
            if all_:
                state = txn.get(v, db=env.items)
                out.append((k, None if state is None else codec.visible_from_raw(bytes(state))))
            else:
                out.append((k, codec.loads(v)))
        return out

    return rows
