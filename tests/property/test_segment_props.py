"""Properties of the segment codec: round trips, and no input ever escapes as a non-SegmentError."""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from engine.errors import SegmentError
from replication.segment import (
    SEGMENT_MAGIC,
    Record,
    decode_segment,
    encode_segment,
    parse_segment_filename,
    segment_filename,
)

u64 = st.integers(min_value=0, max_value=2**64 - 1)
node_ids = st.one_of(st.integers(min_value=1, max_value=5), st.integers(1, 2**64 - 1))
blobs = st.binary(max_size=64) | st.sampled_from([b"", b"order-item " * 30])


@st.composite
def changes_segments(draw: st.DrawFn) -> dict[str, Any]:
    """Keyword arguments for a valid changes segment: contiguous runs per origin, interleaved."""
    runs = draw(
        st.dictionaries(
            node_ids, st.tuples(st.integers(1, 2**63), st.integers(0, 6)), max_size=4
        )
    )
    pending = {o: list(range(first, first + length)) for o, (first, length) in runs.items()}
    records: list[Record] = []
    while any(pending.values()):
        origin = draw(st.sampled_from(sorted(o for o, seqs in pending.items() if seqs)))
        records.append((origin, pending[origin].pop(0), draw(blobs)))
    vv = draw(st.dictionaries(node_ids, u64, max_size=3))
    for origin, (first, length) in runs.items():
        if length:
            vv[origin] = max(vv.get(origin, 0), first + length - 1)
    return {"kind": "changes", "records": records, "vv": vv}


snapshot_records = st.lists(
    st.one_of(
        st.tuples(st.just("T"), st.text(max_size=8), st.text(max_size=8),
                  st.none() | st.text(max_size=8), u64, u64),
        st.tuples(st.just("I"), st.binary(max_size=16), blobs),
    ),
    max_size=8,
    unique_by=lambda r: (r[0], r[1]),
)  # fmt: skip


@st.composite
def segment_args(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        args = draw(changes_segments())
    else:
        args = {
            "kind": "snapshot",
            "records": draw(snapshot_records),
            "vv": draw(st.dictionaries(node_ids, u64, max_size=3)),
        }
    args.update(
        sender=draw(node_ids),
        region=draw(st.text(max_size=12)),
        acks=draw(st.dictionaries(node_ids, st.dictionaries(node_ids, u64, max_size=3),
                                  max_size=3)),
        forgotten=draw(st.frozensets(node_ids, max_size=3)),
        created_hlc=draw(u64),
        compress=draw(st.sampled_from([None, True, False])),
    )
    return args


@settings(max_examples=100)
@given(segment_args())
def test_round_trip(args: dict[str, Any]) -> None:
    header, data = encode_segment(**args)
    segment = decode_segment(data)
    assert segment.header == header
    assert segment.records == tuple(args["records"])
    assert header.vv == args["vv"] and header.forgotten == args["forgotten"]
    assert header.record_count == len(args["records"])
    if args["compress"] is not None:
        assert header.compression == ("zlib" if args["compress"] else "none")
    assert parse_segment_filename(segment_filename(header)) is not None


@settings(max_examples=100)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_only_raise_segment_error(data: bytes) -> None:
    for candidate in (data, SEGMENT_MAGIC + data, SEGMENT_MAGIC + b"\x00\x01" + data):
        with contextlib.suppress(SegmentError):
            decode_segment(candidate)


@settings(max_examples=100)
@given(segment_args(), st.data())
def test_mutation_is_detected_or_a_no_op(args: dict[str, Any], data: st.DataObject) -> None:
    _, original = encode_segment(**args)
    expected = decode_segment(original)
    position = data.draw(st.integers(0, len(original) - 1), label="position")
    mutated = bytearray(original)
    how = data.draw(st.sampled_from(["set", "insert", "delete"]), label="how")
    if how == "set":
        mutated[position] = data.draw(st.integers(0, 255), label="byte")
    elif how == "insert":
        mutated.insert(position, data.draw(st.integers(0, 255), label="byte"))
    else:
        del mutated[position]
    try:
        decoded = decode_segment(bytes(mutated))
    except SegmentError:
        return
    # Accepted only if the mutation did nothing (e.g. a byte set to its own value).
    assert bytes(mutated) == original
    assert decoded == expected


@settings(max_examples=50)
@given(segment_args(), st.integers(0, 10_000))
def test_truncation_is_always_detected(args: dict[str, Any], cut: int) -> None:
    _, data = encode_segment(**args)
    assume(cut < len(data))
    try:
        decode_segment(data[:cut])
    except SegmentError:
        return
    raise AssertionError(f"a segment cut at {cut} of {len(data)} bytes was accepted")
