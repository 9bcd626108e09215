"""Convergence at the edges of membership, over real TCP and a real mailbox folder.

A newcomer whose first sync is cut mid-snapshot, and an old copy of a node's directory opened
after garbage collection, must end equal to everyone else: nothing deleted comes back, nothing
is kept for ever (DESIGN.md, "The edges of membership"; docs/replication.md).
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from faultproxy import FaultProxy
from waiting import converged

import engine
from replication import exchange, sync_dir
from replication import vv as V
from replication.net import NetOptions, serve, sync

pytestmark = pytest.mark.integration

OPTS = NetOptions(segment_bytes=64 * 1024, handshake_timeout=5, ack_flush_interval=0.2)


def fill(store: engine.Store, n: int, pad: int = 0) -> None:
    store.create_table("t", partition_key="id")
    with store.batch() as b:
        for i in range(n):
            b.put("t", {"id": f"k{i:06d}", "pad": secrets.token_hex(pad // 2)})


def test_newcomer_cut_mid_snapshot_is_a_member_and_converges(
    make_store: Any, closing: list[Callable[[], None]],
) -> None:
    a, b, n = make_store("a"), make_store("b"), make_store("n")
    fill(a, 3000, pad=200)
    server = serve(a, options=OPTS)
    closing.append(server.close)
    sync(b, server.address, timeout=20, options=OPTS)
    sync(b, server.address, timeout=20, options=OPTS)  # a learns b's full acknowledgement
    assert exchange.collect_garbage(a)[0] > 0 and a.log_floor()  # logs truncated
    with FaultProxy(("127.0.0.1", server.address[1])) as proxy:
        proxy.cut_after(300_000)  # a few parts of a ~700 kB snapshot
        with pytest.raises((ConnectionError, OSError, EOFError, engine.Error)):
            sync(n, proxy.address, timeout=20, options=OPTS)
    held = n.table("t").get("k000001")
    assert held is not None and n.version_vector() == {}  # part of the snapshot, no vv
    # The handshake made n a member: garbage collection now waits for it.
    assert n.node_id in V.load_acks(a)
    a.table("t").delete("k000001")
    sync(b, server.address, timeout=20, options=OPTS)
    assert exchange.collect_garbage(a) == (0, 0)
    assert exchange.collect_garbage(b) == (0, 0)
    report = sync(n, server.address, timeout=30, options=OPTS)
    assert n.table("t").get("k000001") is None, report
    sync(b, server.address, timeout=20, options=OPTS)
    assert converged(a, b, n)
    sync(n, server.address, timeout=20, options=OPTS)  # a hears n's full acknowledgement
    assert exchange.collect_garbage(a)[1] >= 1  # and the tombstone goes at last


def _old_copy(make_store: Any, tmp_path: Path, via: Callable[[engine.Store, engine.Store], None]
              ) -> tuple[engine.Store, engine.Store, engine.Store]:
    """a and c hold 50 items; c's directory is copied; a deletes two items and removes an
    attribute, and a and c purge those tombstones. Returns ``(a, c, copy)`` with the copy
    opened (it takes a new node id) but not yet synced."""
    a = make_store("a")
    fill(a, 50)
    a.table("t").update("k000003", set={"coupon": "X"})
    c = make_store("c")
    for _ in range(2):
        via(c, a)
    c.close()
    shutil.copytree(tmp_path / "c", tmp_path / "copy")
    c = make_store("c")
    for key in ("k000000", "k000049"):
        a.table("t").delete(key)
    a.table("t").update("k000003", remove=["coupon"])
    for _ in range(2):
        via(c, a)
    for s in (a, c):  # the tombstones are gone (sync_dir collects garbage itself)
        exchange.collect_garbage(s)
        assert s.stats()["items"] == 48, (s, s.log_floor(), V.load_acks(s), s.version_vector())
    copy = make_store("copy", region="r-c")
    assert copy.node_id != c.node_id and copy.table("t").get("k000000") is not None
    return a, c, copy


def _gone(store: engine.Store) -> bool:
    t = store.table("t")
    return t.get("k000000") is None and t.get("k000049") is None \
        and "coupon" not in (t.get("k000003") or {"coupon": 1})


def test_old_copy_reconciles_over_tcp(make_store: Any, tmp_path: Path,
                                      closing: list[Callable[[], None]]) -> None:
    servers: dict[int, Any] = {}

    def via(x: engine.Store, y: engine.Store) -> None:
        if y.node_id not in servers:
            servers[y.node_id] = serve(y, options=OPTS)
            closing.append(servers[y.node_id].close)
        sync(x, servers[y.node_id].address, timeout=20, options=OPTS)

    a, c, copy = _old_copy(make_store, tmp_path, via)
    via(copy, a)
    assert _gone(copy)
    via(c, a)
    via(copy, a)
    assert converged(a, c, copy)


def test_old_copy_reconciles_through_the_mailbox(make_store: Any, tmp_path: Path) -> None:
    box = tmp_path / "mailbox"

    def via(x: engine.Store, y: engine.Store) -> None:
        sync_dir(x, box)
        sync_dir(y, box)

    a, c, copy = _old_copy(make_store, tmp_path, via)
    for _ in range(3):
        for s in (copy, a, c):
            sync_dir(s, box)
    assert _gone(copy)
    assert converged(a, c, copy)
