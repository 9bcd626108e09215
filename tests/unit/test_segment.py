"""replication.segment: round trips, the byte layout, and every way a segment can be bad."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import random
import struct
import zlib
from pathlib import Path
from types import ModuleType

import cbor2
import pytest

from engine.errors import SegmentError, ValidationError
from replication.segment import (
    DEFAULT_LIMITS,
    FORMAT_VERSION,
    SEGMENT_MAGIC,
    Record,
    SegmentHeader,
    SegmentLimits,
    SegmentName,
    _frame,
    _header_to_cbor,
    decode_segment,
    encode_segment,
    parse_segment_filename,
    segment_filename,
)

CORPUS = Path(__file__).resolve().parents[1] / "testdata" / "segments"
A, B = 0xA1, 0xB2


def _corpus_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_corpus", CORPUS / "make_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def small_changes(compress: bool | None = False) -> tuple[SegmentHeader, bytes]:
    records: list[Record] = [(A, 1, b"\xa1\x61x\x01"), (B, 4, b"\xa0"), (A, 2, b"\x80")]
    return encode_segment(
        kind="changes", sender=A, region="eu", records=records, vv={A: 2, B: 4},
        acks={B: {A: 1}}, forgotten={9}, created_hlc=1000, compress=compress,
    )  # fmt: skip


def hostile(payload: object | bytes, **header: object) -> bytes:
    """A correctly framed and checksummed segment with a hand-made header and payload."""
    fields: dict[str, object] = dict(
        kind="changes", sender=A, region="eu", ranges={A: (1, 2)}, vv={A: 2}, record_count=2,
    )  # fmt: skip
    fields.update(header)
    raw = payload if isinstance(payload, bytes) else cbor2.dumps(payload)
    return _frame(_header_to_cbor(SegmentHeader(**fields)), raw)  # type: ignore[arg-type]


def refused(data: bytes, match: str | None, **kwargs: object) -> SegmentError:
    with pytest.raises(SegmentError, match=match) as info:
        decode_segment(data, **kwargs)  # type: ignore[arg-type]
    return info.value


# ---------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("compress", [False, True, None])
def test_changes_round_trip(compress: bool | None) -> None:
    header, data = small_changes(compress)
    segment = decode_segment(data)
    assert segment.header == header
    assert segment.header.ranges == {A: (1, 2), B: (4, 4)}
    assert segment.header.record_count == 3
    assert segment.header.forgotten == frozenset({9})
    assert segment.header.acks == {B: {A: 1}}
    assert segment.records == ((A, 1, b"\xa1\x61x\x01"), (B, 4, b"\xa0"), (A, 2, b"\x80"))
    assert segment.digest == hashlib.blake2b(data[:-32], digest_size=32).digest()


def test_snapshot_round_trip() -> None:
    records: list[Record] = [
        ("T", "orders", "customer_id", "order_id", 5, A),
        ("T", "carts", "id", None, 6, B),
        ("I", b"k1", b"state-1"),
        ("I", b"k2", b""),
    ]
    header, data = encode_segment(
        kind="snapshot", sender=B, region="us", records=records, vv={A: 3}, created_hlc=7
    )
    segment = decode_segment(data)
    assert segment.header == header and header.ranges == {} and header.kind == "snapshot"
    assert segment.records == tuple(records)


def test_empty_changes_segment_carries_state_only() -> None:
    header, data = encode_segment(
        kind="changes", sender=A, region="eu", records=[], vv={A: 5}, created_hlc=1
    )
    assert decode_segment(data).header.vv == {A: 5} and header.record_count == 0


def test_auto_compression_only_when_it_pays() -> None:
    repetitive = [(A, i, b"order-item " * 20) for i in range(1, 51)]
    header, _ = encode_segment(
        kind="changes", sender=A, region="eu", records=repetitive, vv={A: 50}, created_hlc=1
    )
    assert header.compression == "zlib"
    random_ = [(A, i, os.urandom(200)) for i in range(1, 51)]
    header, data = encode_segment(
        kind="changes", sender=A, region="eu", records=random_, vv={A: 50}, created_hlc=1
    )
    assert header.compression == "none"
    assert decode_segment(data).records == tuple(random_)


def test_encoding_is_deterministic() -> None:
    assert small_changes(True)[1] == small_changes(True)[1]
    assert small_changes(False)[1] == small_changes(False)[1]


def test_header_is_canonical_cbor() -> None:
    # The encoder builds the header map in canonical key order and skips cbor2's sorting;
    # the bytes must be exactly what canonical=True gives, whatever the integer keys.
    rng = random.Random(5)
    ints = [1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63, 2**64 - 1]
    for _ in range(200):
        nodes = rng.sample(ints, 3) + [rng.randrange(1, 2**64) for _ in range(2)]
        vv = {n: rng.choice(ints) for n in nodes}
        changes = rng.random() < 0.5
        header = SegmentHeader(
            kind="changes" if changes else "snapshot", sender=rng.choice(nodes), region="r",
            ranges={n: (vv[n], vv[n]) for n in nodes[:2]} if changes else {}, vv=vv,
            acks={n: dict(vv) for n in rng.sample(nodes, 2)},
            forgotten=frozenset(rng.sample(ints, 2)), record_count=2 if changes else 0,
            created_hlc=rng.choice(ints))
        canonical = cbor2.dumps({
            "kind": header.kind, "sender": header.sender, "region": header.region,
            "ranges": {o: list(r) for o, r in header.ranges.items()}, "vv": header.vv,
            "acks": header.acks, "forgotten": sorted(header.forgotten),
            "record_count": header.record_count, "created_hlc": header.created_hlc,
            "compression": header.compression}, canonical=True)
        assert _header_to_cbor(header) == canonical


def test_byte_layout() -> None:
    header, data = small_changes(False)
    assert data[:8] == SEGMENT_MAGIC
    version, header_len = struct.unpack_from(">HI", data, 8)
    assert version == FORMAT_VERSION == 2
    header_map = cbor2.loads(data[14 : 14 + header_len])
    assert header_map == {
        "kind": "changes", "sender": A, "region": "eu", "ranges": {A: [1, 2], B: [4, 4]},
        "vv": {A: 2, B: 4}, "acks": {B: {A: 1}}, "forgotten": [9], "record_count": 3,
        "created_hlc": 1000, "compression": "none",
    }  # fmt: skip
    (payload_len,) = struct.unpack_from(">I", data, 14 + header_len)
    start = 18 + header_len
    assert len(data) == start + payload_len + 32
    assert cbor2.loads(data[start : start + payload_len]) == [
        [A, 1, b"\xa1\x61x\x01"], [B, 4, b"\xa0"], [A, 2, b"\x80"]
    ]  # fmt: skip
    assert data[-32:] == hashlib.blake2b(data[:-32], digest_size=32).digest()


def test_zlib_payload_layout() -> None:
    _, data = small_changes(True)
    (header_len,) = struct.unpack_from(">I", data, 10)
    (payload_len,) = struct.unpack_from(">I", data, 14 + header_len)
    payload = data[18 + header_len : 18 + header_len + payload_len]
    assert cbor2.loads(zlib.decompress(payload))[1] == [B, 4, b"\xa0"]


# ---------------------------------------------------------------------------- corruption


def test_truncated_at_every_offset() -> None:
    _, data = small_changes(False)
    for cut in range(len(data)):
        refused(data[:cut], "truncated|checksum|magic")


def test_extra_trailing_byte() -> None:
    _, data = small_changes(False)
    refused(data + b"\x00", "checksum mismatch")


@pytest.mark.parametrize("compress", [False, True])
def test_every_single_bit_flip(compress: bool) -> None:
    _, data = small_changes(compress)
    flipped = bytearray(data)
    for i in range(len(data)):
        for bit in range(8):
            flipped[i] ^= 1 << bit
            with pytest.raises(SegmentError):
                decode_segment(bytes(flipped))
            flipped[i] ^= 1 << bit
    assert bytes(flipped) == data


def test_wrong_magic() -> None:
    _, data = small_changes()
    refused(b"PK\x03\x04" + data[4:], "not a regiondb segment \\(bad magic\\)")


def test_future_version_is_named() -> None:
    _, data = small_changes()
    future = data[:8] + struct.pack(">H", 7) + data[10:]
    refused(future, r"format version 7 is newer than this build understands \(it reads 1 and 2\)"
                    r": upgrade regiondb")
    refused(data[:8] + struct.pack(">H", 0) + data[10:],
            r"format version 0 not supported \(this build reads 1 and 2\)")


def test_version_1_is_still_read_and_its_records_are_checked_as_version_1() -> None:
    """Format 1 segments (older builds) decode; a TTL table record needs format 2."""
    corpus = _corpus_module()
    ttl_table = ("T", "t", "pk", None, 5, A, "expires", 6, A)
    _, v2 = encode_segment(kind="snapshot", sender=A, region="eu", records=[ttl_table],
                           vv={}, created_hlc=3)
    segment = decode_segment(v2)
    assert segment.version == 2 and segment.records == (ttl_table,)
    v1 = corpus._reframe(v2, 1)
    refused(v1, "a table record is \\('T', name, partition_key, sort_key, hlc, node\\)")
    old = decode_segment((CORPUS / "v1-ok.seg").read_bytes())
    assert old.version == 1 and old.header.record_count == 3


def test_oversize_is_refused_before_anything_else() -> None:
    limits = SegmentLimits(max_segment_bytes=100)
    refused(b"\x00" * 101, "101 bytes, over the limit of 100", limits=limits)


def test_error_carries_path() -> None:
    err = refused(b"junk", "bad magic", path=Path("/x/y.seg"))
    assert err.path == Path("/x/y.seg")
    assert str(err) == "/x/y.seg: not a regiondb segment (bad magic)"
    assert err.reason == "not a regiondb segment (bad magic)"


def test_non_bytes() -> None:
    refused("text", "must be bytes")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- header lies


def test_hostile_helper_builds_a_valid_segment() -> None:
    segment = decode_segment(hostile([[A, 1, b""], [A, 2, b""]]))
    assert segment.records == ((A, 1, b""), (A, 2, b""))


@pytest.mark.parametrize(
    ("payload", "header", "reason"),
    [
        ([[A, 1, b""]], {}, "header says 2 records, the payload holds 1"),
        ([[A, 1, b""], [A, 2, b""]], {"record_count": 3}, "ranges cover 2 changes but"),
        ([[A, 1, b""], [A, 3, b""]], {"ranges": {A: (1, 3)}, "vv": {A: 3}, "record_count": 3},
         "header says 3 records"),
        ([[A, 1, b""], [A, 3, b""]], {}, "seq 3 where 2 was due"),
        ([[A, 1, b""], [A, 1, b""]], {}, "seq 1 where 2 was due"),
        ([[A, 2, b""], [A, 1, b""]], {}, "seq 2 where 1 was due"),
        ([[A, 1, b""], [B, 1, b""]], {}, f"origin {B} is not in the header's ranges"),
        ([[A, 1, b""], [A, 2, b""]], {"vv": {A: 1}}, "beyond the sender's vv"),
        ([[A, 1, b""], [A, 2, b""]], {"vv": {}}, "beyond the sender's vv"),
        ([[A, 0, b""], [A, 1, b""]], {"ranges": {A: (0, 1)}}, "not 1 <= first <= last"),
        ([[A, 1, b""], [A, 2, b""]], {"ranges": {A: (2, 1)}}, "not 1 <= first <= last"),
        ([[A, 1, b""], [A, 2, "txt"]], {}, "record 1 txn must be bytes, got str"),
        ([[A, 1, b""], [A, -2, b""]], {}, "record 1 seq must be an int"),
        ([[A, 1, b""], [A, 2]], {}, "a change record is \\(origin, seq, txn\\)"),
        ([[A, 1, b""], {"a": 1}], {}, "a change record is"),
        ({"not": "a list"}, {}, "payload must be a CBOR array"),
        ([["I", b"k", b"s"], ["I", b"k", b"t"]], {"kind": "snapshot", "ranges": {}},
         "appears twice"),
        ([["T", "t", "pk", None, 1, 2], ["T", "t", "pk", None, 1, 2]],
         {"kind": "snapshot", "ranges": {}}, "defined twice"),
        ([["T", "t", "pk", 5, 1, 2], ["I", b"k", b""]], {"kind": "snapshot", "ranges": {}},
         "record 0 sort key must be a str"),
        ([["Z", b"k", b""], ["I", b"k", b""]], {"kind": "snapshot", "ranges": {}},
         "starts with 'T', 'I' or 'X'"),
        ([["X", b"k", b""], ["I", b"k", b""]], {"kind": "snapshot", "ranges": {}},
         "an index record is"),
        ([["X", "t", "i", "a", None, "SOME", 1, 2, False], ["I", b"k", b""]],
         {"kind": "snapshot", "ranges": {}}, "projection must be"),
        ([["X", "t", "i", "a", None, "ALL", 1, 2, True], ["I", b"k", b""]],
         {"kind": "snapshot", "ranges": {}}, "a dropped index carries no definition"),
        ([["X", "t", "i", "a", None, "ALL", 1, 2, 0], ["I", b"k", b""]],
         {"kind": "snapshot", "ranges": {}}, "'dropped' is not a bool"),
        ([["I", "k", b""], ["I", b"k", b""]], {"kind": "snapshot", "ranges": {}},
         "record 0 key must be bytes"),
        ([["I", b"k", b""], ["I", b"j", b""]], {"kind": "snapshot"}, "snapshot segment has no"),
        ([[A, 1, b""], [A, 2, b""]], {"kind": "other"}, "kind must be"),
        ([[A, 1, b""], [A, 2, b""]], {"compression": "lz4"}, "unknown compression"),
        ([[A, 1, b""], [A, 2, b""]], {"sender": 2**64}, "sender must be an int in"),
        ([[A, 1, b""], [A, 2, b""]], {"region": b"eu"}, "region must be a str"),
        ([[A, 1, b""], [A, 2, b""]], {"created_hlc": -1}, "created_hlc must be an int"),
        ([[A, 1, b""], [A, 2, b""]], {"acks": {A: {B: "x"}}}, "must be an int"),
        # node ids are never 0 (the engine refuses 0 as a node id: store.forget(0) would
        # raise ValidationError after verification, and an ack row for node 0 is a member
        # nobody can ever forget, blocking garbage collection for good)
        ([[A, 1, b""], [A, 2, b""]], {"sender": 0}, "sender must be an int in \\[1,"),
        ([[A, 1, b""], [A, 2, b""]], {"vv": {A: 2, 0: 1}}, "vv key must be an int in \\[1,"),
        ([[A, 1, b""], [A, 2, b""]], {"acks": {0: {A: 1}}}, "acks key must be an int in \\[1,"),
        ([[A, 1, b""], [A, 2, b""]], {"acks": {B: {0: 1}}}, "key must be an int in \\[1,"),
        ([[A, 1, b""], [A, 2, b""]], {"forgotten": frozenset({0})}, "forgotten node id"),
        ([[0, 1, b""], [0, 2, b""]], {"ranges": {0: (1, 2)}, "vv": {0: 2}},
         "vv key must be an int in \\[1,"),
    ],
)
def test_header_lies_and_bad_records(
    payload: object, header: dict[str, object], reason: str
) -> None:
    refused(hostile(payload, **header), reason)


def test_header_must_have_exactly_the_known_fields() -> None:
    header = cbor2.loads(_header_to_cbor(SegmentHeader(kind="snapshot", sender=A, region="eu")))
    refused(_frame(cbor2.dumps({**header, "extra": 1}), b"\x80"), r"unknown \['extra'\]")
    del header["vv"]
    refused(_frame(cbor2.dumps(header), b"\x80"), r"missing \['vv'\]")


def test_forgotten_must_be_ascending() -> None:
    header = cbor2.loads(_header_to_cbor(SegmentHeader(kind="snapshot", sender=A, region="eu")))
    header["forgotten"] = [5, 3]
    refused(_frame(cbor2.dumps(header), b"\x80"), "strictly ascending")


def test_record_over_the_record_limit() -> None:
    limits = SegmentLimits(max_record_bytes=150)
    data = hostile([[A, 1, b"x" * 151], [A, 2, b""]])
    refused(data, "151 bytes, over the record limit of 150", limits=limits)


def test_record_count_over_limit() -> None:
    limits = SegmentLimits(max_records=1)
    refused(hostile([[A, 1, b""], [A, 2, b""]]), "record_count 2 is over the limit", limits=limits)


# ---------------------------------------------------------------------------- hostile CBOR


def test_deeply_nested_payload() -> None:
    payload = b"\x82" + b"\x81" * 10_000 + b"\x01" + cbor2.dumps([A, 2, b""])
    refused(hostile(payload), "nesting deeper than 32")


def test_huge_declared_lengths() -> None:
    refused(hostile(b"\x9b" + (2**63).to_bytes(8, "big")), "array length 9223372036854775808")
    refused(hostile(b"\x82\x83\x01\x02\x5a\xff\xff\xff\xf0"), "string length 4294967280 exceeds")
    refused(hostile(b"\x82\xba\x10\x00\x00\x00"), "map length 268435456 exceeds")


def test_indefinite_and_tags_in_payload() -> None:
    refused(hostile(b"\x9f\xff"), "indefinite-length array")
    refused(hostile(b"\xc1\x01"), "tag 1 not allowed")


def test_header_is_bounded_too() -> None:
    bomb = b"\xa1\x64kind" + b"\x81" * 50 + b"\x01"
    refused(_frame(bomb, b"\x80"), "bad header: .*nesting deeper than 8")


def test_lying_header_length_inside_valid_checksum() -> None:
    _, data = small_changes()
    body = bytearray(data[:-32])
    struct.pack_into(">I", body, 10, 2**32 - 1)
    refused(bytes(body) + hashlib.blake2b(body, digest_size=32).digest(), "header length")


def test_lying_payload_length_inside_valid_checksum() -> None:
    _, data = small_changes()
    body = bytearray(data[:-32])
    (header_len,) = struct.unpack_from(">I", body, 10)
    struct.pack_into(">I", body, 14 + header_len, 1)
    refused(bytes(body) + hashlib.blake2b(body, digest_size=32).digest(), "payload length 1")


def test_zip_bomb_is_cut_off_at_the_limit() -> None:
    limits = SegmentLimits(max_segment_bytes=1 << 20)
    bomb = zlib.compress(b"\x00" * (16 << 20), 9)
    refused(hostile(bomb, compression="zlib"), "decompresses to more than", limits=limits)


def test_bad_zlib_streams() -> None:
    good = zlib.compress(cbor2.dumps([[A, 1, b""], [A, 2, b""]]))
    assert decode_segment(hostile(good, compression="zlib")).header.compression == "zlib"
    refused(hostile(good[:-3], compression="zlib"), "truncated")
    refused(hostile(good + b"xx", compression="zlib"), "2 bytes after the compressed payload")
    refused(hostile(b"not zlib", compression="zlib"), "does not decompress")


def test_random_bytes() -> None:
    rng = random.Random(1)
    for size in (0, 1, 13, 50, 51, 52, 200, 4096):
        refused(rng.randbytes(size), None)
        refused(SEGMENT_MAGIC + b"\x00\x01" + rng.randbytes(size), None)


# ---------------------------------------------------------------------------- encode side


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"records": [(A, 1, b""), (A, 3, b"")], "vv": {A: 3}}, "seq 3 where 2 was due"),
        ({"records": [(A, 1, "s")], "vv": {A: 1}}, "txn must be bytes"),
        ({"records": [(A, 1, b"")], "vv": {}}, "beyond the sender's vv"),
        ({"records": [(A, True, b"")], "vv": {A: 1}}, "seq must be an int"),
        ({"records": [(A, 1, b"")], "vv": {A: 1}, "sender": -1}, "sender must be"),
        ({"records": [], "vv": {A: 1}, "kind": "log"}, "kind must be"),
        ({"records": [], "vv": {"a": 1}}, "vv key must be an int"),
        ({"records": [], "vv": {}, "forgotten": [2**64]}, "forgotten node id"),
    ],
)
def test_encode_refuses_what_decode_would(kwargs: dict[str, object], reason: str) -> None:
    args: dict[str, object] = {"kind": "changes", "sender": A, "region": "eu", "created_hlc": 1}
    args.update(kwargs)
    with pytest.raises(ValidationError, match=reason):
        encode_segment(**args)  # type: ignore[arg-type]


def test_encode_refuses_oversize() -> None:
    limits = SegmentLimits(max_segment_bytes=1000)
    with pytest.raises(ValidationError, match="put fewer records"):
        encode_segment(
            kind="changes", sender=A, region="eu", records=[(A, 1, os.urandom(2000))],
            vv={A: 1}, created_hlc=1, limits=limits,
        )  # fmt: skip


def test_default_limits() -> None:
    assert SegmentLimits(64 << 20, 16 << 20, 32, 1_000_000) == DEFAULT_LIMITS


# ---------------------------------------------------------------------------- names


def test_filename_round_trip_and_order() -> None:
    header, _ = small_changes()
    name = segment_filename(header)
    assert name == "00000000000003e8-00000000000000a1-changes.seg"
    assert parse_segment_filename(name) == SegmentName(created_hlc=1000, sender=A, kind="changes")
    hlcs = [1, 255, 256, 2**48, 2**64 - 1]
    names = [segment_filename(SegmentHeader("snapshot", 5, "x", created_hlc=h)) for h in hlcs]
    assert sorted(names) == names


@pytest.mark.parametrize(
    "name",
    ["", "x.seg", ".00000000000003e8-00000000000000a1-changes.seg.1a2b.tmp",
     "00000000000003e8-00000000000000a1-changes.seg.tmp",
     "00000000000003E8-00000000000000a1-changes.seg",
     "00000000000003e8-00000000000000a1-delta.seg", "3e8-a1-changes.seg"],
)  # fmt: skip
def test_parse_ignores_other_names(name: str) -> None:
    assert parse_segment_filename(name) is None


# ---------------------------------------------------------------------------- corpus


def test_corpus_files_are_current() -> None:
    corpus = _corpus_module().build_corpus()
    on_disk = {p.name for p in CORPUS.glob("*.seg")}
    assert on_disk == set(corpus)
    for name, data in corpus.items():
        if name != "zip-bomb.seg":  # zlib output may differ between zlib builds
            assert (CORPUS / name).read_bytes() == data, f"regenerate {name}: make_corpus.py"


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.glob("*.seg")))
def test_corpus(name: str) -> None:
    data = (CORPUS / name).read_bytes()
    if name.startswith(("v1-ok", "v2-ok")):
        segment = decode_segment(data, path=CORPUS / name)
        assert segment.header.record_count == len(segment.records) > 0
        return
    expected = _corpus_module().EXPECTED[name]
    err = refused(data, expected.replace("(", r"\(").replace(")", r"\)"), path=CORPUS / name)
    assert err.path == CORPUS / name and str(err).startswith(str(CORPUS / name))


# ---------------------------------------------------------------------------- fork checks


def test_tips_bases_and_voids_round_trip() -> None:
    records: list[Record] = [(B, 4, b"\xa0"), (B, 5, b"\x80")]
    header, data = encode_segment(
        kind="changes", sender=A, region="eu", records=records, vv={A: 2, B: 5},
        created_hlc=10, covers={A: 77, B: 99}, bases={B: 55},
    )  # fmt: skip
    assert decode_segment(data).header == header
    assert header.covers == {A: 77, B: 99} and header.bases == {B: 55}
    key = b"0t\x00\x010k\x00\x01"
    voids = [[B, [[90, 5, A + 1]], [[key, "n", 0, 3]]]]
    header, data = encode_segment(kind="snapshot", sender=A, region="eu", records=[],
                                  vv={B: 4}, created_hlc=11, voids=voids)
    assert decode_segment(data).header.voids == voids


@pytest.mark.parametrize("fields,match", [
    ({"bases": {B: 5}}, "bases name origins"),          # no range of B
    ({"ranges": {A: (1, 2)}, "bases": {A: 5}}, "bases name origins"),  # starts at seq 1
    ({"voids": [[B, [[1, 2, 3]], []]]}, "only a snapshot"),
    ({"kind": "snapshot", "ranges": {}, "record_count": 0, "voids": [[B, [[1, 2]], []]]},
     "voided entry"),
    ({"kind": "snapshot", "ranges": {}, "record_count": 0, "voids": "junk"}, "not an array"),
])
def test_bad_fork_fields_are_refused(fields: dict[str, object], match: str) -> None:
    refused(hostile([[A, 1, b"\x80"], [A, 2, b"\x80"]] if fields.get("kind") != "snapshot"
                    else [], **fields), match)
