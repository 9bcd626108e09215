"""replication.exchange racing garbage collection (issue 10 item 7)."""

from __future__ import annotations

from collections.abc import Callable

import engine
from replication import exchange as ex
from replication.segment import decode_segment

MakeStore = Callable[..., engine.Store]


def test_snapshot_racing_gc_falls_back_instead_of_escaping(make_store: MakeStore) -> None:
    """GC truncates what the tail after a snapshot would send: the sender sends a fresh
    snapshot and carries on (it raised LogTruncated, and the parts already sent were wasted)."""
    a = make_store("a")
    t = a.create_table("orders", partition_key="id")
    for i in range(5):
        t.put({"id": i, "v": i})
    it = ex.iter_segments(a, {}, force_snapshot=True)
    first = next(it)
    assert first[0].kind == "snapshot"
    # meanwhile: new writes, already stable and truncated
    for i in range(5, 9):
        t.put({"id": i, "v": i})
    t.update(0, set={"v": "late"})
    a.compact(a.version_vector())
    rest = list(it)  # no LogTruncated
    assert any(h.kind == "snapshot" for h, _ in rest)
    b = make_store("b")
    for _, data in [first, *rest]:
        ex.apply_segment(b, decode_segment(data))
    assert b.digest() == a.digest()
    assert b.table("orders").get(0) == {"id": 0, "v": "late"}
    assert b.table("orders").get(8) == {"id": 8, "v": 8}
