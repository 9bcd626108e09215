"""The pure parts of the fleet transport: names, rows, options, snapshot framing."""

from __future__ import annotations

import cbor2
import pytest

from engine.errors import SegmentError, ValidationError
from replication.jetstream import FleetOptions, Names, find_nats_server
from replication.jetstream.names import message_id, parse_message_id, parse_subject
from replication.jetstream.rows import Row, decode_row, encode_row
from replication.jetstream.snapshots import MAGIC, _decode_info, _frame, _split


def test_names_of_a_cluster() -> None:
    n = Names("shopease")
    assert n.stream == "REGIONDB_shopease"
    assert n.subject(1, 2) == "regiondb.shopease.seg.0000000000000001.0000000000000002"
    assert n.all_segments == "regiondb.shopease.seg.>"
    assert n.acks_bucket == "regiondb_shopease_acks" and n.snapshot_bucket.endswith("_snap")
    assert Names.durable(255) == "node-00000000000000ff"
    assert Names.row_node(Names.row_key(42)) == 42
    assert Names.row_node("node.zz") is None and Names.row_node("snapshot.request") is None
    assert Names.row_node("node.0000000000000000") is None


@pytest.mark.parametrize("bad", ["", "a.b", "with space", "x" * 49, "star*", 7])
def test_bad_cluster_names_are_refused(bad: object) -> None:
    with pytest.raises(ValidationError, match="cluster name"):
        Names(bad)  # type: ignore[arg-type]


def test_subjects_parse_only_when_they_are_ours() -> None:
    n = Names("c")
    s = parse_subject(n, n.subject(0xABC, 0xDEF))
    assert s is not None and (s.sender, s.origin) == (0xABC, 0xDEF)
    for bad in ["regiondb.c.seg.junk", "regiondb.other.seg.0000000000000001.0000000000000001",
                "regiondb.c.seg.0000000000000000.0000000000000001",
                "regiondb.c.seg.000000000000000G.0000000000000001", "x"]:
        assert parse_subject(n, bad) is None, bad


def test_message_ids_round_trip() -> None:
    assert parse_message_id(message_id(5, 1, 9)) == (5, 1, 9)
    for bad in [None, "", "0000000000000005-9-1", "5-1-9", "0000000000000000-1-1",
                "0000000000000005-0-1"]:
        assert parse_message_id(bad) is None, bad


def test_rows_round_trip_and_refuse_what_is_malformed() -> None:
    row = Row(7, "eu", {7: 3, 9: 1}, {9: {9: 1}}, frozenset({11}), {9: (1.0, 2.0, 3.0, 4)}, 1234)
    back = decode_row(encode_row(row), 7)
    assert (back.vv, back.acks, back.forgotten, back.lag, back.updated_ms) == \
        (row.vv, row.acks, row.forgotten, row.lag, 1234)
    with pytest.raises(SegmentError, match="under the key of"):
        decode_row(encode_row(row), 8)
    bad_bodies = [b"\xff\x00garbage", cbor2.dumps([1, 2]),
                  cbor2.dumps({"node": 7, "region": "eu", "vv": {7: -1}, "acks": {},
                               "forgotten": []}),
                  cbor2.dumps({"node": 7, "region": "eu", "vv": {}, "acks": {},
                               "forgotten": [0]}),
                  b"\x00" * (300 * 1024)]
    for data in bad_bodies:
        with pytest.raises(SegmentError, match="row"):
            decode_row(data, 7)


def test_options_are_checked() -> None:
    assert FleetOptions().max_age == 7 * 24 * 3600
    for bad in [{"row_interval": 0}, {"max_msgs": 0}, {"replicas": True},
                {"segment_bytes": "1"}, {"max_age": 10.0, "duplicate_window": 60.0}]:
        with pytest.raises(ValidationError, match="FleetOptions"):
            FleetOptions(**bad)  # type: ignore[arg-type]


def test_snapshot_framing() -> None:
    assert _split(_frame([b"one", b"", b"three"])) == [b"one", b"", b"three"]
    with pytest.raises(SegmentError, match="magic"):
        _split(b"NOTASNAP")
    with pytest.raises(SegmentError, match="truncated"):
        _split(_frame([b"abcdef"])[:-2])
    with pytest.raises(SegmentError, match="truncated"):
        _split(MAGIC + b"\x00\x00")
    assert _decode_info("not json") is None and _decode_info('{"node": 1}') is None


def test_the_server_binary_is_installed_by_the_test_extra() -> None:
    assert find_nats_server().endswith("nats-server")
