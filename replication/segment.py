"""The segment format: bytes in, records out (pure; no sockets, no directory choices).

A segment is the unit of exchange between nodes, the same bytes in a file and on the wire.
``docs/segment-format.md`` is the byte-level specification; this module is its reference
implementation. Layout (all integers big-endian)::

    magic(8) | version u16 | header_len u32 | header CBOR | payload_len u32 | payload
             | blake2b-256 of all the preceding bytes (32)

Invariants owned here:

- :func:`decode_segment` verifies the *whole* segment before returning anything: size limits,
  magic, version, checksum, bounded CBOR (:mod:`engine.bounded`), bounded decompression, record
  shapes and header consistency. Every failure is a :class:`~engine.errors.SegmentError`
  carrying ``path`` and the reason; no other exception escapes.
- :func:`encode_segment` runs the same checks on what it is given, so this build never writes a
  segment it would itself refuse (bad arguments raise :class:`~engine.errors.ValidationError`).
- Encoding is deterministic (canonical CBOR, fixed zlib level): equal input gives equal bytes.
- A "changes" segment covers, per origin, exactly the contiguous seq range its header names.

Record ``txn`` and item ``state`` blobs are opaque here; the engine validates them itself.
"""

from __future__ import annotations

import hashlib
import re
import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO, Literal, TypeAlias, cast

import cbor2

from engine.bounded import loads_bounded
from engine.checks import check_node_id as _node
from engine.checks import check_u64 as _u64
from engine.codec import check_index_spec, check_table_name
from engine.errors import SegmentError, ValidationError
from engine.voids import check_wire as check_voids

__all__ = [
    "DEFAULT_LIMITS",
    "FORMAT_VERSION",
    "READABLE_VERSIONS",
    "SEGMENT_MAGIC",
    "ChangeRecord",
    "IndexRecord",
    "ItemRecord",
    "Record",
    "Segment",
    "SegmentHeader",
    "SegmentLimits",
    "SegmentName",
    "TableRecord",
    "decode_segment",
    "encode_segment",
    "parse_segment_filename",
    "peek_record_count",
    "segment_filename",
]

SEGMENT_MAGIC = b"\x89RGDBSEG"
#: Version 2 (store format 3): record blobs may hold counter and set parts, and a snapshot's
#: table records may carry a TTL attribute. Version 1 segments are still read.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
CHECKSUM_SIZE = 32
#: zlib level for compressed payloads: fixed so encoding stays deterministic.
ZLIB_LEVEL = 6
#: ``compress=None`` keeps the zlib payload only when it is at most this share of the plain one.
AUTO_COMPRESS_RATIO = 0.9

_PREFIX = struct.Struct(">8sHI")  # magic, version, header_len
_U32 = struct.Struct(">I")
_HEADER_MAX_DEPTH = 8  # voids: map -> list -> void -> bases -> base -> Decimal (3 levels)
_HEADER_KEYS = frozenset(
    {"kind", "sender", "region", "ranges", "vv", "acks", "forgotten", "record_count",
     "created_hlc", "compression"}
)  # fmt: skip
#: Header keys that may be absent (written only when not empty, so older segments still read).
_OPTIONAL_KEYS = frozenset({"bases", "covers", "cuts", "voids"})

Kind: TypeAlias = Literal["changes", "snapshot"]
Compression: TypeAlias = Literal["none", "zlib"]
ChangeRecord: TypeAlias = tuple[int, int, bytes]
TableRecord: TypeAlias = (
    "tuple[Literal['T'], str, str, str | None, int, int]"
    "| tuple[Literal['T'], str, str, str | None, int, int, str | None, int, int]"
)  # the last three (version 2): TTL attribute and the version that set it
ItemRecord: TypeAlias = tuple[Literal["I"], bytes, bytes]
#: an index definition: table, name, pk, sk, projection (``None`` x3 for a drop), hlc, node
IndexRecord: TypeAlias = tuple[Literal["X"], str, str, "str | None", "str | None", Any, int,
                               int, bool]
Record: TypeAlias = "ChangeRecord | TableRecord | ItemRecord | IndexRecord"


@dataclass(frozen=True, slots=True)
class SegmentLimits:
    """Upper bounds a reader enforces before allocating; a writer stays inside the same ones."""

    max_segment_bytes: int = 64 * 1024 * 1024  # the file, and the decompressed payload
    max_record_bytes: int = 16 * 1024 * 1024  # one txn/state blob; also the header
    max_depth: int = 32
    max_records: int = 1_000_000


DEFAULT_LIMITS = SegmentLimits()


@dataclass(frozen=True, slots=True)
class SegmentHeader:
    """What a segment says about itself; every field is checked against the records.

    ``ranges`` maps origin -> inclusive ``(first, last)`` seqs covered (``changes`` only);
    ``vv`` is the sender's version vector, ``acks`` the vvs it knows other nodes acknowledged.
    ``covers`` maps origin -> the HLC of the change at ``vv``'s position (the sender's
    *tips*): a snapshot part reflects every change of that origin with an HLC up to it, and a
    node whose own origin's tip differs from ours tells us our log forked
    (:mod:`replication.lineage`).
    ``cuts`` maps forgotten nodes to the last seq of theirs the sender still accepts.
    ``bases`` (changes) maps an origin of ``ranges`` to the HLC of the sender's entry just
    before the range: a receiver whose entry there differs holds another history of that
    origin (a fork), and must not continue it with these (:mod:`replication.lineage`).
    ``voids`` (snapshot parts) are the forked entries their writers relabeled, as the
    sender knows them (:mod:`engine.voids`): the receiver renames its items as the
    sender did before it merges the sender's.
    """

    kind: Kind
    sender: int
    region: str
    ranges: dict[int, tuple[int, int]] = field(default_factory=dict)
    vv: dict[int, int] = field(default_factory=dict)
    acks: dict[int, dict[int, int]] = field(default_factory=dict)
    forgotten: frozenset[int] = frozenset()
    record_count: int = 0
    created_hlc: int = 0
    compression: Compression = "none"
    covers: dict[int, int] = field(default_factory=dict)
    cuts: dict[int, int] = field(default_factory=dict)
    bases: dict[int, int] = field(default_factory=dict)
    voids: list[Any] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Segment:
    """A verified segment: its header, its records, and the blake2b-256 digest of its bytes.

    The digest identifies the segment's content (two byte-identical segments share it).
    """

    header: SegmentHeader
    records: tuple[Record, ...]
    digest: bytes = b""
    version: int = FORMAT_VERSION

    def change_records(self) -> tuple[ChangeRecord, ...]:
        """The records of a ``changes`` segment, as the ``(origin, seq, txn)`` triples that
        decoding checked them to be.

        :raises ValueError: for a snapshot segment.
        """
        if self.header.kind != "changes":
            raise ValueError(f"a {self.header.kind} segment holds no change records")
        return cast("tuple[ChangeRecord, ...]", self.records)


@dataclass(frozen=True, slots=True)
class SegmentName:
    """The fields a segment file name encodes (see :func:`segment_filename`)."""

    created_hlc: int
    sender: int
    kind: Kind


# ---------------------------------------------------------------------------- shape checks


def _str(value: object, what: str) -> str:
    if type(value) is not str:
        raise ValidationError(f"{what} must be a str, got {type(value).__name__}")
    return value


def _blob(value: object, what: str, limits: SegmentLimits) -> bytes:
    if type(value) is not bytes:
        raise ValidationError(f"{what} must be bytes, got {type(value).__name__}")
    if len(value) > limits.max_record_bytes:
        raise ValidationError(
            f"{what} is {len(value)} bytes, over the record limit of {limits.max_record_bytes}"
        )
    return value


def _uint_map(value: object, what: str) -> dict[int, int]:
    if not isinstance(value, Mapping):
        raise ValidationError(f"{what} must be a map, got {type(value).__name__}")
    return {_node(k, f"{what} key"): _u64(v, f"{what}[{k}]") for k, v in value.items()}


def _check_header(header: SegmentHeader, limits: SegmentLimits) -> SegmentHeader:
    """Check field types and self-consistency; return a copy holding plain dicts/tuples."""
    if header.kind not in ("changes", "snapshot"):
        raise ValidationError(f"kind must be 'changes' or 'snapshot', got {header.kind!r:.40}")
    if header.compression not in ("none", "zlib"):
        raise ValidationError(f"unknown compression {header.compression!r:.40}")
    _node(header.sender, "sender")
    _str(header.region, "region")
    _u64(header.created_hlc, "created_hlc")
    count = _u64(header.record_count, "record_count")
    if count > limits.max_records:
        raise ValidationError(f"record_count {count} is over the limit of {limits.max_records}")
    vv = _uint_map(header.vv, "vv")
    covers = _uint_map(header.covers, "covers")
    bases = _uint_map(header.bases, "bases")
    voids = check_voids(header.voids)
    if voids and header.kind != "snapshot":
        raise ValidationError("only a snapshot segment carries voids")
    cuts = _uint_map(header.cuts, "cuts")
    if not isinstance(header.acks, Mapping):
        raise ValidationError("acks must be a map of node -> version vector")
    acks = {_node(k, "acks key"): _uint_map(v, f"acks[{k}]") for k, v in header.acks.items()}
    if not isinstance(header.forgotten, (frozenset, set)):
        raise ValidationError("forgotten must be a set of node ids")
    forgotten = frozenset(_node(n, "forgotten node id") for n in header.forgotten)
    if not set(cuts) <= forgotten:
        raise ValidationError("cuts name nodes that are not forgotten")
    if not isinstance(header.ranges, Mapping):
        raise ValidationError("ranges must be a map of origin -> (first, last)")
    ranges: dict[int, tuple[int, int]] = {}
    for origin, rng in header.ranges.items():
        _node(origin, "ranges key")
        if not isinstance(rng, (tuple, list)) or len(rng) != 2:
            raise ValidationError(f"ranges[{origin}] must be a (first, last) pair")
        first = _u64(rng[0], f"ranges[{origin}] first")
        last = _u64(rng[1], f"ranges[{origin}] last")
        if not 1 <= first <= last:
            raise ValidationError(f"ranges[{origin}] = ({first}, {last}) is not 1 <= first <= last")
        if last > vv.get(origin, 0):
            raise ValidationError(
                f"ranges[{origin}] ends at {last}, beyond the sender's vv ({vv.get(origin, 0)})"
            )
        ranges[origin] = (first, last)
    if not set(bases) <= {o for o, (first, _) in ranges.items() if first > 1}:
        raise ValidationError("bases name origins without a range that starts after seq 1")
    if header.kind == "snapshot" and ranges:
        raise ValidationError("a snapshot segment has no seq ranges")
    if header.kind == "changes":
        covered = sum(last - first + 1 for first, last in ranges.values())
        if covered != count:
            raise ValidationError(f"ranges cover {covered} changes but record_count is {count}")
    return replace(header, ranges=ranges, vv=vv, acks=acks, forgotten=forgotten, covers=covers,
                   cuts=cuts, bases=bases, voids=voids)


def _check_records(
    header: SegmentHeader, records: Iterable[object], limits: SegmentLimits,
    version: int = FORMAT_VERSION,
) -> tuple[Record, ...]:
    """Check every record's shape and that the records are exactly what the header claims."""
    out: list[Record] = []
    if header.kind == "changes":
        expected = {origin: first for origin, (first, _) in header.ranges.items()}
        for i, rec in enumerate(records):
            if not isinstance(rec, (tuple, list)) or len(rec) != 3:
                raise ValidationError(f"record {i}: a change record is (origin, seq, txn)")
            origin = _node(rec[0], f"record {i} origin")
            seq = _u64(rec[1], f"record {i} seq")
            txn = _blob(rec[2], f"record {i} txn", limits)
            want = expected.get(origin)
            if want is None:
                raise ValidationError(f"record {i}: origin {origin} is not in the header's ranges")
            if seq != want:
                raise ValidationError(
                    f"record {i}: origin {origin} seq {seq} where {want} was due "
                    f"(range {header.ranges[origin]}; gap, duplicate or disorder)"
                )
            if seq > header.ranges[origin][1]:
                raise ValidationError(
                    f"record {i}: origin {origin} seq {seq} is past the header's range "
                    f"{header.ranges[origin]}"
                )
            expected[origin] = seq + 1
            out.append((origin, seq, txn))
        for origin, (first, last) in header.ranges.items():
            if expected[origin] != last + 1:
                raise ValidationError(
                    f"origin {origin}: records stop at seq {expected[origin] - 1}, "
                    f"the header's range is ({first}, {last})"
                )
    else:
        tables: set[str] = set()
        keys: set[bytes] = set()
        for i, rec in enumerate(records):
            if not isinstance(rec, (tuple, list)) or not rec or rec[0] not in ("T", "I", "X"):
                raise ValidationError(
                    f"record {i}: a snapshot record starts with 'T', 'I' or 'X'")
            if rec[0] == "X":
                out.append(_index_record(rec, i))
            elif rec[0] == "T":
                if len(rec) != 6 and (version < 2 or len(rec) != 9):
                    raise ValidationError(
                        f"record {i}: a table record is ('T', name, partition_key, sort_key, "
                        "hlc, node" + (")" if version < 2 else "[, ttl, ttl_hlc, ttl_node])")
                    )
                name = _str(rec[1], f"record {i} table name")
                pk = _str(rec[2], f"record {i} partition key")
                sk = None if rec[3] is None else _str(rec[3], f"record {i} sort key")
                hlc = _u64(rec[4], f"record {i} hlc")
                node = _u64(rec[5], f"record {i} node")
                if name in tables:
                    raise ValidationError(f"record {i}: table {name!r:.80} defined twice")
                tables.add(name)
                if len(rec) == 9:
                    ttl = None if rec[6] is None else _str(rec[6], f"record {i} ttl attribute")
                    out.append(("T", name, pk, sk, hlc, node, ttl,
                                _u64(rec[7], f"record {i} ttl hlc"),
                                _u64(rec[8], f"record {i} ttl node")))
                else:
                    out.append(("T", name, pk, sk, hlc, node))
            else:
                if len(rec) != 3:
                    raise ValidationError(f"record {i}: an item record is ('I', key, state)")
                key = _blob(rec[1], f"record {i} key", limits)
                state = _blob(rec[2], f"record {i} state", limits)
                if key in keys:
                    raise ValidationError(f"record {i}: item key {key!r:.80} appears twice")
                keys.add(key)
                out.append(("I", key, state))
    if len(out) != header.record_count:
        raise ValidationError(
            f"header says {header.record_count} records, the payload holds {len(out)}"
        )
    return tuple(out)


def _index_record(rec: Any, i: int) -> IndexRecord:
    """Check a snapshot's index definition record (the fields' rules: ``engine.codec``)."""
    if len(rec) != 9:
        raise ValidationError(f"record {i}: an index record is ('X', table, name, "
                              "partition_key, sort_key, projection, hlc, node, dropped)")
    _, table, name, pk, sk, proj, hlc, node, dropped = rec
    if not isinstance(dropped, bool):
        raise ValidationError(f"record {i}: index 'dropped' is not a bool")
    table = check_table_name(table)
    if dropped:
        if pk is not None or sk is not None or proj is not None:
            raise ValidationError(f"record {i}: a dropped index carries no definition")
        check_index_spec(table, name, "_", None, "ALL")
    else:
        proj = check_index_spec(table, name, pk, sk, proj)
        proj = proj if isinstance(proj, str) else list(proj)
    return ("X", table, name, pk, sk, proj, _u64(hlc, f"record {i} hlc"),
            _u64(node, f"record {i} node"), dropped)


def _ranges_of(records: tuple[object, ...]) -> dict[int, tuple[int, int]]:
    """Derive a changes header's ranges, refusing records that are not contiguous per origin."""
    ranges: dict[int, tuple[int, int]] = {}
    for i, rec in enumerate(records):
        if not isinstance(rec, (tuple, list)) or len(rec) != 3:
            raise ValidationError(f"record {i}: a change record is (origin, seq, txn)")
        origin = _node(rec[0], f"record {i} origin")
        seq = _u64(rec[1], f"record {i} seq")
        if origin in ranges:
            first, last = ranges[origin]
            if seq != last + 1:
                raise ValidationError(
                    f"record {i}: origin {origin} seq {seq} where {last + 1} was due "
                    "(gap, duplicate or disorder)"
                )
            ranges[origin] = (first, seq)
        else:
            ranges[origin] = (seq, seq)
    return ranges


# ---------------------------------------------------------------------------- framing


def _checksum(data: bytes | memoryview) -> bytes:
    return hashlib.blake2b(data, digest_size=CHECKSUM_SIZE).digest()


def _frame(header_cbor: bytes, payload: bytes, *, version: int = FORMAT_VERSION) -> bytes:
    """Assemble magic, version, both length-prefixed parts and the trailing checksum."""
    body = b"".join(
        (_PREFIX.pack(SEGMENT_MAGIC, version, len(header_cbor)), header_cbor,
         _U32.pack(len(payload)), payload)
    )  # fmt: skip
    return body + _checksum(body)


def _canonical_key(key: str) -> tuple[int, bytes]:
    encoded = cbor2.dumps(key)
    return len(encoded), encoded


#: The header's keys in canonical CBOR order (RFC 7049 §3.9: shorter encodings first, then
#: bytewise). Maps built in this order encode with ``canonical=False`` to exactly the bytes
#: ``canonical=True`` gives, without its sorting cost (a fifth of a small segment's encoding).
_HEADER_ORDER = tuple(sorted(_HEADER_KEYS | _OPTIONAL_KEYS, key=_canonical_key))


def _sorted_map(m: Mapping[int, object]) -> dict[int, object]:
    # Unsigned integer keys: canonical order is numeric order.
    return {k: m[k] for k in sorted(m)}


def _header_to_cbor(header: SegmentHeader) -> bytes:
    fields: dict[str, object] = {
        "kind": header.kind,
        "sender": header.sender,
        "region": header.region,
        "ranges": {o: [first, last] for o, (first, last) in sorted(header.ranges.items())},
        "vv": _sorted_map(header.vv),
        "acks": {n: _sorted_map(header.acks[n]) for n in sorted(header.acks)},
        "forgotten": sorted(header.forgotten),
        "record_count": header.record_count,
        "created_hlc": header.created_hlc,
        "compression": header.compression,
    }
    if header.covers:
        fields["covers"] = _sorted_map(header.covers)
    if header.cuts:
        fields["cuts"] = _sorted_map(header.cuts)
    if header.bases:
        fields["bases"] = _sorted_map(header.bases)
    if header.voids:
        fields["voids"] = header.voids
    return cbor2.dumps({k: fields[k] for k in _HEADER_ORDER if k in fields})


def _header_from_obj(obj: object) -> SegmentHeader:
    if not isinstance(obj, dict):
        raise ValidationError("header must be a CBOR map")
    keys = set(obj)
    if not _HEADER_KEYS <= keys <= _HEADER_KEYS | _OPTIONAL_KEYS:
        missing = sorted(str(k) for k in _HEADER_KEYS - keys)
        extra = sorted(str(k) for k in keys - _HEADER_KEYS - _OPTIONAL_KEYS)
        raise ValidationError(f"header fields wrong (missing {missing}, unknown {extra})")
    ranges = obj["ranges"]
    if not isinstance(ranges, dict):
        raise ValidationError("header ranges must be a map")
    forgotten = obj["forgotten"]
    if not isinstance(forgotten, list):
        raise ValidationError("header forgotten must be an array")
    for i, node in enumerate(forgotten):
        _u64(node, "forgotten node id")
        if i and node <= forgotten[i - 1]:
            raise ValidationError("header forgotten must be strictly ascending")
    return SegmentHeader(
        kind=obj["kind"], sender=obj["sender"], region=obj["region"],
        ranges={k: tuple(v) if isinstance(v, list) else v for k, v in ranges.items()},
        vv=obj["vv"], acks=obj["acks"], forgotten=frozenset(forgotten),
        record_count=obj["record_count"], created_hlc=obj["created_hlc"],
        compression=obj["compression"], covers=obj.get("covers", {}),
        cuts=obj.get("cuts", {}), bases=obj.get("bases", {}), voids=obj.get("voids", []),
    )  # fmt: skip


def _inflate(payload: bytes, limit: int) -> bytes:
    """Decompress a zlib payload, never producing more than ``limit`` bytes (zip bombs)."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(payload, limit + 1)
    except zlib.error as exc:
        raise SegmentError(f"payload does not decompress: {exc}") from exc
    if len(out) > limit:
        raise SegmentError(f"payload decompresses to more than the limit of {limit} bytes")
    if not inflater.eof:
        raise SegmentError("compressed payload is truncated")
    if inflater.unused_data:
        raise SegmentError(f"{len(inflater.unused_data)} bytes after the compressed payload")
    return out


# ---------------------------------------------------------------------------- public API


def encode_segment(
    *,
    kind: Kind,
    sender: int,
    region: str,
    records: Iterable[Record],
    vv: Mapping[int, int],
    acks: Mapping[int, Mapping[int, int]] | None = None,
    forgotten: Iterable[int] = (),
    created_hlc: int,
    compress: bool | None = None,
    limits: SegmentLimits = DEFAULT_LIMITS,
    covers: Mapping[int, int] | None = None,
    cuts: Mapping[int, int] | None = None,
    bases: Mapping[int, int] | None = None,
    voids: list[Any] | None = None,
) -> tuple[SegmentHeader, bytes]:
    """Build a segment from records and the sender's state; return its header and bytes.

    ``ranges`` and ``record_count`` are derived from ``records``, so the header cannot lie.
    Change records of one origin must come as a contiguous ascending seq run (origins may
    interleave). ``created_hlc`` must be unique per sender: file names rely on it.
    ``compress=None`` uses zlib when it saves at least 10 %.

    :raises ValidationError: for bad or inconsistent arguments, or a segment over ``limits``.
    """
    recs = tuple(records)
    draft = SegmentHeader(
        kind=kind, sender=sender, region=region,
        ranges=_ranges_of(recs) if kind == "changes" else {},
        vv=dict(vv), acks={k: dict(v) for k, v in (acks or {}).items()},
        forgotten=frozenset(forgotten), record_count=len(recs), created_hlc=created_hlc,
        covers=dict(covers or {}), cuts=dict(cuts or {}), bases=dict(bases or {}),
        voids=list(voids or []),
    )  # fmt: skip
    header = _check_header(draft, limits)
    # _ranges_of already checked that change records are contiguous (u64) triples; only the
    # blobs are left to check.
    checked = (tuple((o, s, _blob(t, f"record {i} txn", limits))
                     for i, (o, s, t) in enumerate(cast("tuple[ChangeRecord, ...]", recs)))
               if kind == "changes" else _check_records(header, recs, limits))
    # Records hold no maps (checked shapes): plain encoding is the canonical one.
    plain = cbor2.dumps([list(r) for r in checked])
    if len(plain) > limits.max_segment_bytes:
        raise ValidationError(
            f"payload of {len(plain)} bytes is over the segment limit of "
            f"{limits.max_segment_bytes}; put fewer records in each segment"
        )
    payload = plain
    if compress is not False:
        packed = zlib.compress(plain, ZLIB_LEVEL)
        if compress or len(packed) <= len(plain) * AUTO_COMPRESS_RATIO:
            payload = packed
            header = replace(header, compression="zlib")
    header_cbor = _header_to_cbor(header)
    if len(header_cbor) > limits.max_record_bytes:
        raise ValidationError(f"header of {len(header_cbor)} bytes is over the record limit")
    data = _frame(header_cbor, payload)
    if len(data) > limits.max_segment_bytes:
        raise ValidationError(
            f"segment of {len(data)} bytes is over the limit of {limits.max_segment_bytes}; "
            "put fewer records in each segment"
        )
    return header, data


def decode_segment(
    data: bytes, *, path: object | None = None, limits: SegmentLimits = DEFAULT_LIMITS
) -> Segment:
    """Verify a whole segment and return its header and records.

    Checks, in order: size, magic, version, checksum, lengths, bounded CBOR header, bounded
    decompression and CBOR payload, record shapes, header consistency. Nothing is returned
    unless all pass, so a caller can apply the result in one transaction.

    :param path: where the bytes came from, carried into the error for the message.
    :raises SegmentError: for every problem, with ``path`` and the reason.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise SegmentError(f"segment must be bytes, not {type(data).__name__}", path=path)
    data = bytes(data)
    try:
        return _decode(data, limits)
    except SegmentError as exc:
        raise SegmentError(exc.reason, path=path) from exc
    except ValidationError as exc:
        raise SegmentError(str(exc), path=path) from exc


def _decode(data: bytes, limits: SegmentLimits) -> Segment:
    size = len(data)
    if size > limits.max_segment_bytes:
        raise SegmentError(f"segment is {size} bytes, over the limit of {limits.max_segment_bytes}")
    if size < len(SEGMENT_MAGIC) or data[: len(SEGMENT_MAGIC)] != SEGMENT_MAGIC:
        if SEGMENT_MAGIC.startswith(data):
            raise SegmentError(f"truncated: {size} bytes, shorter than the magic")
        raise SegmentError("not a regiondb segment (bad magic)")
    if size < _PREFIX.size:
        raise SegmentError(f"truncated: {size} bytes, shorter than the fixed prefix")
    _, version, header_len = _PREFIX.unpack_from(data)
    if version not in READABLE_VERSIONS:
        readable = " and ".join(map(str, READABLE_VERSIONS))
        if version > FORMAT_VERSION:
            raise SegmentError(
                f"format version {version} is newer than this build understands (it reads "
                f"{readable}): upgrade regiondb on this node"
            )
        raise SegmentError(f"format version {version} not supported (this build reads {readable})")
    minimum = _PREFIX.size + _U32.size + CHECKSUM_SIZE
    if size < minimum:
        raise SegmentError(f"truncated: {size} bytes, a segment has at least {minimum}")
    body = memoryview(data)[:-CHECKSUM_SIZE]
    digest = _checksum(body)
    if digest != data[-CHECKSUM_SIZE:]:
        raise SegmentError("checksum mismatch (corrupt or truncated)")
    if header_len > size - minimum:
        raise SegmentError(f"header length {header_len} exceeds the segment")
    header_end = _PREFIX.size + header_len
    (payload_len,) = _U32.unpack_from(data, header_end)
    payload_start = header_end + _U32.size
    if payload_start + payload_len + CHECKSUM_SIZE != size:
        raise SegmentError(
            f"payload length {payload_len} disagrees with the segment size {size}"
        )
    if header_len > limits.max_record_bytes:
        raise SegmentError(f"header of {header_len} bytes is over the record limit")
    try:
        header_obj = loads_bounded(
            data[_PREFIX.size : header_end], max_depth=_HEADER_MAX_DEPTH, max_bytes=header_len
        )
        header = _check_header(_header_from_obj(header_obj), limits)
    except ValidationError as exc:
        raise SegmentError(f"bad header: {exc}") from exc
    payload = data[payload_start : payload_start + payload_len]
    if header.compression == "zlib":
        payload = _inflate(payload, limits.max_segment_bytes)
    try:
        records = loads_bounded(
            payload,
            max_depth=limits.max_depth,
            # a snapshot table record has 10 heads (version 2, with its TTL); index
            # definitions ("X", 10 heads plus up to MAX_PROJECTION names) are few, and get a
            # fixed allowance
            max_items=1 + 10 * header.record_count + 4096,
            max_bytes=limits.max_segment_bytes,
        )
        if not isinstance(records, list):
            raise ValidationError("payload must be a CBOR array of records")
        if len(records) != header.record_count:
            raise ValidationError(
                f"header says {header.record_count} records, the payload holds {len(records)}"
            )
        checked = _check_records(header, records, limits, version)
    except ValidationError as exc:
        raise SegmentError(f"bad payload: {exc}") from exc
    return Segment(header=header, records=checked, digest=digest, version=version)


_NAME_RE = re.compile(r"([0-9a-f]{16})-([0-9a-f]{16})-(changes|snapshot)\.seg")


def segment_filename(header: SegmentHeader) -> str:
    """The file name for a segment: ``<created_hlc:016x>-<sender:016x>-<kind>.seg``.

    Fixed-width lowercase hex sorts in creation (HLC) order; names never start with ``.`` and
    never end in ``.tmp``, which mark temporary files.
    """
    _u64(header.created_hlc, "created_hlc")
    _u64(header.sender, "sender")
    return f"{header.created_hlc:016x}-{header.sender:016x}-{header.kind}.seg"


def parse_segment_filename(name: str) -> SegmentName | None:
    """Parse a name made by :func:`segment_filename`; ``None`` for any other name."""
    match = _NAME_RE.fullmatch(name)
    if match is None:
        return None
    kind: Kind = "changes" if match.group(3) == "changes" else "snapshot"
    hlc, sender = int(match.group(1), 16), int(match.group(2), 16)
    return SegmentName(created_hlc=hlc, sender=sender, kind=kind)


def peek_record_count(f: BinaryIO, *, max_header_bytes: int = 1 << 20) -> int:
    """The record count a segment's header claims, read from the start of ``f`` without
    verifying anything else; 0 if the prefix or header does not parse. For progress
    estimates only: :func:`decode_segment` is what checks a segment.
    """
    try:
        magic, _, header_len = _PREFIX.unpack(f.read(_PREFIX.size))
        if magic != SEGMENT_MAGIC or header_len > max_header_bytes:
            return 0
        header = loads_bounded(f.read(header_len), max_depth=_HEADER_MAX_DEPTH,
                               max_bytes=header_len)
    except (struct.error, ValidationError, ValueError):
        return 0
    count = header.get("record_count", 0) if isinstance(header, dict) else 0
    return count if isinstance(count, int) else 0
