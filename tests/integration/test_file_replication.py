"""Replication through files with real LMDB stores and real folders.

Every store here is opened, used and closed in turn, so no two nodes ever run at the same time:
the mailbox (or a copy of it carried around like a USB stick) is all they share.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import engine
import replication
from replication import vv as V

pytestmark = pytest.mark.integration

CLOCK = engine.ManualClock()


class Node:
    """A store directory that is opened only while the test works with it."""

    def __init__(self, root: Path, name: str) -> None:
        self.path = root / name
        self.name = name
        with self.open() as s:
            self.id = s.node_id
            s.create_table("orders", partition_key="customer_id", sort_key="order_id")

    def open(self) -> engine.Store:
        CLOCK.advance(5)
        return engine.open(self.path, region=f"r-{self.name}", wall_clock=CLOCK)

    def do(self, fn: Callable[[engine.Store], Any]) -> Any:
        with self.open() as s:
            return fn(s)

    def sync(
        self, mailbox: Path, write: Callable[[engine.Table], Any] | None = None,
    ) -> replication.SyncReport:
        with self.open() as s:
            if write is not None:
                write(s.table("orders"))
            return replication.sync_dir(s, mailbox)

    def digest(self) -> str:
        return str(self.do(lambda s: s.digest()))

    def vv(self) -> dict[int, int]:
        return dict(self.do(lambda s: s.version_vector()))

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        return self.do(lambda s: s.table("orders").get(pk, sk))  # type: ignore[no-any-return]

    def records(self) -> int:
        return int(self.do(lambda s: s.stats()["items"]))


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[[str], Node]]:
    yield lambda name: Node(tmp_path / "nodes", name)


def put(i: int, who: str = "x") -> Callable[[engine.Table], None]:
    return lambda t: t.put({"customer_id": f"c{i % 4}", "order_id": f"{who}{i}", "total": i})


def converged(*nodes: Node) -> bool:
    vvs = {str(sorted(n.vv().items())) for n in nodes}
    return len({n.digest() for n in nodes}) == 1 and len(vvs) == 1


# ------------------------------------------------------------------ export / import


@pytest.mark.parametrize("compress", [False, True, None])
def test_export_import_round_trip(
    make: Callable[[str], Node], tmp_path: Path, compress: bool | None,
) -> None:
    a, b = make("a"), make("b")
    for i in range(50):
        a.do(lambda s, i=i: put(i)(s.table("orders")))
    a.do(lambda s: s.table("orders").update("c1", "x1", set={"status": "PAID"}, remove=["total"]))
    a.do(lambda s: s.table("orders").delete("c2", "x2"))
    out = tmp_path / "out"
    files = a.do(lambda s: replication.export_changes(s, out, max_records=16, compress=compress))
    assert len(files) == 4 and all(p.exists() for p in files)
    report = b.do(lambda s: replication.import_changes(s, out))
    assert report.count("applied") == 4 and not report.rejected
    assert a.digest() == b.digest()
    again = b.do(lambda s: replication.import_changes(s, out))
    assert again.count("known") == 4 and again.applied == 0
    # since= exports only what is new
    vv = a.vv()
    a.do(lambda s: put(99)(s.table("orders")))
    more = a.do(lambda s: replication.export_changes(s, tmp_path / "more", since=vv))
    assert len(more) == 1
    b.do(lambda s: replication.import_changes(s, more[0]))
    assert a.digest() == b.digest()


# ------------------------------------------------------------------ the mailbox


def test_three_nodes_never_open_together_converge(
    make: Callable[[str], Node], tmp_path: Path,
) -> None:
    box = tmp_path / "mailbox"
    nodes = [make(n) for n in "abc"]
    for rnd in range(3):
        for k, n in enumerate(nodes):
            n.sync(box, put(rnd * 10 + k, n.name))
    for n in nodes:
        n.sync(box)
    assert converged(*nodes)
    assert nodes[0].get("c0", "a0") == {"customer_id": "c0", "order_id": "a0", "total": 0}
    # quiet rounds write nothing new
    again = [n.sync(box) for n in nodes]
    assert all(not r.exported and not r.applied for r in again)


def test_usb_stick_copies(make: Callable[[str], Node], tmp_path: Path) -> None:
    home_a, home_b, stick = tmp_path / "at-a", tmp_path / "at-b", tmp_path / "stick"
    a, b = make("a"), make("b")
    a.sync(home_a, put(1, "a"))
    for rnd in range(3):
        shutil.copytree(home_a, stick, dirs_exist_ok=True)       # a's place -> stick
        shutil.rmtree(home_b, ignore_errors=True)
        shutil.copytree(stick, home_b)                           # stick -> b's place
        b.sync(home_b, put(rnd, "b"))
        shutil.rmtree(stick)
        shutil.copytree(home_b, stick)                           # and back
        shutil.rmtree(home_a)
        shutil.copytree(stick, home_a)
        a.sync(home_a, put(rnd + 10, "a"))
        shutil.rmtree(stick)
    shutil.copytree(home_a, home_b, dirs_exist_ok=True)
    b.sync(home_b)
    assert converged(a, b)


def test_half_copied_segment_is_ignored_until_whole(
    make: Callable[[str], Node], tmp_path: Path,
) -> None:
    box, copy = tmp_path / "box", tmp_path / "copy"
    a, b = make("a"), make("b")
    a.sync(box, lambda t: [put(i)(t) for i in range(30)])
    seg = next((box / f"{a.id:016x}").glob("*.seg"))
    (copy / seg.parent.name).mkdir(parents=True)
    (copy / seg.parent.name / seg.name).write_bytes(seg.read_bytes()[: seg.stat().st_size // 2])
    before = b.digest()
    report = b.sync(copy)
    assert [f.path.name for f in report.rejected] == [seg.name]
    assert "checksum" in str(report.rejected[0]) and b.digest() == before
    shutil.copytree(box, copy, dirs_exist_ok=True)  # the copy finishes
    report = b.sync(copy)
    assert not report.rejected and report.applied == 31 and b.digest() == a.digest()


# ------------------------------------------------------------------ retention and snapshots


def test_log_truncated_and_segments_deleted_once_all_acked(
    make: Callable[[str], Node], tmp_path: Path,
) -> None:
    box = tmp_path / "box"
    a, b = make("a"), make("b")
    a.sync(box, lambda t: [put(i)(t) for i in range(10)])
    assert a.do(lambda s: s.log_floor()) == {}
    b.sync(box)
    a_vv = a.vv()[a.id]
    r = a.sync(box)  # a now reads b's state: b holds everything of a
    assert r.removed >= a_vv and r.deleted
    assert a.do(lambda s: s.log_floor())[a.id] == a_vv
    # the changes files are gone; one snapshot stays, for whoever joins next
    left = sorted(p.name for p in (box / f"{a.id:016x}").glob("*.seg"))
    assert left and all(n.endswith("-snapshot.seg") for n in left)
    assert converged(a, b)


def test_new_node_joins_from_a_snapshot(make: Callable[[str], Node], tmp_path: Path) -> None:
    box = tmp_path / "box"
    a, b = make("a"), make("b")
    for i in range(4):
        a.sync(box, put(i, "a"))
        b.sync(box, put(i, "b"))
    a.sync(box)
    assert a.do(lambda s: s.log_floor()) != {}
    c = make("c")
    r = c.sync(box)  # the old changes files are gone, but a's standing snapshot is there
    assert r.items and c.digest() == a.digest()  # at once: no round trip through c's state
    for n in (b, c, a, b, c):
        n.sync(box)
    assert converged(a, b, c)
    # and by hand: export from a truncated log is a snapshot a fresh store can import
    d = make("d")
    out = tmp_path / "snap"
    files = a.do(lambda s: replication.export_changes(s, out))
    assert files[0].name.endswith("-snapshot.seg")
    d.do(lambda s: replication.import_changes(s, out))
    assert d.digest() == a.digest()


def test_tombstones_purged_once_stable_kept_before(
    make: Callable[[str], Node], tmp_path: Path,
) -> None:
    box = tmp_path / "box"
    a, b = make("a"), make("b")
    a.sync(box, lambda t: [put(i)(t) for i in range(4)])
    b.sync(box)
    a.sync(box, lambda t: t.delete("c1", "x1"))
    assert a.get("c1", "x1") is None and a.records() == 4  # the tombstone is a record
    a.sync(box)
    assert a.records() == 4  # b has not acknowledged the delete
    b.sync(box)
    assert b.records() == 3  # b holds it, and knows a does: stable from where b stands
    a.sync(box)
    assert a.records() == 3  # now a knows b has it
    b.sync(box)
    assert converged(a, b)


def test_forget_lets_gc_proceed_and_refuses_the_forgotten(
    make: Callable[[str], Node], tmp_path: Path,
) -> None:
    box = tmp_path / "box"
    a, b, c = make("a"), make("b"), make("c")
    for n in (a, b, c, a, b):
        n.sync(box, put(1, n.name))
    c.do(lambda s: s.table("orders").delete("c1", "a1"))  # c's last words, never synced
    # c dies for good. a and b keep working; a's log only grows while c is a member.
    for i in range(3):
        a.sync(box, put(10 + i, "a"))
        b.sync(box)
    floor = a.do(lambda s: s.log_floor()).get(a.id, 0)
    a.do(lambda s: replication.forget(s, c.id))
    a.sync(box)
    b.sync(box)  # b adopts the forget from a's state file
    a.sync(box)
    assert c.id in b.do(lambda s: s.forgotten())
    assert a.do(lambda s: s.log_floor())[a.id] > floor
    # c comes back: refused, and its delete never applies
    rc = c.sync(box)
    assert any("forgotten this node" in w for w in rc.warnings)
    r = a.sync(box)
    assert c.id in r.refused and isinstance(r.refused[c.id], engine.ForgottenNodeError)
    assert a.get("c1", "a1") is not None and b.get("c1", "a1") is not None
    # c rejoins as a new store and gets everything from a snapshot
    shutil.rmtree(box / f"{c.id:016x}")
    c2 = make("c2")
    c2.sync(box)
    a.sync(box)
    c2.sync(box)
    assert c2.digest() == a.digest()


def test_no_deleted_item_comes_back_through_a_long_offline_node(
    make: Callable[[str], Node], tmp_path: Path,
) -> None:
    box = tmp_path / "box"
    a, b, c = make("a"), make("b"), make("c")
    for n in (a, b, c, a, b, c):
        n.sync(box, put(7, n.name))
    assert c.get("c3", "a7") is not None
    CLOCK.advance(-50)  # c's next write will carry an older clock than a's delete
    c.do(lambda s: s.table("orders").update("c3", "a7", set={"note": "offline edit"}))
    CLOCK.advance(50)
    a.sync(box, lambda t: t.delete("c3", "a7"))
    for _ in range(5):  # a long time passes without c
        a.sync(box, put(len(str(_)), "z"))
        b.sync(box)
    assert a.do(lambda s: s.stats()["items"]) >= 4  # the tombstone is still there
    for n in (c, a, b, c, a, b):
        n.sync(box)
    assert converged(a, b, c)
    assert a.get("c3", "a7") is None and c.get("c3", "a7") is None
    for n in (a, b, c, a, b, c):
        n.sync(box)
    assert a.get("c3", "a7") is None and converged(a, b, c)
    assert a.do(lambda s: V.load_acks(s)).keys() == {b.id, c.id}


def test_bad_state_and_junk_files_are_reported_not_fatal(
    make: Callable[[str], Node], tmp_path: Path,
) -> None:
    box = tmp_path / "box"
    a, b = make("a"), make("b")
    a.sync(box, put(1, "a"))
    folder = box / f"{a.id:016x}"
    state = (folder / "state.cbor").read_bytes()
    (folder / "state.cbor").write_bytes(state[:-3])
    (folder / f"{'0' * 16}-{a.id:016x}-changes.seg").write_bytes(b"\x89RGDBSEG junk")
    (folder / ".partial.seg.abc.tmp").write_bytes(b"half")
    (box / "README.txt").write_text("not a node")
    r = b.sync(box)
    assert any("state of" in w for w in r.warnings)
    assert [f.path.name for f in r.rejected] == [f"{'0' * 16}-{a.id:016x}-changes.seg"]
    assert b.get("c1", "a1") is not None  # the good segment still applied
    (folder / "state.cbor").write_bytes(state)
    (box / f"{b.id:016x}" / "state.cbor").write_bytes(b"garbage")  # our own, too
    r = b.sync(box)
    assert any("own state file unreadable" in w for w in r.warnings)
    a.sync(box)
    b.sync(box)
    assert converged(a, b)


def test_file_partly_held_for_clock_skew_is_imported_again_later(tmp_path: Path) -> None:
    """A mailbox file whose changes applied in part (the rest held for clock skew) must not be
    remembered as seen: its sender never writes those changes again, so the held ones would
    never arrive."""
    box = tmp_path / "box"
    clock_x, clock_b = engine.ManualClock(), engine.ManualClock()
    with engine.open(tmp_path / "x", region="r-x", wall_clock=clock_x) as x, \
            engine.open(tmp_path / "b", region="r-b", wall_clock=clock_b) as b:
        replication.sync_dir(b, box)  # b is a member from the start
        x.create_table("t", partition_key="k")  # x:1, clock in step
        clock_x.advance(60_000)  # then x's clock runs a minute ahead
        x.table("t").put({"k": "late"})  # x:2
        replication.sync_dir(x, box)
        first = replication.sync_dir(b, box)
        assert first.applied == 1 and first.held == 1
        assert b.version_vector() == {x.node_id: 1}
        clock_b.advance(60_000)  # real time catches up
        replication.sync_dir(x, box)
        replication.sync_dir(b, box)
        assert b.version_vector() == x.version_vector()
        assert b.table("t").get("late") == {"k": "late"}


@pytest.mark.parametrize("body", [
    {"acks": {"zz": {}}},  # a node id that is not an int
    {"acks": {-5: {}}},  # nor a u64
    {"acks": {1 << 64: {}}},
    {"acks": {1.5: {}}},
    {"forgotten": [-1]},
    {"forgotten": [1 << 64]},
])
def test_state_file_with_bad_node_ids_is_a_warning(
    make: Callable[[str], Node], tmp_path: Path, body: dict[str, Any],
) -> None:
    """A well-checksummed state file whose node ids are not u64s is reported, not raised, and
    teaches the store nothing (no bogus member that would block garbage collection)."""
    from replication.mailbox import _encode_state

    box = tmp_path / "box"
    a, b = make("a"), make("b")
    a.sync(box, put(1, "a"))
    full = {"node": a.id, "region": "r-a", "vv": a.vv(), "acks": {}, "forgotten": [],
            "files": {}, "updated_hlc": 1, **body}
    (box / f"{a.id:016x}" / "state.cbor").write_bytes(_encode_state(full))
    r = b.sync(box)
    assert any("state of" in w for w in r.warnings)
    acks, forgotten = b.do(lambda s: (V.load_acks(s), s.forgotten()))
    assert set(acks) <= {a.id} and forgotten == frozenset()
    a.sync(box)
    b.sync(box)  # and b still syncs
    assert b.get("c1", "a1") is not None


def test_only_node_folders_are_read_from_a_mailbox(tmp_path: Path) -> None:
    """Folders that merely parse as hex (signs, underscores, upper case, node 0) are not nodes."""
    from replication.mailbox import _node_dirs

    for name in ("00000000000000ab", "-000000000000001", "0000_0000_0000_1", "00000000000000AB",
                 "0000000000000000", "notanode"):
        (tmp_path / name).mkdir()
    assert [(n, p.name) for n, p in _node_dirs(tmp_path)] == [(0xAB, "00000000000000ab")]


def test_stale_temp_files_of_a_crash_are_cleaned_from_our_own_folder(
    make: Callable[[str], Node], tmp_path: Path,
) -> None:
    import os
    import time

    from replication.mailbox import STALE_TEMP_SECONDS

    box = tmp_path / "box"
    a, b = make("a"), make("b")
    a.sync(box)
    b.sync(box)
    own, other = box / f"{a.id:016x}", box / f"{b.id:016x}"
    old = time.time() - STALE_TEMP_SECONDS - 60
    for folder in (own, other):
        for name in (".x.seg.0001.tmp", ".state.cbor.0002.tmp"):
            (folder / name).write_bytes(b"half a file")
            os.utime(folder / name, (old, old))
    (own / ".y.seg.0003.tmp").write_bytes(b"a write in progress")  # fresh: left alone
    report = a.sync(box)
    assert sorted(p.name for p in own.glob(".*.tmp")) == [".y.seg.0003.tmp"]
    assert {own / ".x.seg.0001.tmp", own / ".state.cbor.0002.tmp"} <= set(report.deleted)
    assert len(list(other.glob(".*.tmp"))) == 2  # another node's folder is never touched
