"""N replicas exchanging segments any which way, with every edge of membership (copies,
newcomers whose first snapshot is cut, backups restored in place or through ``regiondb
restore``, GC between steps), converge to the oracle. The machine and the oracles live in
:mod:`tests.property.replmodel` (shared with ``test_counter_model.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings
from replmodel import MailboxReplicationModel, ReplicationModel

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
@pytest.mark.parametrize("in_place", [True, False])
def test_a_restore_with_counters_and_sets_loses_nothing(
    model: type[ReplicationModel], in_place: bool
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
    m.restore(pick=0, in_place=in_place, peer=1)
    m.write(node=0, op=("add", ("a", "1"), {"n": 5}, ()))
    m.write(node=0, op=("tag", ("a", "1"), {"tags": frozenset({"blue"})}, True))
    m.write(node=1, op=("add", ("a", "1"), {"n": -1}, ()))
    m.write(node=2, op=("put", ("b", "1"), {"x": 2}, ()))      # later than the backup's
    m.gc_everywhere()
    m.teardown()



def test_a_snapshot_of_an_empty_vv_completes(tmp_path: Path) -> None:
    """A node that re-identified (at a contact) before any change of another node arrived has
    an empty vv: its snapshot's parts each count as the last, and a part of table records
    alone no longer raises IndexError."""
    with engine.open(tmp_path / "a", region="r-a") as a, \
            engine.open(tmp_path / "b", region="r-b") as b:
        a.create_table("t", partition_key="id")
        a.reidentify("test: a fork noticed at a contact")
        assert not any(a.version_vector().values())
        reports = [ex.apply_segment(b, decode_segment(data)) for _, data in ex.iter_segments(
            a, {}, force_snapshot=True, max_bytes=400, max_records=3)]
        assert reports and reports[-1].snapshot_complete
        assert b.tables() == ["t"]
