"""Restoring a node from a backup in place (same inode) must not silently reuse seqs
(issue 10 item 3): the node notices at first contact, re-identifies, takes back what its peers
hold of its old id and re-issues its own writes that collided, so both sides converge with
nothing lost."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import engine
from engine import lineage
from replication.mailbox import sync_dir

pytestmark = pytest.mark.integration


def _items(store: engine.Store) -> dict[str, int]:
    return {i["id"]: i["v"] for i in store.table("t").scan()}


def _restore_in_place(backup: Path, store_dir: Path, *, whole: bool = False) -> None:
    """``cp backup/data.mdb store/``; ``whole``: the directory's other files too, as ``rm -rf
    store && cp -a backup store`` does on a filesystem that reuses the inode (the lineage
    stamp then comes from the backup: only the first contact can tell)."""
    ino = os.stat(store_dir / "data.mdb").st_ino
    shutil.copyfile(backup / "data.mdb", store_dir / "data.mdb")  # `cp backup/data.mdb store/`
    assert os.stat(store_dir / "data.mdb").st_ino == ino  # the copy check cannot see it
    if whole:
        (store_dir / lineage.STAMP_FILE).unlink()
        if (backup / lineage.STAMP_FILE).exists():
            shutil.copyfile(backup / lineage.STAMP_FILE, store_dir / lineage.STAMP_FILE)


@pytest.mark.parametrize("lost,rewritten", [(2, 2), (3, 1), (1, 3)])
def test_restore_in_place_through_the_mailbox_loses_nothing(
    tmp_path: Path, lost: int, rewritten: int
) -> None:
    box, a_dir, b_dir, backup = (tmp_path / n for n in ("box", "a", "b", "backup"))
    with engine.open(a_dir, region="r-a") as a:
        t = a.create_table("t", partition_key="id")
        for i in range(3):
            t.put({"id": f"x{i}", "v": i})
        old = a.node_id
        sync_dir(a, box)
    with engine.open(b_dir, region="r-b") as b:
        sync_dir(b, box)
    backup.mkdir()
    shutil.copyfile(a_dir / "data.mdb", backup / "data.mdb")  # a backup of the closed store
    with engine.open(a_dir) as a:  # writes after the backup, which the restore will lose
        for i in range(lost):
            a.table("t").put({"id": f"lost{i}", "v": i})
        sync_dir(a, box)
    with engine.open(b_dir) as b:
        sync_dir(b, box)
        assert set(_items(b)) >= {f"lost{i}" for i in range(lost)}
    _restore_in_place(backup, a_dir, whole=True)
    with engine.open(a_dir) as a:
        assert a.node_id == old  # nothing noticed yet: same inode
        for i in range(rewritten):  # the same seqs again, other content
            a.table("t").put({"id": f"new{i}", "v": 100 + i})
        sync_dir(a, box)  # first contact: the fork is noticed here
        assert a.node_id != old
        events = a.lineage_events()
        assert events and events[-1]["old"] == old and "restored from a backup" in \
            events[-1]["reason"]
    for _ in range(3):
        for d in (b_dir, a_dir):
            with engine.open(d) as s:
                sync_dir(s, box)
    with engine.open(a_dir) as a, engine.open(b_dir) as b:
        want = {f"x{i}" for i in range(3)} | {f"lost{i}" for i in range(lost)} | \
            {f"new{i}" for i in range(rewritten)}
        assert set(_items(a)) == want
        assert a.digest() == b.digest()
        assert a.pending_reissues() == 0


def test_regiondb_restore_reidentifies_up_front(tmp_path: Path) -> None:
    box, a_dir, b_dir, backup = (tmp_path / n for n in ("box", "a", "b", "backup"))
    with engine.open(a_dir, region="r-a") as a:
        t = a.create_table("t", partition_key="id")
        t.put({"id": "x", "v": 1})
        old = a.node_id
        sync_dir(a, box)
    shutil.copytree(a_dir, backup)
    with engine.open(a_dir) as a:
        a.table("t").put({"id": "lost", "v": 2})
        sync_dir(a, box)
    with engine.open(b_dir, region="r-b") as b:
        sync_dir(b, box)
    out = subprocess.run([sys.executable, "-m", "regiondb", "restore", str(backup), str(a_dir),
                          "--json"], capture_output=True, text=True, timeout=60, check=True)
    info = json.loads(out.stdout)
    assert info["old_node_id"] == f"{old:016x}" and info["node_id"] != info["old_node_id"]
    with engine.open(a_dir) as a:
        assert a.node_id != old
        a.table("t").put({"id": "after", "v": 3})
    status = subprocess.run([sys.executable, "-m", "regiondb", "status", str(a_dir), "--json"],
                            capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(status.stdout)["reidentified"][0]["old"] == f"{old:016x}"
    for _ in range(3):
        for d in (b_dir, a_dir):
            with engine.open(d) as s:
                sync_dir(s, box)
    with engine.open(a_dir) as a, engine.open(b_dir) as b:
        assert set(_items(a)) == {"x", "lost", "after"}
        assert a.digest() == b.digest()


def test_restore_in_place_over_tcp_loses_nothing(tmp_path: Path) -> None:
    """The same over a socket: the handshake carries the tips; the restored node notices,
    re-identifies and syncs again as its new self."""
    import replication

    a_dir, b_dir, backup = (tmp_path / n for n in ("a", "b", "backup"))
    with engine.open(b_dir, region="r-b") as b, replication.serve(b) as server:
        addr = server.address
        with engine.open(a_dir, region="r-a") as a:
            t = a.create_table("t", partition_key="id")
            for i in range(3):
                t.put({"id": f"x{i}", "v": i})
            old = a.node_id
            replication.sync(a, addr)
        backup.mkdir()
        shutil.copyfile(a_dir / "data.mdb", backup / "data.mdb")
        with engine.open(a_dir) as a:
            for i in range(2):
                a.table("t").put({"id": f"lost{i}", "v": i})
            replication.sync(a, addr)
        _restore_in_place(backup, a_dir, whole=True)
        with engine.open(a_dir) as a:
            assert a.node_id == old
            for i in range(2):  # as many writes as were lost: the vvs alone look equal
                a.table("t").put({"id": f"new{i}", "v": 100 + i})
            replication.sync(a, addr)
            assert a.node_id != old
            replication.sync(a, addr)  # re-issued writes go out
            want = {"x0", "x1", "x2", "lost0", "lost1", "new0", "new1"}
            assert set(_items(a)) == want
            assert set(_items(b)) == want
            assert a.digest() == b.digest()
            assert a.pending_reissues() == 0


def _counts(store: engine.Store) -> dict[str, object]:
    item = store.table("c").get("k") or {}
    return {"n": item.get("n"), "tags": item.get("tags")}


def test_restore_in_place_keeps_counter_adds_and_set_adds(tmp_path: Path) -> None:
    """Counter ADDs and set adds in the lost commits come back from the peer; those made
    again under the same seqs before the first contact are re-issued as ADDs (not dropped,
    and not counted twice)."""
    box, a_dir, b_dir, backup = (tmp_path / n for n in ("box", "a", "b", "backup"))
    with engine.open(a_dir, region="r-a") as a:
        t = a.create_table("c", partition_key="id")
        t.update("k", add={"n": 1, "tags": {"red"}})
        sync_dir(a, box)
    with engine.open(b_dir, region="r-b") as b:
        sync_dir(b, box)
    backup.mkdir()
    shutil.copyfile(a_dir / "data.mdb", backup / "data.mdb")
    with engine.open(a_dir) as a:  # lost here, held by b
        a.table("c").update("k", add={"n": 10})
        a.table("c").update("k", add={"tags": {"big"}})
        sync_dir(a, box)
    with engine.open(b_dir) as b:
        sync_dir(b, box)
        b.table("c").update("k", add={"n": 1000})
        sync_dir(b, box)
    _restore_in_place(backup, a_dir)
    with engine.open(a_dir) as a:
        a.table("c").update("k", add={"n": 100})  # the same two seqs, other content
        a.table("c").update("k", add={"tags": {"blue"}})
        a.table("c").update("k", delete={"tags": {"red"}})
        sync_dir(a, box)
    for _ in range(3):
        for d in (b_dir, a_dir):
            with engine.open(d) as s:
                sync_dir(s, box)
    with engine.open(a_dir) as a, engine.open(b_dir) as b:
        assert _counts(a) == _counts(b) == {"n": 1111, "tags": {"big", "blue"}}
        assert a.digest() == b.digest()


def test_a_restore_undoes_no_later_write_after_gc(tmp_path: Path) -> None:
    """The backup's own writes that its peers garbage-collected (they hold them only as item
    states) are not written again: a later write of another node stays."""
    from replication import collect_garbage

    box, a_dir, b_dir, backup = (tmp_path / n for n in ("box", "a", "b", "backup"))
    with engine.open(a_dir, region="r-a") as a:
        a.create_table("t", partition_key="id").put({"id": "x", "v": 1})
        sync_dir(a, box)
    shutil.copytree(a_dir, backup)
    with engine.open(a_dir) as a:
        a.table("t").put({"id": "y", "v": 1})
        sync_dir(a, box)
    with engine.open(b_dir, region="r-b") as b:
        sync_dir(b, box)
        b.table("t").put({"id": "x", "v": 2})  # overwrites a's first write
        for _ in range(2):
            sync_dir(b, box)
            with engine.open(a_dir) as a:
                sync_dir(a, box)
                collect_garbage(a)
        sync_dir(b, box)
        collect_garbage(b)
    subprocess.run([sys.executable, "-m", "regiondb", "restore", str(backup), str(a_dir)],
                   capture_output=True, text=True, timeout=60, check=True)
    for _ in range(3):
        for d in (a_dir, b_dir):
            with engine.open(d) as s:
                sync_dir(s, box)
    with engine.open(a_dir) as a, engine.open(b_dir) as b:
        assert _items(a) == _items(b) == {"x": 2, "y": 1}
        assert a.digest() == b.digest()
        assert a.pending_reissues() == 0


def test_a_data_file_restored_in_place_is_noticed_at_open(tmp_path: Path) -> None:
    """``cp backup/data.mdb store/`` over a store that was closed after more writes: the
    store notices when it opens (its lineage stamp holds more of its id than the data) and
    takes a new id before it writes anything."""
    a_dir, backup = tmp_path / "a", tmp_path / "backup"
    with engine.open(a_dir, region="r-a") as a:
        a.create_table("t", partition_key="id").put({"id": "x", "v": 1})
        old = a.node_id
    backup.mkdir()
    shutil.copyfile(a_dir / "data.mdb", backup / "data.mdb")
    with engine.open(a_dir) as a:
        a.table("t").put({"id": "lost", "v": 2})
    _restore_in_place(backup, a_dir)
    with engine.open(a_dir) as a:
        assert a.node_id != old
        assert a.version_vector()[old] == 2  # its old log is kept, as an ordinary origin
        assert a.pending_reissues() == 0
        [event] = a.lineage_events()
        assert event["old"] == old and "restored" in event["reason"]
    with engine.open(a_dir) as a:  # and only once
        assert len(a.lineage_events()) == 1


def test_a_whole_restore_over_tcp_with_a_third_node_counts_every_add_once(
    tmp_path: Path,
) -> None:
    """The whole directory restored (stamp included): the node ADDs again under its old id
    and node c takes those forked writes first, then adds on top; node b holds what was lost
    and refuses c's continuation of the other history. The restored node notices at its
    contact with b and relabels; c drops its forked copies when the relabeled ones arrive.
    Every ADD counts once, on every node."""
    import replication

    a_dir, b_dir, c_dir, backup = (tmp_path / n for n in ("a", "b", "c", "backup"))
    with engine.open(b_dir, region="r-b") as b, engine.open(c_dir, region="r-c") as c, \
            replication.serve(b) as sb, replication.serve(c) as sc:
        with engine.open(a_dir, region="r-a") as a:
            a.create_table("c", partition_key="id").update("k", add={"n": 1})
            old = a.node_id
            replication.sync(a, sb.address)
            replication.sync(a, sc.address)
        shutil.copytree(a_dir, backup)  # the whole closed directory, stamp included
        with engine.open(a_dir) as a:
            a.table("c").update("k", add={"n": 10})  # lost: only b takes it
            replication.sync(a, sb.address)
        _restore_in_place(backup, a_dir, whole=True)
        with engine.open(a_dir) as a:
            assert a.node_id == old  # nothing can tell yet
            a.table("c").update("k", add={"n": 100}, set={"x": 1})
            replication.sync(a, sc.address)  # c lacks the lost write: nothing looks wrong
        assert _counts(c)["n"] == 101
        c.table("c").update("k", add={"n": 1000})
        replication.sync(c, sb.address)  # b refuses c's continuation of a's other history
        assert b.version_vector()[old] == 3 and _counts(b)["n"] == 1011
        with engine.open(a_dir) as a:
            replication.sync(a, sb.address)  # noticed here
            new = a.node_id
            assert new != old
            for _ in range(2):
                replication.sync(a, sb.address)
                replication.sync(a, sc.address)
                replication.sync(c, sb.address)
            assert _counts(a)["n"] == _counts(b)["n"] == _counts(c)["n"] == 1111
            assert a.digest() == b.digest() == c.digest()
            assert a.version_vector() == b.version_vector() == c.version_vector()
            assert a.version_vector()[new] == 1  # the forked write, now the new id's first
            assert a.integrity_check().ok and c.integrity_check().ok
