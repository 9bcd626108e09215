"""Secondary index definitions and entry keys: the ``Index`` value, the stored definition
records (``idxdefs``), their last-writer-wins merge, and the entry each item makes.

Pure of any store state beyond the transaction handed in; :mod:`engine.index` (maintenance,
backfill, the local API) builds on it. The layout and the phases are described there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from . import codec
from .clock import Version
from .env import Env, Txn
from .errors import ValidationError
from .keys import encode_value

__all__ = [
    "Index",
    "IndexDef",
    "Projection",
    "active_defs",
    "entry_of",
    "load_defs",
    "make_def",
    "merge_def",
    "parse_defs",
    "project",
    "replace_def",
    "same_spec",
    "table_prefix",
    "tombstone_index",
]

log = logging.getLogger("engine.index")

_MAX_KEY = codec.MAX_KEY_BYTES
_KEY_TYPES = (str, int, float, Decimal, bytes)

Projection = str | Sequence[str]  # "ALL", "KEYS_ONLY" or attribute names (kept as a tuple)


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


def make_def(table: str, ix: Index, version: Version, dropped: bool, tpk: str, tsk: str | None,
             phase: str, resume: bytes | None) -> IndexDef:
    """An :class:`IndexDef` with its key prefix computed."""
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


def parse_defs(table: str, raw: bytes) -> tuple[IndexDef, ...]:
    """The definitions of one ``idxdefs`` record (cached by its bytes)."""
    got = _PARSED.get((table, raw))
    if got is not None:
        return got
    out = []
    for r in codec.loads(raw):
        name, pk, sk, proj, hlc, node, dropped, tpk, tsk, phase, resume = r
        # no pk: a drop tombstone of an index this store never saw created
        ix = Index(name, pk, sk, proj if isinstance(proj, str) else tuple(proj)) if pk \
            else tombstone_index(name)
        out.append(make_def(table, ix, (hlc, node), dropped, tpk, tsk, phase, resume))
    parsed = tuple(out)
    if len(_PARSED) >= 1024:
        _PARSED.clear()
    _PARSED[(table, raw)] = parsed
    return parsed


def load_defs(txn: Txn, env: Env, table: str) -> tuple[IndexDef, ...]:
    """Every index definition of ``table`` (dropped ones included), as of this transaction."""
    raw = txn.get(table.encode(), db=env.idxdefs)
    return () if raw is None else parse_defs(table, bytes(raw))


_ACTIVE: dict[tuple[str, bytes], tuple[IndexDef, ...]] = {}


def active_defs(txn: Txn, env: Env, table: str) -> tuple[IndexDef, ...]:
    """The definitions of ``table`` that writes must maintain; ``()`` when it has none.

    This is the write path's one extra get per table: cheap when the table has no index.
    """
    raw = txn.get(table.encode(), db=env.idxdefs)
    if raw is None:
        return ()
    ck = (table, bytes(raw))
    got = _ACTIVE.get(ck)
    if got is None:
        got = tuple(d for d in parse_defs(table, ck[1]) if d.maintained)
        if len(_ACTIVE) >= 1024:
            _ACTIVE.clear()
        _ACTIVE[ck] = got
    return got


def _save_defs(txn: Txn, env: Env, table: str, defs: Iterable[IndexDef]) -> None:
    records = [d.record() for d in defs]
    if records:
        txn.put(table.encode(), codec.dumps(records), db=env.idxdefs)
    else:
        txn.delete(table.encode(), db=env.idxdefs)


def replace_def(txn: Txn, env: Env, table: str, new: IndexDef) -> None:
    """Store ``new`` in place of the definition of the same name (kept sorted by name)."""
    defs = [d for d in load_defs(txn, env, table) if d.index.name != new.index.name]
    defs.append(new)
    defs.sort(key=lambda d: d.index.name)
    _save_defs(txn, env, table, defs)


def same_spec(a: Index, b: Index) -> bool:
    """Whether two definitions index the same way (their names aside)."""
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
                                      else tombstone_index(name))
    if cur is None:
        phase = "ready" if is_drop else "fill"
    elif cur.dropped == is_drop and same_spec(cur.index, spec):
        phase = cur.phase  # the same definition again, at a later version
    elif is_drop:
        phase = "clear"
    else:
        phase = "fill" if cur.dropped and cur.phase == "ready" else "clear"
    resume = cur.resume if cur is not None and phase == cur.phase else None
    new = make_def(table, spec, v, is_drop, tpk, tsk, phase, resume)
    replace_def(txn, env, table, new)
    if cur is not None and not cur.dropped and not is_drop and not same_spec(cur.index, spec):
        log.warning("index %s.%s redefined by %016x: rebuilding", table, name, v[1])
    return new.phase != "ready"


def tombstone_index(name: str) -> Index:
    """The stand-in definition of a drop whose create this store never saw (no keys)."""
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
