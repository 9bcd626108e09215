"""Socket replication over real TCP on 127.0.0.1: serve/sync, TLS, meshes, chains, live push.

Every wait has a deadline; every server, replicator and store is closed by a fixture.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from waiting import converged, wait_until

import engine
from replication import exchange
from replication.net import NetOptions, Replicator, serve, serve_async, status, sync, sync_async

pytestmark = pytest.mark.integration

FAST = NetOptions(heartbeat=0.5, idle_timeout=5.0, backoff_base=0.05, backoff_max=0.5,
                  ack_flush_interval=0.2)


@pytest.fixture
def net(make_store: Any) -> Iterator[Any]:
    """Factory for servers and replicators on stores from ``make_store``; all closed after."""
    closers: list[Callable[[], None]] = []

    class Net:
        def store(self, name: str, **kw: Any) -> engine.Store:
            return make_store(name, **kw)

        def serve(self, store: engine.Store, **kw: Any) -> Any:
            kw.setdefault("options", FAST)
            server = serve(store, **kw)
            closers.append(server.close)
            return server

        def replicate(self, store: engine.Store, peers: list[str], **kw: Any) -> Replicator:
            kw.setdefault("options", FAST)
            rep = Replicator(store, peers, **kw).start()
            closers.append(rep.stop)
            return rep

    yield Net()
    for close in reversed(closers):
        close()


def addr(server: Any) -> str:
    return f"{server.address[0]}:{server.address[1]}"


def fill(store: engine.Store, n: int, prefix: str) -> None:
    if "orders" not in store.tables():
        store.create_table("orders", partition_key="id")
    with store.batch() as b:
        for i in range(n):
            b.put("orders", {"id": f"{prefix}{i}", "total": i})


def test_serve_sync_round_trip(net: Any) -> None:
    a, b = net.store("a"), net.store("b")
    fill(a, 50, "a")
    b.create_table("orders", partition_key="id").put({"id": "b0", "total": 1})
    server = net.serve(a, secret="s3cret")
    assert server.address[0] == "127.0.0.1" and server.address[1] > 0
    report = sync(b, addr(server), secret="s3cret", timeout=20)
    assert converged(a, b)
    assert report.applied >= 2 and report.sent >= 1 and report.node_id == a.node_id
    assert report.region == "r-a" and not report.refused
    assert b.table("orders").get("a49")["total"] == 49 and a.table("orders").get("b0")
    again = sync(b, server.address, secret="s3cret", timeout=20)  # tuple address works too
    assert again.applied == 0 and again.sent == 0 and again.segments_sent == 0


def test_sync_records_acks_so_gc_can_truncate(net: Any) -> None:
    a, b = net.store("a"), net.store("b")
    fill(a, 20, "a")
    server = net.serve(a)
    sync(b, addr(server), timeout=20)
    sync(b, addr(server), timeout=20)  # b's vv now reaches a through the handshake and acks
    # The server records b's acknowledgement when its side of the session ends.
    wait_until(lambda: exchange.local_state(a)[1].get(b.node_id, {}).get(a.node_id)
               == a.version_vector()[a.node_id], what="b's ack recorded on a")
    wait_until(lambda: exchange.collect_garbage(a)[0] > 0 or a.stats()["log_entries"] == 0,
               what="a's log to be truncated once b acknowledged it")


def test_async_variants(make_store: Any) -> None:
    a, b = make_store("a"), make_store("b")
    fill(a, 10, "a")

    async def main() -> None:
        async with await serve_async(a, options=FAST) as server:
            report = await sync_async(b, server.address, timeout=20)
            assert report.applied == 2

    asyncio.run(main())
    assert converged(a, b)


def test_sync_from_inside_a_running_loop(net: Any) -> None:
    a, b = net.store("a"), net.store("b")
    fill(a, 5, "a")
    server = net.serve(a)

    async def main() -> Any:
        return sync(b, addr(server), timeout=20)  # a plain call inside asyncio code

    assert asyncio.run(main()).applied == 2
    assert converged(a, b)


def _self_signed(tmp: Path) -> tuple[Path, Path] | None:
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    proc = subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        capture_output=True, timeout=60)
    return (cert, key) if proc.returncode == 0 else None


def test_tls(net: Any, tmp_path: Path) -> None:
    pair = _self_signed(tmp_path)
    if pair is None:
        pytest.skip("no openssl command to make a self-signed certificate")
    cert, key = pair
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    a, b = net.store("a"), net.store("b")
    fill(a, 10, "a")
    server = net.serve(a, secret="s", ssl=server_ctx)
    report = sync(b, addr(server), secret="s", ssl=client_ctx, timeout=20)
    assert report.applied == 2 and converged(a, b)
    # A plain-TCP client cannot talk to a TLS server: it fails, and nothing is applied.
    c = net.store("c")
    with pytest.raises(engine.TransportError):
        sync(c, addr(server), secret="s", timeout=5,
             options=NetOptions(handshake_timeout=2.0))
    assert c.version_vector() == {}
    # A client that opens TLS and stalls holds a pending slot, not a session: it is counted
    # and dropped like any slow client (TLS runs inside admission control).
    with socket.create_connection(server.address) as stall:
        wait_until(lambda: server.pending >= 1, 5, "the stalled TLS client to be pending")
        assert server.connections == 0
        stall.sendall(b"\x16\x03\x01")  # the start of a ClientHello, never finished
    # Live replication over TLS too.
    rep = net.replicate(b, [addr(server)], secret="s", ssl=client_ctx)
    assert rep.wait_connected(10)
    a.table("orders").put({"id": "live", "total": 1})
    wait_until(lambda: b.table("orders").get("live") is not None, what="live push over TLS")


def _topology(net: Any, n: int, links: Callable[[list[str]], list[list[str]]]) -> list[Any]:
    stores = [net.store(f"n{i}") for i in range(n)]
    servers = [net.serve(s) for s in stores]
    addrs = [addr(s) for s in servers]
    for store, peers in zip(stores, links(addrs), strict=True):
        if peers:
            net.replicate(store, peers)
    return stores


def _write_everywhere(stores: list[engine.Store], rounds: int) -> None:
    stores[0].create_table("orders", partition_key="id")
    wait_until(lambda: all("orders" in s.tables() for s in stores), what="table everywhere")
    for i in range(rounds):
        for k, s in enumerate(stores):
            s.table("orders").put({"id": f"{k}-{i}", "v": i})
            s.table("orders").update("shared", set={f"by{k}": i})
        time.sleep(0.001)


def test_three_node_full_mesh_converges(net: Any) -> None:
    stores = _topology(net, 3, lambda a: [[x for x in a if x != me] for me in a])
    _write_everywhere(stores, 40)
    wait_until(lambda: converged(*stores), what="full mesh convergence")
    assert len(list(stores[0].table("orders").scan())) == 3 * 40 + 1


def test_chain_converges_through_the_middle(net: Any) -> None:
    # a -> b -> c: a and c never talk; b relays both ways.
    stores = _topology(net, 3, lambda a: [[a[1]], [a[2]], []])
    _write_everywhere(stores, 40)
    wait_until(lambda: converged(*stores), what="chain convergence")
    assert stores[2].table("orders").get("shared")["by0"] == 39


def test_live_push_latency_is_milliseconds(net: Any) -> None:
    a, b = net.store("a", durable=False), net.store("b", durable=False)
    a.create_table("orders", partition_key="id")
    server = net.serve(b)
    rep = net.replicate(a, [addr(server)])
    assert rep.wait_connected(10)
    wait_until(lambda: "orders" in b.tables(), what="table replicated")
    lat = []
    for i in range(50):
        t0 = time.perf_counter()
        a.table("orders").put({"id": f"x{i}", "v": i})
        wait_until(lambda i=i: b.table("orders").get(f"x{i}") is not None, 5, "live push")
        lat.append((time.perf_counter() - t0) * 1000)
    lat.sort()
    assert lat[len(lat) // 2] < 50, lat  # typically ~1-3 ms; generous for a loaded CI box
    lag = rep.lag()[addr(server)]
    assert lag.connected and lag.node_id == b.node_id and lag.region == "r-b"
    wait_until(lambda: rep.lag()[addr(server)].unacked == 0, what="all acknowledged")
    lag = rep.lag()[addr(server)]
    assert lag.samples >= 50 and lag.p50_ms is not None and lag.p99_ms >= lag.p50_ms
    st = status(a)
    peer = next(p for p in st["peers"] if p["node_id"] == b.node_id)
    assert peer["sessions"] >= 1 and peer["unacked"] == 0 and peer["lag_ms"]["p50"] is not None


def test_replicator_reconnects_after_server_restart(net: Any) -> None:
    a, b = net.store("a"), net.store("b")
    a.create_table("orders", partition_key="id")
    server = serve(b, options=FAST)
    port = server.address[1]
    rep = net.replicate(a, [f"127.0.0.1:{port}"])
    assert rep.wait_connected(10)
    a.table("orders").put({"id": "1"})
    wait_until(lambda: converged(a, b), what="first push")
    server.close()
    a.table("orders").put({"id": "2"})  # written while b is away
    wait_until(lambda: not rep.lag()[f"127.0.0.1:{port}"].connected, what="disconnect noticed")
    assert rep.lag()[f"127.0.0.1:{port}"].unacked >= 1
    net.serve(b, port=port)
    wait_until(lambda: converged(a, b), what="catch-up after reconnect")


def test_flush_waits_until_peers_acknowledged(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import engine as _engine
    import replication as _replication

    with _engine.open(tmp_path / "a", region="a") as a, \
            _engine.open(tmp_path / "b", region="b") as b, \
            _replication.serve(b, secret=b"k") as server:
        t = a.create_table("t", partition_key="id")
        host, port = server.address
        with _replication.Replicator(a, peers=[f"{host}:{port}"], secret=b"k") as rep:
            assert rep.wait_connected(10)
            for i in range(50):
                t.put({"id": i})
            assert rep.flush(20)
            assert b.version_vector().get(a.node_id) == a.version_vector()[a.node_id]
            assert b.digest() == a.digest()


def test_live_push_respects_the_peers_max_frame(net: Any) -> None:
    """Commits that pile up during a live push go out in segments the peer accepts: never a
    frame over the ``max_frame`` it announced (that would cost a reconnect every time)."""
    a, b = net.store("a", durable=False), net.store("b", durable=False)
    a.create_table("orders", partition_key="id")
    small = NetOptions(heartbeat=0.5, idle_timeout=5.0, backoff_base=0.05, backoff_max=0.5,
                       ack_flush_interval=0.2, max_frame=256 * 1024)
    server = net.serve(b, options=small)
    rep = net.replicate(a, [addr(server)])
    assert rep.wait_connected(10)
    wait_until(lambda: "orders" in b.tables(), what="table replicated")
    blob = b"x" * (60 * 1024)
    for i in range(60):  # one commit each: they pile up behind the in-flight window
        a.table("orders").put({"id": f"x{i}", "blob": blob})
    wait_until(lambda: converged(a, b), 20, "converged")
    assert server.refused == {}, server.refused
    assert rep.lag()[addr(server)].last_error is None


def test_hubs_do_not_keep_closed_stores_alive(tmp_path: Path) -> None:
    """The per-store hub is keyed weakly by its store: it must not hold the store strongly,
    or every store that ever replicated stays in memory for the life of the process."""
    import gc
    import weakref

    from replication.peers import hub_for

    a = engine.open(tmp_path / "a", region="r-a")
    b = engine.open(tmp_path / "b", region="r-b")
    fill(a, 3, "a")
    with serve(a, options=FAST) as server:
        sync(b, server.address, timeout=20, options=FAST)
    refs = [weakref.ref(a), weakref.ref(b), weakref.ref(hub_for(a))]
    a.close()
    b.close()
    del a, b, server
    gc.collect()
    assert [r() for r in refs] == [None, None, None]
