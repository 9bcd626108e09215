"""Regenerate the segment test corpus: ``python tests/testdata/segments/make_corpus.py``.

Every file is deterministic. Files named ``v1-ok*`` (format version 1, written by older builds)
and ``v2-ok*`` (the current format) must decode; every other file must be refused
with a :class:`~engine.errors.SegmentError` whose reason contains ``EXPECTED[name]``. The hostile
files carry a *correct* checksum, so it is the bounded decoder or the consistency checks that
catch them, not the checksum.
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

import cbor2

HERE = Path(__file__).resolve().parent
if __name__ == "__main__":  # make `engine`/`replication` importable when run as a script
    sys.path.insert(0, str(HERE.parents[2]))

from replication.segment import (  # noqa: E402
    SegmentHeader,
    _frame,
    _header_to_cbor,
    encode_segment,
)

SENDER = 0x1122334455667788
ORIGIN = 0x0102030405060708
HLC = 0x0001_8F00_0000_0001

#: Reason fragment each bad file must be refused with.
EXPECTED: dict[str, str] = {
    "bad-checksum.seg": "checksum mismatch",
    "truncated.seg": "checksum mismatch",
    "wrong-version.seg": "format version 3 is newer than this build understands",
    "version-zero.seg": "format version 0 not supported (this build reads 1 and 2)",
    "bad-magic.seg": "bad magic",
    "nested-bomb.seg": "nesting deeper than 32",
    "length-bomb.seg": "array length 4294967295 exceeds",
    "zip-bomb.seg": "decompresses to more than the limit",
    "count-lie.seg": "header says 3 records, the payload holds 2",
    "ranges-count-lie.seg": "ranges cover 2 changes but record_count is 3",
    "gap.seg": "seq 3 where 2 was due",
    "range-beyond-vv.seg": "beyond the sender's vv",
}


def ok_changes() -> tuple[SegmentHeader, bytes]:
    """A small, uncompressed changes segment from two origins."""
    records = [
        (ORIGIN, 1, cbor2.dumps({"t": "orders", "k": "c1/o1", "d": {"total": 10}})),
        (SENDER, 7, cbor2.dumps({"t": "orders", "k": "c2/o9", "d": {"status": "SHIPPED"}})),
        (ORIGIN, 2, cbor2.dumps({"t": "orders", "k": "c1/o1", "d": {"total": 12}})),
    ]
    return encode_segment(
        kind="changes", sender=SENDER, region="ap-south-1", records=records,
        vv={ORIGIN: 2, SENDER: 7}, acks={ORIGIN: {ORIGIN: 1}}, forgotten={42},
        created_hlc=HLC, compress=False,
    )  # fmt: skip


def _changes_header(**overrides: object) -> SegmentHeader:
    fields: dict[str, object] = dict(
        kind="changes", sender=SENDER, region="eu-west-1", ranges={ORIGIN: (1, 3)},
        vv={ORIGIN: 3}, record_count=3, created_hlc=HLC,
    )  # fmt: skip
    fields.update(overrides)
    return SegmentHeader(**fields)  # type: ignore[arg-type]


def _hostile(header: SegmentHeader, payload: bytes) -> bytes:
    return _frame(_header_to_cbor(header), payload)


def _reframe(data: bytes, version: int) -> bytes:
    """The same header and payload framed under another format version (checksum redone)."""
    (header_len,) = struct.unpack_from(">I", data, 10)
    (payload_len,) = struct.unpack_from(">I", data, 14 + header_len)
    start = 18 + header_len
    return _frame(data[14:14 + header_len], data[start:start + payload_len], version=version)


def build_corpus() -> dict[str, bytes]:
    """Every corpus file by name."""
    _, ok = ok_changes()
    _, snapshot = encode_segment(
        kind="snapshot", sender=SENDER, region="us-east-1",
        records=[("T", "orders", "customer_id", "order_id", HLC, SENDER),
                 ("I", b"\x01orders\x00c1\x00o1", cbor2.dumps({"total": 10}))],
        vv={SENDER: 7}, created_hlc=HLC + 1, compress=False,
    )  # fmt: skip
    _, snapshot_ttl = encode_segment(
        kind="snapshot", sender=SENDER, region="us-east-1",
        records=[("T", "orders", "customer_id", "order_id", HLC, SENDER, "expires", HLC, SENDER),
                 ("I", b"\x01orders\x00c1\x00o1", cbor2.dumps({"total": 10}))],
        vv={SENDER: 7}, created_hlc=HLC + 2, compress=False,
    )  # fmt: skip
    body = bytearray(ok)
    body[len(body) // 2] ^= 0x01
    bad_magic = b"\x89NOTASEG" + ok[8:]
    txn = b"\xa0"
    one = [ORIGIN, 1, txn]
    nested = b"\x81" * 40 + b"\x01"
    return {
        "v1-ok.seg": _reframe(ok, 1),
        "v1-ok-snapshot.seg": _reframe(snapshot, 1),
        "v2-ok.seg": ok,
        "v2-ok-snapshot.seg": snapshot_ttl,
        "bad-checksum.seg": bytes(body),
        "truncated.seg": ok[: len(ok) - 10],
        "wrong-version.seg": _reframe(ok, 3),
        "version-zero.seg": _reframe(ok, 0),
        "bad-magic.seg": bad_magic,
        "nested-bomb.seg": _hostile(_changes_header(), b"\x83" + nested + b"\x01\x01"),
        "length-bomb.seg": _hostile(_changes_header(), b"\x9a\xff\xff\xff\xff" + cbor2.dumps(one)),
        "zip-bomb.seg": _hostile(
            _changes_header(compression="zlib"), zlib.compress(b"\x00" * (64 * 1024 * 1024 + 1), 9)
        ),
        "count-lie.seg": _hostile(
            _changes_header(), cbor2.dumps([[ORIGIN, 1, txn], [ORIGIN, 2, txn]])
        ),
        "ranges-count-lie.seg": _hostile(
            _changes_header(ranges={ORIGIN: (1, 2)}),
            cbor2.dumps([[ORIGIN, 1, txn], [ORIGIN, 2, txn], [ORIGIN, 3, txn]]),
        ),
        "gap.seg": _hostile(
            _changes_header(), cbor2.dumps([[ORIGIN, 1, txn], [ORIGIN, 3, txn], [ORIGIN, 4, txn]])
        ),
        "range-beyond-vv.seg": _hostile(
            _changes_header(vv={ORIGIN: 2}),
            cbor2.dumps([[ORIGIN, 1, txn], [ORIGIN, 2, txn], [ORIGIN, 3, txn]]),
        ),
    }


def main() -> None:
    for name, data in build_corpus().items():
        (HERE / name).write_bytes(data)


if __name__ == "__main__":
    main()
