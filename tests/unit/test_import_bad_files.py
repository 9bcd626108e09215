"""import_changes with bad files: each is a SegmentError naming the file and the reason, nothing
is applied, and the store (digest, vv, ack table) is exactly as it was.

A single file raises; the same file inside a directory is reported in ``report.rejected`` while
the good files beside it still apply.
"""

from __future__ import annotations

import importlib.util
import random
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine
import replication
from engine.errors import SegmentError
from replication import vv as V
from replication.segment import (
    SegmentHeader,
    SegmentLimits,
    _frame,
    _header_to_cbor,
    encode_segment,
)

CORPUS = Path(__file__).resolve().parents[1] / "testdata" / "segments"


def _corpus() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_corpus", CORPUS / "make_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class World:
    """A source store with history, its exported segments, and a receiver with some state."""

    def __init__(self, root: Path) -> None:
        clock = engine.ManualClock()
        self.src = engine.open(root / "src", region="src", wall_clock=clock)
        self.dst = engine.open(root / "dst", region="dst", wall_clock=clock)
        t = self.src.create_table("orders", partition_key="id")
        for i in range(6):
            t.put({"id": f"o{i}", "total": i, "note": "x" * 20})
        t.delete("o1")
        self.dst.create_table("orders", partition_key="id").put({"id": "mine", "total": 1})
        self.files = replication.export_changes(self.src, root / "out", compress=False)
        self.good = self.files[0].read_bytes()
        self.bad = root / "bad"
        self.bad.mkdir()

    def state(self) -> tuple[Any, ...]:
        d = self.dst
        return d.digest(), d.version_vector(), V.load_acks(d), d.forgotten(), d.log_floor()

    def refuse(self, data: bytes, reason: str = "", name: str = "x.seg",
               limits: SegmentLimits | None = None) -> SegmentError:
        """Import ``data`` as one file and as a directory: refused both ways, store unchanged."""
        for old in self.bad.iterdir():
            old.unlink()
        path = self.bad / name
        path.write_bytes(data)
        before = self.state()
        kw = {"limits": limits} if limits else {}
        with pytest.raises(SegmentError) as info:
            replication.import_changes(self.dst, path, **kw)  # type: ignore[arg-type]
        err = info.value
        assert err.path == path and str(path) in str(err) and err.reason
        assert reason in err.reason, err.reason
        assert self.state() == before
        report = replication.import_changes(self.dst, self.bad, **kw)  # type: ignore[arg-type]
        assert [f.path for f in report.rejected] == [path] and report.applied == 0
        assert self.state() == before
        return err

    def close(self) -> None:
        self.src.close()
        self.dst.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.close()


def test_good_file_imports_and_reimport_is_a_no_op(world: World) -> None:
    report = replication.import_changes(world.dst, world.files[0])
    assert report.count("applied") == 1 and report.applied == 8
    again = replication.import_changes(world.dst, world.files[0].parent)
    assert again.count("known") == 1 and again.applied == 0 and again.skipped == 8


def test_truncated_at_every_offset(world: World) -> None:
    for cut in range(len(world.good)):
        world.refuse(world.good[:cut])


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_bit_flip(world: World, data: st.DataObject) -> None:
    pos = data.draw(st.integers(0, len(world.good) - 1))
    bit = data.draw(st.integers(0, 7))
    flipped = bytearray(world.good)
    flipped[pos] ^= 1 << bit
    world.refuse(bytes(flipped))


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=600), st.booleans())
def test_random_bytes(world: World, junk: bytes, with_magic: bool) -> None:
    world.refuse((world.good[:14] if with_magic else b"") + junk)


def test_every_corpus_file(world: World) -> None:
    expected: dict[str, str] = _corpus().EXPECTED
    for name, reason in expected.items():
        world.refuse((CORPUS / name).read_bytes(), reason, name=name)
    # well-formed segments that this store cannot take: seq 7 of a node it has nothing of,
    # and snapshot items whose states are not engine states
    world.refuse((CORPUS / "v1-ok.seg").read_bytes(), "seqs 1..6 must come first")
    world.refuse((CORPUS / "v1-ok-snapshot.seg").read_bytes(), "bad snapshot record")
    world.refuse((CORPUS / "v2-ok.seg").read_bytes(), "seqs 1..6 must come first")


def test_wrong_magic_and_future_version(world: World) -> None:
    world.refuse(b"PK\x03\x04" + world.good[4:], "bad magic")
    future = bytearray(world.good)
    struct.pack_into(">H", future, 8, 3)
    world.refuse(bytes(future), "format version 3 is newer than this build understands")


def _hostile(header: dict[str, Any], payload: bytes) -> bytes:
    fields: dict[str, Any] = dict(kind="changes", sender=0xA1, region="eu", ranges={0xA1: (1, 2)},
                                  vv={0xA1: 2}, record_count=2, created_hlc=1)
    fields.update(header)
    return _frame(_header_to_cbor(SegmentHeader(**fields)), payload)


def test_header_that_lies(world: World) -> None:
    txn = cbor2.dumps([1, [["T", "t", "id", None]]])
    recs = [[0xA1, 1, txn], [0xA1, 2, txn]]
    world.refuse(_hostile({"record_count": 3, "ranges": {0xA1: (1, 3)}, "vv": {0xA1: 3}},
                          cbor2.dumps(recs)), "header says 3 records")
    world.refuse(_hostile({"ranges": {0xA1: (2, 3)}, "vv": {0xA1: 3}}, cbor2.dumps(recs)),
                 "where 2 was due")
    world.refuse(_hostile({"ranges": {0xB2: (1, 2)}, "vv": {0xB2: 2}}, cbor2.dumps(recs)),
                 "not in the header's ranges")
    world.refuse(_hostile({"vv": {0xA1: 1}}, cbor2.dumps(recs)), "beyond the sender's vv")


def test_oversized_file_and_records(world: World) -> None:
    world.refuse(world.good, "over the limit", limits=SegmentLimits(max_segment_bytes=100))
    world.refuse(world.good, "over the record limit", limits=SegmentLimits(max_record_bytes=50))


def test_nested_and_huge_containers(world: World) -> None:
    world.refuse(_hostile({}, b"\x82" + b"\x81" * 60 + b"\x01" + b"\x01"), "nesting deeper")
    world.refuse(_hostile({}, b"\x9b" + b"\xff" * 8), "exceeds")
    bomb = zlib.compress(b"\x00" * (65 * 1024 * 1024), 9)
    world.refuse(_hostile({"compression": "zlib"}, bomb), "decompresses to more than the limit")


def test_valid_frame_with_hostile_transactions_applies_nothing(world: World) -> None:
    good_txn = world.src.log_range(world.src.node_id, 0, limit=1)[0][2]
    bad_txns = [
        cbor2.dumps([1, [["P", "orders", b"\xff", {"id": 1}, 0, 0]]]),     # bad key
        cbor2.dumps([1, [["Z"]]]),                                          # unknown op
        cbor2.dumps([1, []]),                                               # empty txn
        cbor2.dumps([1, [["U", "orders", b"k", {"a": 1}, ["a"], 0, 0]]]),  # set and remove
        b"\xff\xff",
    ]
    for bad in bad_txns:
        _, data = encode_segment(kind="changes", sender=0xA1, region="eu",
                                 records=[(0xA1, 1, good_txn), (0xA1, 2, bad)],
                                 vv={0xA1: 2}, created_hlc=5)
        world.refuse(data, "bad change record")


def test_hostile_snapshot_items(world: World) -> None:
    for key, state in [(b"\x01orders\x00k", b"\x00"), (b"", cbor2.dumps([0, 0, {}, {}])),
                       (b"\x01orders\x00k", cbor2.dumps([5, 5, {}, {"a": [1, 1, 1]}]))]:
        _, data = encode_segment(kind="snapshot", sender=0xA1, region="eu",
                                 records=[("T", "orders", "id", None, 1, 0xA1), ("I", key, state)],
                                 vv={0xA1: 3}, created_hlc=6)
        world.refuse(data, "bad snapshot record")


def test_gap_the_receiver_cannot_bridge(world: World, tmp_path: Path) -> None:
    late = replication.export_changes(world.src, tmp_path / "late", since={world.src.node_id: 3})
    err = world.refuse(late[0].read_bytes(), "gap")
    assert "seqs 1..3 must come first" in err.reason


def test_directory_mixes_good_and_bad(world: World) -> None:
    box = world.files[0].parent
    (box / "zz-broken.seg").write_bytes(world.good[:-5])
    (box / f".{world.files[0].name}.123.tmp").write_bytes(b"in progress")
    (box / "notes.txt").write_text("ignored")
    report = replication.import_changes(world.dst, box)
    assert report.count("applied") == len(world.files) and len(report.rejected) == 1
    assert report.rejected[0].path.name == "zz-broken.seg"
    assert "checksum mismatch" in str(report.rejected[0])
    assert world.dst.table("orders").get("o5") is not None


def test_relays_out_of_order_in_one_directory(world: World, tmp_path: Path) -> None:
    # two files whose order by name is the wrong order to apply them: the importer retries
    first = replication.export_changes(world.src, tmp_path / "x", max_records=3)
    box = tmp_path / "mixed"
    box.mkdir()
    names = sorted(p.name for p in first)
    for i, p in enumerate(sorted(first)):
        (box / f"{names[-1 - i]}").write_bytes(p.read_bytes())
    report = replication.import_changes(world.dst, box)
    assert not report.rejected and world.dst.version_vector()[world.src.node_id] == 8


def test_progress_is_reported(world: World) -> None:
    calls: list[tuple[int, int | None]] = []
    replication.import_changes(world.dst, world.files[0].parent,
                               progress=lambda d, t: calls.append((d, t)))
    assert calls and calls[-1][0] == 8 and calls[-1][1] == 8


def test_missing_path(world: World, tmp_path: Path) -> None:
    with pytest.raises(engine.ValidationError):
        replication.import_changes(world.dst, tmp_path / "nope")


def test_random_garbage_never_escapes_as_another_error(world: World) -> None:
    rng = random.Random(7)
    for _ in range(50):
        data = bytearray(world.good)
        for _ in range(rng.randint(1, 5)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if bytes(data) != world.good:
            world.refuse(bytes(data))

