"""Grouped applies of live replication, over real TCP on 127.0.0.1 (``replication.workers``).

Segments that wait for a receiver's apply thread together share one write transaction and one
durable commit, and each still gets its own answer: the commit count proves the grouping (a
counter, not a timing), a hostile segment in a group fails its own session alone, an ACK is
only sent once its group committed (a receiver SIGKILLed mid-stream holds everything it
acknowledged), and concurrent peers lose or reorder nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from waiting import converged, wait_until

import engine
from replication.net import NetOptions, Replicator, serve, sync
from replication.peers import hub_for
from replication.protocol import Hello, MsgType, client_handshake
from replication.segment import encode_segment

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FAST = NetOptions(heartbeat=0.5, idle_timeout=5.0, backoff_base=0.05, backoff_max=0.5,
                  ack_flush_interval=0.2, retry_delay=0.2, handshake_timeout=2.0)


def _fill(store: engine.Store, n: int, prefix: str) -> None:
    if "t" not in store.tables():
        store.create_table("t", partition_key="id")
    with store.batch() as b:
        for i in range(n):
            b.put("t", {"id": f"{prefix}{i:04d}"})


def _ids(store: engine.Store) -> set[str]:
    return {item["id"] for item in store.table("t").scan()} if "t" in store.tables() else set()


class _HoldApplies:
    """Occupy the server's apply thread with a job that waits until released: segments
    received meanwhile queue up behind it, and are then applied together."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.started = threading.Event()
        self.release = threading.Event()
        self.future: Any = None

    def _hold(self) -> None:
        self.started.set()
        self.release.wait(30)

    def __enter__(self) -> _HoldApplies:
        workers = self.server._inner._workers
        self.future = asyncio.run_coroutine_threadsafe(workers.apply(self._hold),
                                                       self.server._runner.loop)
        assert self.started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.future.result(30)


def _queued(server: Any) -> int:
    return int(server._inner._workers.apply_queue)


def _syncs(peers: list[engine.Store], address: Any, out: dict[str, Any]) -> list[threading.Thread]:
    def run(p: engine.Store) -> None:
        try:
            out[p.region] = sync(p, address, options=FAST, timeout=30)
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            out[p.region] = exc

    threads = [threading.Thread(target=run, args=(p,)) for p in peers]
    for t in threads:
        t.start()
    return threads


def test_segments_that_arrive_together_share_one_commit(
        make_store: Any, closing: list[Callable[[], None]]) -> None:
    hub = make_store("hub")
    server = serve(hub, options=FAST)
    closing.append(server.close)
    peers = [make_store(f"p{i}") for i in range(5)]
    for i, p in enumerate(peers):
        _fill(p, 20, f"p{i}-")
    results: dict[str, Any] = {}
    with _HoldApplies(server):
        threads = _syncs(peers, server.address, results)
        wait_until(lambda: _queued(server) >= 5, 20, "five segments queued")
    for t in threads:
        t.join(60)
    assert all(not isinstance(r, Exception) for r in results.values()), results
    counts = server.applies
    assert (counts.segments, counts.commits, counts.largest_group) == (5, 1, 5)
    assert _ids(hub) == {f"p{i}-{j:04d}" for i in range(5) for j in range(20)}
    for p in peers:
        assert hub.version_vector()[p.node_id] == p.version_vector()[p.node_id]


def _bad_segment(node: int, origin: int) -> bytes:
    _, data = encode_segment(kind="changes", sender=node, region="evil",
                             records=[(origin, 1, b"\x82\x1b" + b"\xff" * 8 + b"\x00")],
                             vv={origin: 1}, acks={}, forgotten=(), created_hlc=0,
                             compress=False)
    return data


async def _send_bad(port: int, sent: threading.Event) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    node = secrets.randbits(63) + 1
    me = Hello(node, "evil", {}, {}, frozenset(), mode="sync")
    _, channel = await client_handshake(reader, writer, me, None, timeout=5)
    writer.write(channel.seal(MsgType.SEGMENT, _bad_segment(node, node)))
    await writer.drain()
    sent.set()
    try:
        return await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()


def test_a_refused_segment_fails_only_its_own_session(
        make_store: Any, closing: list[Callable[[], None]]) -> None:
    hub = make_store("hub")
    server = serve(hub, options=FAST)
    closing.append(server.close)
    peers = [make_store(f"p{i}") for i in range(4)]
    for i, p in enumerate(peers):
        _fill(p, 10, f"p{i}-")
    results: dict[str, Any] = {}
    reply: list[bytes] = []
    sent = threading.Event()
    with _HoldApplies(server):
        threads = _syncs(peers[:1], server.address, results)
        wait_until(lambda: _queued(server) >= 1, 20, "a good segment queued")
        bad = threading.Thread(target=lambda: reply.append(
            asyncio.run(_send_bad(server.address[1], sent))))
        bad.start()
        assert sent.wait(20)
        wait_until(lambda: _queued(server) >= 2, 20, "the bad segment queued")
        threads += _syncs(peers[1:], server.address, results)
        wait_until(lambda: _queued(server) >= 5, 20, "the bad and four good segments queued")
    for t in [*threads, bad]:
        t.join(60)
    assert all(not isinstance(r, Exception) for r in results.values()), results
    assert _ids(hub) == {f"p{i}-{j:04d}" for i in range(4) for j in range(10)}
    assert b"bad change record" in reply[0]  # the ERROR the hostile peer got
    assert server.refused.get("SegmentError") == 1
    counts = server.applies
    assert (counts.segments, counts.commits, counts.largest_group) == (5, 1, 5)
    assert {c.origin for c in hub.changes()} <= {hub.node_id} | {p.node_id for p in peers}


class _Receiver:
    """A durable node in its own process (tests/integration/nodeproc.py), to SIGKILL."""

    def __init__(self, path: Path) -> None:
        args = [sys.executable, "-m", "tests.integration.nodeproc", "--store", str(path),
                "--region", "recv"]
        self.proc = subprocess.Popen(args, cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert self.proc.stdout is not None
        ready = json.loads(self.proc.stdout.readline())
        self.address = f"127.0.0.1:{ready['address'][1]}"
        self.node_id = int(ready["node_id"])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


def test_receiver_sigkilled_mid_stream_holds_all_it_acknowledged(
        make_store: Any, tmp_path: Path, closing: list[Callable[[], None]]) -> None:
    a = make_store("a", durable=False)
    _fill(a, 1, "a-")
    node = _Receiver(tmp_path / "recv")
    closing.append(node.kill)
    rep = Replicator(a, [node.address], options=FAST).start()
    closing.append(rep.stop)
    assert rep.wait_connected(10)
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            a.table("t").put({"id": f"a-live{i:06d}"})
            i += 1
            time.sleep(0.001)

    w = threading.Thread(target=writer, daemon=True)
    w.start()
    try:
        peer = hub_for(a)

        def acked() -> int:
            ps = peer.peers.get(node.node_id)
            return ps.acked.get(a.node_id, 0) if ps is not None else 0

        start = acked()
        wait_until(lambda: acked() >= start + 200, 30, "200 acknowledged changes")
        node.kill()  # mid-stream: segments in flight, groups being applied
        held = acked()  # every ACK the receiver sent is in by now (it is dead)
    finally:
        stop.set()
        w.join(10)
    with engine.open(tmp_path / "recv", region="recv") as recv:
        have = recv.version_vector().get(a.node_id, 0)
        assert have >= held, f"acknowledged up to seq {held} but holds only {have}"
        seqs = [c.seq for c in recv.changes() if c.origin == a.node_id]
        assert seqs == list(range(1, have + 1))  # contiguous, in order


def test_concurrent_peers_lose_and_reorder_nothing(
        make_store: Any, closing: list[Callable[[], None]]) -> None:
    hub = make_store("hub")
    server = serve(hub, options=FAST)
    closing.append(server.close)
    peers = [make_store(f"p{i}", durable=False) for i in range(3)]
    reps = []
    for p in peers:
        p.create_table("t", partition_key="id")
        rep = Replicator(p, [server.address], options=FAST).start()
        closing.append(rep.stop)
        reps.append(rep)
    assert all(r.wait_connected(10) for r in reps)

    def write(i: int, p: engine.Store) -> None:
        for j in range(300):
            if j % 3:
                p.table("t").put({"id": f"p{i}-{j:04d}", "n": j})
            else:
                with p.batch() as b:  # a transaction of two ops travels as one change
                    b.put("t", {"id": f"p{i}-{j:04d}", "n": j})
                    b.update("t", "shared", set={f"by{i}": j})

    writers = [threading.Thread(target=write, args=(i, p)) for i, p in enumerate(peers)]
    for t in writers:
        t.start()
    for t in writers:
        t.join(60)
    wait_until(lambda: converged(hub, *peers), 60, "convergence")
    assert len(_ids(hub)) == 3 * 300 + 1
    assert hub.table("t").get("shared") == {"id": "shared", "by0": 297, "by1": 297, "by2": 297}
    seen: dict[int, list[int]] = {}
    for c in hub.changes():
        if not seen.get(c.origin) or seen[c.origin][-1] != c.seq:
            seen.setdefault(c.origin, []).append(c.seq)
    for p in peers:
        assert seen[p.node_id] == list(range(1, p.version_vector()[p.node_id] + 1))
    assert server.applies.segments > 0
