"""N replicas exchanging segments any which way, with every edge of membership (copies,
newcomers whose first snapshot is cut, backups restored in place or through ``regiondb
restore``, GC between steps), converge to the oracle. The machine and the oracles live in
:mod:`tests.property.replmodel` (shared with ``test_counter_model.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings
from replmodel import RESTORES, MailboxReplicationModel, ReplicationModel

import engine
from replication import exchange as ex
from replication.segment import decode_segment

TestReplicationModel = ReplicationModel.TestCase

TestMailboxReplicationModel = MailboxReplicationModel.TestCase
TestMailboxReplicationModel.settings = settings(max_examples=25, deadline=None)


class SlowReplicationModel(ReplicationModel):
    pass


SlowReplicationModel.TestCase.settings = settings(
    max_examples=300, stateful_step_count=120, deadline=None,
)
TestReplicationModelSlow = pytest.mark.slow(SlowReplicationModel.TestCase)


@pytest.mark.parametrize("model", [ReplicationModel, MailboxReplicationModel])
def test_the_moves_that_found_zombies(model: type[ReplicationModel]) -> None:
    """The sequences random search reaches only now and then, run every time: an old copy
    opened after a delete was purged, and a newcomer whose first snapshot was cut."""
    m = model()
    m.setup(n=3)
    m.write(node=0, op=("put", ("a", "1"), {"x": 1}, ()))
    m.write(node=0, op=("update", ("b", "2"), {"y": 2}, ()))
    m.gc_everywhere()
    m.save_copy(node=0)
    m.newcomer(parts=1)
    m.write(node=1, op=("delete", ("a", "1"), {}, ()))
    m.write(node=2, op=("update", ("b", "2"), {}, ("y",)))
    m.gc_everywhere()
    m.open_copy()
    m.reconcile(node=4, src=1)
    m.write(node=4, op=("update", ("b", "2"), {"z": 3}, ()))
    m.teardown()  # the full exchange and the oracle check


@pytest.mark.parametrize("model", [ReplicationModel, MailboxReplicationModel])
@pytest.mark.parametrize("mode", RESTORES)
def test_a_restore_with_counters_and_sets_loses_nothing(
    model: type[ReplicationModel], mode: str
) -> None:
    """A backup restored after the node wrote counter ADDs and set adds (held by a peer, lost
    here) and its peers garbage-collected them; then more of them on the restored node."""
    m = model()
    m.setup(n=3)
    m.write(node=0, op=("add", ("a", "1"), {"n": 2}, ()))
    m.write(node=0, op=("tag", ("a", "1"), {"tags": frozenset({"red"})}, True))
    m.backup(node=0)
    m.gc_everywhere()
    m.write(node=0, op=("add", ("a", "1"), {"n": 3}, ()))     # lost here, held by peers
    m.write(node=0, op=("tag", ("a", "1"), {"tags": frozenset({"big"})}, True))
    m.write(node=0, op=("update", ("b", "2"), {"x": 1}, ()))
    m.write(node=1, op=("put", ("b", "1"), {"x": 1}, ()))
    m.gc_everywhere()
    m.restore(pick=0, mode=mode, peer=1)
    m.write(node=0, op=("add", ("a", "1"), {"n": 5}, ()))
    m.write(node=0, op=("tag", ("a", "1"), {"tags": frozenset({"blue"})}, True))
    m.write(node=1, op=("add", ("a", "1"), {"n": -1}, ()))
    m.write(node=2, op=("put", ("b", "1"), {"x": 2}, ()))      # later than the backup's
    m.gc_everywhere()
    m.teardown()



def test_a_snapshot_of_an_empty_vv_completes(tmp_path: Path) -> None:
    """A snapshot of a node that re-identified (at a contact, its writes relabeled) completes,
    and a part of table records alone no longer raises IndexError."""
    with engine.open(tmp_path / "a", region="r-a") as a, \
            engine.open(tmp_path / "b", region="r-b") as b:
        a.create_table("t", partition_key="id")
        new = a.reidentify("test: a fork noticed at a contact")
        assert a.version_vector() == {new: 1}  # the table's creation, now the new id's
        reports = [ex.apply_segment(b, decode_segment(data)) for _, data in ex.iter_segments(
            a, {}, force_snapshot=True, max_bytes=400, max_records=3)]
        assert reports and reports[-1].snapshot_complete
        assert b.tables() == ["t"]


# -- a whole directory restored, noticed only at a first contact (docs/operations.md) ------


def _send(m: ReplicationModel, src: int, dst: int) -> None:
    """Node ``src`` sends node ``dst`` everything it lacks (one direct exchange)."""
    for data in ex.segments_for(m.stores[src], m.stores[dst].version_vector()):
        m._apply(dst, data)
    m._after_exchange()


@pytest.mark.parametrize("model", [ReplicationModel, MailboxReplicationModel])
def test_a_counter_add_before_the_notice_counts_once(model: type[ReplicationModel]) -> None:
    """The restored node ADDs to a counter (and resets another) under its old id before it
    meets a peer holding what it lost: relabeled, each ADD counts once everywhere."""
    m = model()
    m.setup(n=3)
    m.write(node=0, op=("add", ("a", "1"), {"n": 2}, ()))
    m.backup(node=0)
    m.write(node=0, op=("add", ("a", "1"), {"n": 3}, ()))     # lost here, held by peers
    m.write(node=0, op=("add", ("b", "1"), {"n": 4}, ()))
    m.gc_everywhere()
    old = m.stores[0].node_id
    m.restore(pick=0, mode="whole", peer=1)
    assert m.stores[0].node_id == old
    m.write(node=0, op=("add", ("a", "1"), {"n": 5}, ()))     # forked: the same seqs
    m.write(node=0, op=("add", ("a", "1"), {"n": 7}, ()))
    m.write(node=0, op=("update", ("a", "1"), {"x": 1}, ()))
    m.write(node=0, op=("put", ("b", "1"), {"n": 1}, ()))     # a reset that saw a forked ADD
    m.write(node=1, op=("add", ("a", "1"), {"n": -1}, ()))
    _send(m, 1, 0)  # the first contact
    assert m.stores[0].node_id != old
    m.teardown()


@pytest.mark.parametrize("model", [ReplicationModel, MailboxReplicationModel])
def test_writes_before_the_backup_that_peers_gcd_are_not_written_again(
    model: type[ReplicationModel]
) -> None:
    """The backup's own writes, still in its log but garbage-collected by its peers (they
    hold them only as item states), stay the old id's: a later write of another node wins."""
    m = model()
    m.setup(n=3)
    m.write(node=0, op=("put", ("a", "1"), {"x": 1}, ()))
    m.write(node=0, op=("add", ("a", "2"), {"n": 1}, ()))
    _send(m, 0, 1)
    _send(m, 0, 2)
    m.backup(node=0)
    m.gc_everywhere()
    m.write(node=0, op=("update", ("b", "1"), {"y": 1}, ()))  # lost here
    m.gc_everywhere()
    m.write(node=1, op=("put", ("a", "1"), {"x": 2}, ()))     # later than the backup's
    m.gc_everywhere()
    m.restore(pick=0, mode="whole", peer=1)
    m.write(node=0, op=("update", ("b", "2"), {"z": 3}, ()))
    m.teardown()


@pytest.mark.parametrize("model", [ReplicationModel, MailboxReplicationModel])
def test_forked_writes_a_third_node_took_are_voided_there(
    model: type[ReplicationModel]
) -> None:
    """Node 2 takes the restored node's forked writes first (it lacked what was lost, so
    nothing looked wrong) and writes on top of them, a counter reset included. Node 1 holds
    the lost writes: it refuses node 2's continuation of the other history, the restored
    node notices at its contact with node 1, and node 2 drops its forked copies when the
    relabeled ones arrive, then takes the lost ones from node 1."""
    m = model()
    m.setup(n=3)
    m.write(node=0, op=("add", ("a", "1"), {"n": 2}, ()))
    m.gc_everywhere()
    m.backup(node=0)
    m.write(node=0, op=("add", ("a", "1"), {"n": 3}, ()))     # lost; only node 1 has it
    m.write(node=0, op=("update", ("b", "1"), {"x": 1}, ()))
    m.restore(pick=0, mode="whole", peer=1)
    m.write(node=0, op=("add", ("a", "1"), {"n": 5}, ()))     # forked
    m.write(node=0, op=("update", ("b", "1"), {"x": 2}, ()))
    m.write(node=0, op=("tag", ("b", "1"), {"tags": frozenset({"red"})}, True))
    _send(m, 0, 2)  # nothing tells node 2
    m.write(node=2, op=("add", ("a", "1"), {"n": 11}, ()))
    m.write(node=2, op=("update", ("a", "2"), {"n": 0}, ()))
    m.write(node=2, op=("put", ("a", "1"), {"n": 100}, ()))   # resets the forked chain
    m.write(node=2, op=("add", ("a", "1"), {"n": 1}, ()))
    _send(m, 2, 1)  # refused: another history of node 0
    m.write(node=1, op=("add", ("a", "1"), {"n": 1000}, ()))
    _send(m, 1, 0)  # the restored node notices here
    _send(m, 0, 2)  # the relabeled writes void node 2's copies
    m.teardown()
