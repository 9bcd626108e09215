"""The fleet transport against real nats-server processes (random ports, temp storage).

Every test starts its own broker (or three-server NATS cluster) and stops it; waits are bounded
and wait for positive events (:mod:`tests.integration.waiting`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import nats
import pytest

import engine
import replication
from replication import jetstream
from replication.jetstream import FleetOptions, LocalServer, Replicator
from replication.segment import encode_segment
from tests.integration.waiting import converged, wait_until

pytestmark = pytest.mark.integration

FAST = FleetOptions(row_interval=0.05, row_heartbeat=1.0, retry_delay=0.2, gap_grace=0.3,
                    snapshot_interval=1.0, gc_interval=0.5, reconnect_wait=0.1,
                    connect_timeout=2.0, duplicate_window=10.0)

Node = tuple[engine.Store, Replicator]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalServer]:
    with LocalServer(tmp_path / "nats") as srv:
        yield srv


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Callable[..., Node]]:
    """``fleet(name, urls, **options)`` opens a store and starts its replicator; all are
    stopped and closed at the end."""
    made: list[Node] = []

    def make(name: str, urls: list[str], *, cluster: str = "test", start: bool = True,
             **kw: object) -> Node:
        store = engine.open(tmp_path / name, region=f"r-{name}")
        opts = FleetOptions(**{**{f: getattr(FAST, f) for f in FAST.__slots__}, **kw})
        rep = Replicator(store, urls, cluster=cluster, options=opts)
        made.append((store, rep))
        if start:
            rep.start()
            assert rep.wait_connected(15), rep.stats.last_error
        return store, rep

    yield make
    for store, rep in reversed(made):
        rep.stop()
        if not store.closed:
            store.close()


def _table(*stores: engine.Store) -> None:
    """Create table ``t`` on the first store and wait until every store has it."""
    stores[0].create_table("t", partition_key="id")
    wait_until(lambda: all("t" in s.tables() for s in stores), what="table t everywhere")


def _write(store: engine.Store, prefix: str, n: int) -> None:
    t = store.table("t")
    for i in range(n):
        t.put({"id": f"{prefix}{i}", "v": i, "by": store.region})


def test_three_nodes_converge(broker: LocalServer, fleet: Callable[..., Node]) -> None:
    nodes = [fleet(n, [broker.url]) for n in "abc"]
    stores = [s for s, _ in nodes]
    _table(*stores)
    for s in stores:
        _write(s, s.region, 50)
    wait_until(lambda: converged(*stores), what="three nodes converge")
    assert stores[1].table("t").get("r-a7") == {"id": "r-a7", "v": 7, "by": "r-a"}
    for _, rep in nodes:
        assert rep.flush(10)
    lag = nodes[0][1].lag()
    assert set(lag) == {f"{s.node_id:016x}" for s in stores[1:]}
    assert all(p.unacked == 0 and p.connected and p.inbound.samples > 0 for p in lag.values())
    wait_until(lambda: all(p.samples > 0 for p in nodes[0][1].lag().values()),
               what="outbound lag reported in the members' rows")


def test_restarted_node_republishes_nothing(broker: LocalServer,
                                            fleet: Callable[..., Node]) -> None:
    (a, ra), (b, _) = fleet("a", [broker.url]), fleet("b", [broker.url])
    _table(a, b)
    _write(a, "x", 20)
    wait_until(lambda: converged(a, b), what="b has a's writes")
    assert ra.flush(10)
    published = ra.stats.messages_published
    ra.stop()
    ra2 = Replicator(a, [broker.url], cluster="test", options=FAST).start()
    try:
        assert ra2.wait_connected(10)
        _write(a, "y", 1)
        wait_until(lambda: converged(a, b), what="b has the write after the restart")
        # From where the stream stood: only the new change went out.
        assert ra2.stats.messages_published == 1, (published, ra2.stats.messages_published)
    finally:
        ra2.stop()


def test_broker_killed_and_restarted_with_writes_on_both_sides(
        broker: LocalServer, fleet: Callable[..., Node]) -> None:
    (a, ra), (b, rb) = fleet("a", [broker.url]), fleet("b", [broker.url])
    _table(a, b)
    _write(a, "before", 10)
    wait_until(lambda: converged(a, b), what="converged before the kill")
    broker.kill()
    _write(a, "a-during", 25)
    _write(b, "b-during", 25)
    broker.start()
    wait_until(lambda: converged(a, b), timeout=40, what="converged after the broker restart")
    assert len(list(a.table("t").scan())) == 60
    assert ra.flush(10) and rb.flush(10)


def test_bad_messages_are_rejected_reported_and_never_stall(
        broker: LocalServer, fleet: Callable[..., Node]) -> None:
    (a, ra), (b, rb) = fleet("a", [broker.url]), fleet("b", [broker.url])
    _table(a, b)
    names = jetstream.Names("test")
    other = engine.open(a.path.parent / "intruder", region="evil")
    try:
        other.create_table("t", partition_key="id").put({"id": "zombie", "v": 1})
        intruder = other.node_id
        rec = other.log_range(other.node_id, 0)
        _, forged = encode_segment(kind="changes", sender=other.node_id, region="evil",
                                   records=rec, vv=other.version_vector(), acks={},
                                   forgotten=(), created_hlc=other.tick())
    finally:
        other.close()
    corrupt = bytearray(forged)
    corrupt[len(corrupt) // 2] ^= 0xFF

    async def inject() -> None:
        nc = await nats.connect(broker.url)
        js = nc.jetstream()
        mine = names.subject(a.node_id, a.node_id)
        await js.publish(mine, b"garbage, not a segment")              # garbage
        await js.publish(mine, forged)                                  # forged sender
        await js.publish(names.subject(intruder, intruder), bytes(corrupt))  # bit-flipped
        await js.publish(names.prefix + ".junk.subject", forged)        # not a segment subject
        await nc.close()

    asyncio.run(inject())
    wait_until(lambda: rb.stats.rejected_total >= 4, what="four messages rejected by b")
    reasons = " | ".join(r.reason for r in rb.rejected)
    assert "forged" in reasons and "checksum" in reasons and "not a segment subject" in reasons
    assert b.table("t").get("zombie") is None
    _write(a, "after", 3)  # the consumer did not stall
    wait_until(lambda: converged(a, b), what="b still applies a's changes")
    # a skips what claims to be its own (it holds its changes) and rejects the other two.
    wait_until(lambda: ra.stats.rejected_total == 2, what="two messages rejected by a")


def test_forget_spreads_through_the_cluster(broker: LocalServer,
                                            fleet: Callable[..., Node]) -> None:
    nodes = [fleet(n, [broker.url]) for n in "abc"]
    (a, _), (b, rb), (c, rc) = nodes
    _table(a, b, c)
    _write(c, "c", 3)
    wait_until(lambda: converged(a, b, c), what="converged")
    rc.stop()
    replication.forget(a, c.node_id)
    wait_until(lambda: c.node_id in b.forgotten(), what="b adopts a's forget")
    wait_until(lambda: c.node_id not in rb.members(), what="c no longer a member on b")


def test_new_node_joins_from_the_snapshot(broker: LocalServer,
                                          fleet: Callable[..., Node]) -> None:
    (a, ra), (b, rb) = fleet("a", [broker.url]), fleet("b", [broker.url])
    _table(a, b)
    _write(a, "a", 30)
    _write(b, "b", 30)
    a.table("t").delete("a3")
    wait_until(lambda: converged(a, b), what="a and b converge")
    wait_until(lambda: ra.stats.snapshots_written + rb.stats.snapshots_written > 0,
               what="a member wrote the snapshot")
    c, rc = fleet("c", [broker.url])
    wait_until(lambda: converged(a, b, c), what="the new node converges")
    assert rc.stats.snapshots_loaded >= 1
    assert c.table("t").get("a3") is None
    _write(c, "c", 2)
    wait_until(lambda: converged(a, b, c), what="the new node's writes reach the others")


def test_node_offline_past_retention_rejoins_from_the_snapshot(
        broker: LocalServer, fleet: Callable[..., Node]) -> None:
    nodes = [fleet(n, [broker.url], max_msgs=8) for n in "abc"]
    (a, ra), (b, _), (c, rc) = nodes
    _table(a, b, c)
    _write(c, "c", 2)
    wait_until(lambda: converged(a, b, c), what="converged")
    rc.stop()
    for i in range(20):  # twenty messages (one at a time): the stream keeps the last eight
        _write(a, f"a{i}-", 1)
        seq = a.version_vector()[a.node_id]
        wait_until(lambda s=seq: ra.stats.confirmed.get(a.node_id, 0) >= s,
                   what="each write in a message of its own")
    a.table("t").delete("c0")
    wait_until(lambda: converged(a, b), what="a and b converge")
    rc2 = Replicator(c, [broker.url], cluster="test", options=rc.options).start()
    try:
        wait_until(lambda: converged(a, b, c), timeout=30, what="c rejoins")
        assert rc2.stats.snapshots_loaded >= 1
        assert c.table("t").get("c0") is None
    finally:
        rc2.stop()


def test_log_truncated_only_once_every_member_has_acknowledged(
        broker: LocalServer, fleet: Callable[..., Node]) -> None:
    (a, _), (b, rb) = fleet("a", [broker.url]), fleet("b", [broker.url])
    _table(a, b)
    _write(a, "a", 10)
    wait_until(lambda: converged(a, b), what="converged")
    wait_until(lambda: a.log_floor().get(a.node_id, 0) >= 11, what="a truncates its log")
    rb.stop()
    _write(a, "more", 10)
    # b acknowledged 11 of a's changes and is away: a keeps the rest.
    wait_until(lambda: a.version_vector()[a.node_id] == 21, what="writes done")
    assert a.log_floor().get(a.node_id, 0) == 11
    assert len(a.log_range(a.node_id, 11)) == 10


def test_mixed_transports_relay(broker: LocalServer, fleet: Callable[..., Node],
                                tmp_path: Path) -> None:
    (a, _), (b, _) = fleet("a", [broker.url]), fleet("b", [broker.url])
    c = engine.open(tmp_path / "c", region="r-c")  # TCP only, through b
    try:
        with replication.serve(b) as server, \
                replication.Replicator(c, [server.address]) as rc:
            assert rc.wait_connected(10)
            _table(a, b, c)
            _write(a, "a", 5)
            _write(b, "b", 5)
            _write(c, "c", 5)
            wait_until(lambda: converged(a, b, c), timeout=30,
                       what="NATS-only and TCP-only nodes converge through b")
    finally:
        c.close()


def test_auth_user_password(tmp_path: Path, fleet: Callable[..., Node]) -> None:
    auth = 'authorization { users: [ { user: shop, password: "s3cret" } ] }'
    with LocalServer(tmp_path / "nats", config=auth) as srv:
        bad = Replicator(engine.open(tmp_path / "x", region="x"), [srv.url], cluster="test",
                         user="shop", password="wrong", options=FAST).start()
        try:
            # The server may reset the socket before its -ERR reaches the client (then the
            # error says "Connection reset by peer"); the replicator retries, and a retry
            # reads the authorization error.
            def refused() -> bool:
                err = bad.stats.last_error or ""
                return "Authorization" in err or "auth" in err

            wait_until(refused, what="refused for bad credentials")
            assert not bad.wait_connected(0.1)
        finally:
            bad.stop()
            bad.store.close()
        store = engine.open(tmp_path / "y", region="y")
        good = Replicator(store, [srv.url], cluster="test", user="shop", password="s3cret",
                          options=FAST).start()
        try:
            assert good.wait_connected(10), good.stats.last_error
        finally:
            good.stop()
            store.close()


def test_nats_cluster_with_one_server_killed(tmp_path: Path,
                                             fleet: Callable[..., Node]) -> None:
    servers = jetstream.start_cluster(tmp_path / "cluster", 3)
    try:
        urls = [s.url for s in servers]
        nodes = [fleet(n, urls[i:] + urls[:i], replicas=3) for i, n in enumerate("abc")]
        stores = [s for s, _ in nodes]
        _table(*stores)
        _write(stores[0], "a", 10)
        wait_until(lambda: converged(*stores), what="converged on the NATS cluster")
        servers[0].kill()
        for s in stores:
            _write(s, s.region + "-after", 10)
        wait_until(lambda: converged(*stores), timeout=60,
                   what="converged with one NATS server dead")
    finally:
        for s in servers:
            s.stop()


def _cli(*args: object, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "regiondb", *map(str, args)],
                          capture_output=True, text=True, timeout=60)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_cli_serve_nats_with_and_without_listen(broker: LocalServer, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    _cli("init", a, "--region", "eu")
    _cli("init", b, "--region", "us")
    _cli("create-table", a, "t", "--pk", "id")
    bad = _cli("serve", a, check=False)
    assert bad.returncode == 1 and "--listen HOST:PORT, --nats URL" in bad.stderr
    procs = [subprocess.Popen([sys.executable, "-m", "regiondb", "serve", str(d), "--nats",
                               broker.url, "--cluster", "cli", "--status-interval", "1", *x],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for d, x in ((a, []), (b, ["--listen", "127.0.0.1:0"]))]
    try:
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline()
            assert "NATS cluster cli" in line or "listening on" in line, line
        _cli("put", a, "t", '{"id": "k1", "v": 1}')  # another process: picked up by polling
        wait_until(lambda: '"v": 1' in _cli("get", b, "t", "k1", check=False).stdout,
                   timeout=30, what="b gets a's put through the broker")
        wait_until(lambda: "on NATS cluster cli" in _cli("status", a).stdout,
                   what="status shows the NATS-only server")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        outs = [p.communicate(timeout=20)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert "members" in outs[0] and "serve: stopped" in outs[1]


def test_auth_token(tmp_path: Path) -> None:
    with LocalServer(tmp_path / "nats", config='authorization { token: "t0ken" }') as srv:
        store = engine.open(tmp_path / "s", region="s")
        rep = Replicator(store, [srv.url], cluster="test", token="t0ken", options=FAST).start()
        try:
            assert rep.wait_connected(10), rep.stats.last_error
        finally:
            rep.stop()
            store.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    tls = f'tls {{ cert_file: "{cert}", key_file: "{key}" }}'
    with LocalServer(tmp_path / "nats", config=tls) as srv:
        ctx = ssl.create_default_context(cafile=str(cert))
        stores = [engine.open(tmp_path / n, region=n) for n in "ab"]
        reps = [Replicator(s, [srv.url.replace("nats://", "tls://")], cluster="test", tls=ctx,
                           options=FAST).start() for s in stores]
        try:
            assert all(r.wait_connected(10) for r in reps), [r.stats.last_error for r in reps]
            _table(*stores)
            _write(stores[0], "x", 3)
            wait_until(lambda: converged(*stores), what="converged over TLS")
        finally:
            for r in reps:
                r.stop()
            for s in stores:
                s.close()


def test_segments_stay_within_the_servers_max_payload(tmp_path: Path,
                                                      fleet: Callable[..., Node]) -> None:
    with LocalServer(tmp_path / "nats", config="max_payload: 65536") as srv:
        (a, ra), (b, _) = fleet("a", [srv.url], start=False), fleet("b", [srv.url])
        b.create_table("t", partition_key="id")
        a.create_table("t", partition_key="id")
        for i in range(300):  # a backlog of 300 KB: published once a starts
            a.table("t").put({"id": f"k{i}", "pad": "x" * 1000})
        ra.start()
        wait_until(lambda: converged(a, b), what="b has the backlog")
        assert 5 < ra.stats.messages_published < 100  # cut to fit, not one per change
        a.table("t").put({"id": "huge", "pad": os.urandom(100_000)})  # over the limit
        wait_until(lambda: "max_payload" in (ra.stats.last_error or ""),
                   what="the oversize change is reported")


def test_started_before_the_broker_connects_when_it_comes(tmp_path: Path,
                                                         fleet: Callable[..., Node]) -> None:
    srv = LocalServer(tmp_path / "nats")
    a, ra = fleet("a", [srv.url], start=False)
    ra.start()
    try:
        wait_until(lambda: ra.stats.last_error is not None, what="the missing broker reported")
        assert not ra.wait_connected(0.2)
        a.create_table("t", partition_key="id").put({"id": "early"})
        srv.start()
        assert ra.wait_connected(20), ra.stats.last_error
        b, _ = fleet("b", [srv.url])
        wait_until(lambda: converged(a, b), what="the write made before the broker arrives")
    finally:
        srv.stop()


def test_node_process_sigkilled_mid_stream_loses_nothing(broker: LocalServer, tmp_path: Path,
                                                          fleet: Callable[..., Node]) -> None:
    from test_socket_faults import Node as NodeProcess  # the socket suite's node process

    a, ra = fleet("a", [broker.url])
    extra = ("--nats", broker.url, "--cluster", "test")
    b = NodeProcess(tmp_path / "b", "r-b", extra=extra)
    try:
        wait_until(lambda: "t" in a.tables(), what="b's table reaches a")
        b.call({"cmd": "write_async", "n": 400, "rate": 400, "prefix": "b"})
        writer = threading.Thread(target=_write, args=(a, "a", 300))
        writer.start()
        wait_until(lambda: len(b.acknowledged()) >= 120, what="b acknowledged writes")
        b.kill()  # mid-stream: consuming a's changes and publishing its own
        writer.join()
        acked = b.acknowledged()
        b = NodeProcess(tmp_path / "b", "r-b", extra=extra)
        _write(a, "after", 5)

        def same() -> bool:
            got = b.call({"cmd": "digest"})
            return bool(got["digest"] == a.digest())

        wait_until(same, timeout=40, what="the restarted node converges with a")
        have = {item["id"] for item in a.table("t").scan()}
        assert acked <= have, sorted(acked - have)[:5]  # every write b acknowledged reached a
        assert {f"a{i}" for i in range(300)} <= have
    finally:
        b.close()


def test_changes_held_for_clock_skew_apply_once_clocks_agree(
        broker: LocalServer, tmp_path: Path, fleet: Callable[..., Node]) -> None:
    a, _ = fleet("a", [broker.url])
    clock = engine.ManualClock(int(time.time() * 1000) - 3_600_000)  # an hour behind
    b = engine.open(tmp_path / "b", region="r-b", wall_clock=clock, max_clock_offset=60)
    rb = Replicator(b, [broker.url], cluster="test", options=FAST).start()
    try:
        assert rb.wait_connected(10)
        a.create_table("t", partition_key="id")
        _write(a, "a", 3)
        wait_until(lambda: rb.stats.messages_received >= 2, what="b receives a's messages")
        assert "t" not in b.tables()  # held: an hour ahead of b's clock, nothing applied
        clock.set(int(time.time() * 1000))
        wait_until(lambda: converged(a, b), what="redelivered and applied once clocks agree")
        assert rb.stats.rejected_total == 0
    finally:
        rb.stop()
        b.close()


def test_auth_nkey(tmp_path: Path) -> None:
    nkeys = pytest.importorskip("nkeys")  # nats-py[nkeys], in the nats and test extras
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    seed_file = tmp_path / "user.nk"
    seed_file.write_bytes(seed)
    config = f'authorization {{ users: [ {{ nkey: "{public}" }} ] }}'
    with LocalServer(tmp_path / "nats", config=config) as srv:
        store = engine.open(tmp_path / "s", region="s")
        rep = Replicator(store, [srv.url], cluster="test", nkeys_seed=str(seed_file),
                         options=FAST).start()
        try:
            assert rep.wait_connected(10), rep.stats.last_error
        finally:
            rep.stop()
            store.close()
