"""The on-disk layout of a store: database names, record formats and meta records, in one place.

A store is one LMDB environment with these named databases; every one of them is written only
inside the one write transaction of the change that touches it, so a crash leaves all of a
change or none of it.

=========  ==========================================  =========================================
database   key                                          value
=========  ==========================================  =========================================
meta       ``format``                                   ``3`` (:data:`FORMAT`)
meta       ``ident``                                    CBOR ``[node id, region, st_dev, st_ino]``
meta       ``clock``                                    :data:`CLOCK`: ``(last hlc, local seq,
                                                        last position)``; may lag (see below)
meta       ``conflicts``                                :data:`CONFLICTS`: ``(first id kept, next
                                                        id, total ever recorded)``
meta       ``forgotten``                                CBOR list of forgotten node ids
meta       ``reissue``                                  CBOR ``[[old id, [[seq, txn], …]], …]``:
                                                        writes an earlier build set aside at a
                                                        re-identification (:mod:`engine.lineage`)
meta       ``lineage``                                  CBOR ``[[old id, new id, ms, reason], …]``
meta       ``voids``                                    CBOR ``[[old id, [[hlc, seq, new id], …],
                                                        [[key, attr, prev hlc, total], …]], …]``:
                                                        forked entries relabeled
                                                        (:mod:`engine.voids`)
meta       ``dropped:<table>``                          CBOR ``[hlc, node]``: the table's latest
                                                        deletion (:mod:`engine.schema`)
meta       ``x:<name>``                                 CBOR value of :meth:`Store.set_meta`
meta       ``p:`` + item key                            empty: the item holds tombstones that came
                                                        through a snapshot (purged by version,
                                                        :mod:`engine.retention`)
meta       ``ttl-pending:<table>``                      CBOR ``[ttl attribute, hlc, node]`` of a
                                                        TTL whose table has not arrived yet
items      ``enc(table) enc(pk) [enc(sk)]``             item state (:mod:`engine.codec`)
log        position (:data:`U64`, local apply order)    :data:`LOGHDR` ``(origin, seq, len)``,
                                                        the transaction's ``len`` bytes (exactly
                                                        what travels to peers), CBOR ``images``
index      origin + seq (:data:`U64x2`)                 position (:data:`U64`)
vv         origin (:data:`U64`)                         highest seq applied (remote origins)
floors     origin (:data:`U64`)                         :data:`FLOOR` ``(seq, hlc)``: seqs at or
                                                        below are not in the log; ``hlc`` is that
                                                        seq's change's (8-byte records of older
                                                        stores hold the seq alone)
tables     table name (UTF-8)                           CBOR ``[pk, sk, hlc, node]``, then
                                                        ``ttl, ttl_hlc, ttl_node`` once a TTL was
                                                        set (:class:`engine.changes.TableDef`)
conflicts  id (:data:`U64`)                             CBOR conflict record (:mod:`engine.apply`)
idxdefs    table name (UTF-8)                           CBOR list of index definitions
                                                        (:mod:`engine.index`)
idx        ``enc(table) enc(index) enc(ipk) [enc(isk)]``  the item key (``ALL``) or the projected
           ``+ the item key without enc(table)``        attributes (CBOR); :mod:`engine.index`
=========  ==========================================  =========================================

Item keys come from :mod:`engine.keys`; item states and transactions from :mod:`engine.codec`.

``images`` holds, per operation of the logged transaction, the visible item right after it
(``true`` when it equals a put's item, so plain puts do not store the item twice; ``null`` for
a table). Positions count 1, 2, 3 … and are never reused, even after compaction removed the
entries. This node's own entries are its ``seq`` 1, 2, 3 …; a remote origin's are the seqs it
assigned, contiguous from above its ``floors`` entry up to its ``vv`` entry.

The ``clock`` record is not rewritten by local writes (that would dirty a fourth page in every
single-write commit): :func:`engine.changelog.read_clock` derives the clock from the record and
the log entries above its position, which are all local writes.

Formats: format 1 rewrote the ``clock`` record on every write; format 2 does not. A format-1
store reads the same way and is marked 2 on open, so that an older build, which trusts the
record alone, refuses it instead of reissuing sequence numbers. Format 3: item states may hold
counter and set parts (a 7-element state, :mod:`engine.mergewire`), log entries the ops that
carry them (and ``L``, a table's TTL), table definitions a TTL register. Every format-1/2
record reads unchanged, so an older store is upgraded on open by marking it 3; from then on an
older build refuses it instead of misreading a counter.
"""

from __future__ import annotations

import struct

__all__ = [
    "CLOCK",
    "CONFLICTS",
    "FLOOR",
    "DB_NAMES",
    "FORMAT",
    "LOGHDR",
    "META_CLOCK",
    "META_CONFLICTS",
    "META_DROPPED_PREFIX",
    "META_FORGOTTEN",
    "META_FORMAT",
    "META_IDENT",
    "META_LINEAGE",
    "META_PENDING_PREFIX",
    "META_REISSUE",
    "META_VOIDS",
    "META_USER_PREFIX",
    "READABLE_FORMATS",
    "U64",
    "U64x2",
]

#: The named databases of the environment (``max_dbs`` is sized from this).
DB_NAMES = ("meta", "items", "log", "index", "vv", "floors", "tables", "conflicts",
            "idxdefs", "idx")

FORMAT = b"3"
READABLE_FORMATS = (b"1", b"2", FORMAT)

U64 = struct.Struct(">Q")          # positions, origins, seqs, conflict ids
U64x2 = struct.Struct(">QQ")       # index key: origin, seq
CLOCK = struct.Struct(">QQQ")      # meta "clock": last hlc, local seq, last position
LOGHDR = struct.Struct(">QQI")     # log value head: origin, seq, len(txn)
CONFLICTS = struct.Struct(">QQQ")  # meta "conflicts": first id kept, next id, total recorded
FLOOR = struct.Struct(">QQ")       # floors value: seq, hlc of that seq's change (0: unknown)

META_FORMAT = b"format"
META_IDENT = b"ident"
META_CLOCK = b"clock"
META_CONFLICTS = b"conflicts"
META_FORGOTTEN = b"forgotten"
META_REISSUE = b"reissue"
META_DROPPED_PREFIX = b"dropped:"
META_LINEAGE = b"lineage"
META_VOIDS = b"voids"
META_USER_PREFIX = b"x:"  # Store.set_meta / get_meta: replication's bookkeeping
META_PENDING_PREFIX = b"p:"  # + item key: snapshot tombstones awaiting purge (retention)
