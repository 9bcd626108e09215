"""Socket replication under faults and hostile peers, over real TCP on 127.0.0.1.

Faults: SIGKILL of a peer process mid-stream, connections cut mid-frame (fault proxy), a peer
that stops reading, a partition healed later. Bad peers: wrong or missing secret, garbage,
oversized frames, unknown and out-of-order messages, a clock too far ahead, a slow loris.
None of the bad peers changes the store; the server keeps serving the others.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from faultproxy import FaultProxy
from waiting import converged, wait_until

import engine
from replication.channel import Channel
from replication.net import NetOptions, Replicator, serve, sync
from replication.protocol import (
    PROTOCOL_VERSION,
    Hello,
    MsgType,
    client_handshake,
    encode_body,
    encode_frame,
    encode_message,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FAST = NetOptions(heartbeat=0.5, idle_timeout=5.0, backoff_base=0.05, backoff_max=0.5,
                  ack_flush_interval=0.2, retry_delay=0.2, handshake_timeout=2.0)


def fill(store: engine.Store, n: int, prefix: str, pad: int = 0) -> None:
    if "t" not in store.tables():
        store.create_table("t", partition_key="id")
    for start in range(0, n, 1000):
        with store.batch() as b:
            for i in range(start, min(n, start + 1000)):
                b.put("t", {"id": f"{prefix}{i:06d}", "pad": secrets.token_hex(pad // 2)})


def ids(store: engine.Store) -> set[str]:
    return {item["id"] for item in store.table("t").scan()} if "t" in store.tables() else set()


def start_server(store: engine.Store, closers: list[Callable[[], None]], **kw: Any) -> Any:
    kw.setdefault("options", FAST)
    server = serve(store, **kw)
    closers.append(server.close)
    return server


# ------------------------------------------------------------------------------- bad peers


class Snapshot:
    """The observable state of a store, to prove a bad peer changed nothing."""

    def __init__(self, store: engine.Store) -> None:
        self.store = store
        self.state = (store.digest(), store.version_vector())

    def unchanged(self) -> bool:
        return (self.store.digest(), self.store.version_vector()) == self.state


def raw_exchange(port: int, payload: bytes, *, timeout: float = 5.0) -> bytes:
    """Send raw bytes, then read until the server closes; return what it sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            chunks.append(data)
        else:
            raise AssertionError("server did not close the connection")
    return b"".join(chunks)


def frames(data: bytes) -> list[tuple[int, bytes]]:
    out, pos = [], 0
    while pos + 5 <= len(data):
        length, t = struct.unpack_from(">IB", data, pos)
        out.append((t, data[pos + 5: pos + 4 + length]))
        pos += 4 + length
    return out


def error_codes(data: bytes) -> list[str]:
    import cbor2

    return [cbor2.loads(body)["code"] for t, body in frames(data) if t == MsgType.ERROR]


def hello_frame(node: int | None = None, proto: int = PROTOCOL_VERSION) -> bytes:
    return encode_message(MsgType.HELLO, {
        "proto": proto, "node": node or secrets.randbits(63) + 1, "region": "evil",
        "nonce": secrets.token_bytes(32), "max_frame": 1 << 20, "mode": "live"})


Payload = Callable[[Channel], bytes]


async def _after_handshake(port: int, payload: Payload, secret: bytes | None) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    me = Hello(secrets.randbits(63) + 1, "evil", {}, {}, frozenset(), mode="sync")
    _, channel = await client_handshake(reader, writer, me, secret, timeout=5)
    writer.write(payload(channel))
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


def after_handshake(port: int, payload: Payload, secret: bytes | None = None) -> bytes:
    """Handshake properly (a genuine peer), then send ``payload(channel)``; return the reply."""
    return asyncio.run(_after_handshake(port, payload, secret))


@pytest.fixture
def victim(make_store: Any, closing: list[Callable[[], None]]) -> Iterator[Any]:
    """A served store with data and a secret, and a well-behaved client to check on it."""
    store = make_store("victim")
    fill(store, 30, "v")
    server = start_server(store, closing, secret="right")
    good = make_store("good")

    class Victim:
        pass

    v = Victim()
    v.store, v.server, v.port, v.snap = store, server, server.address[1], Snapshot(store)  # type: ignore[attr-defined]

    def still_serves() -> bool:
        sync(good, server.address, secret="right", timeout=10)
        return good.digest() == store.digest()

    v.still_serves = still_serves  # type: ignore[attr-defined]
    yield v
    assert v.snap.unchanged(), "a bad peer changed the store"  # type: ignore[attr-defined]


def test_wrong_or_missing_secret_is_refused(victim: Any, make_store: Any,
                                            caplog: pytest.LogCaptureFixture) -> None:
    bad = make_store("bad")
    fill(bad, 5, "bad")
    with caplog.at_level(logging.WARNING):
        with pytest.raises(engine.AuthError):
            sync(bad, victim.server.address, secret="wrong", timeout=10)
        with pytest.raises(engine.AuthError):
            sync(bad, victim.server.address, secret=None, timeout=10)
        wait_until(lambda: victim.server.refused.get("AuthError", 0) >= 2, 5, "server refusals")
    assert "AuthError" in caplog.text
    assert ids(bad) == {f"bad{i:06d}" for i in range(5)}  # and we learned nothing either
    assert victim.still_serves()


def test_client_with_secret_refuses_server_without(make_store: Any,
                                                   closing: list[Callable[[], None]]) -> None:
    open_store = make_store("open")
    fill(open_store, 5, "o")
    server = start_server(open_store, closing)  # no secret
    snap = Snapshot(open_store)
    client = make_store("client")
    with pytest.raises(engine.AuthError):
        sync(client, server.address, secret="mine", timeout=10)
    assert client.version_vector() == {} and snap.unchanged()


@pytest.mark.parametrize("payload", [
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", id="garbage"),
    pytest.param(struct.pack(">IB", 1 << 30, MsgType.HELLO), id="oversized-length"),
    pytest.param(struct.pack(">IB", 0, 0), id="zero-length"),
    pytest.param(encode_frame(0x55, b"\xa0"), id="unknown-message"),
    pytest.param(encode_frame(MsgType.SEGMENT, b"\x89RGDBSEG"), id="segment-before-hello"),
    pytest.param(encode_frame(MsgType.HELLO, b"\xff\xff"), id="hello-not-cbor"),
    pytest.param(encode_message(MsgType.HELLO, {"proto": 1}), id="hello-missing-fields"),
    pytest.param(hello_frame() + hello_frame(), id="hello-twice"),
])
def test_bad_bytes_before_auth_are_protocol_errors(victim: Any, payload: bytes) -> None:
    reply = raw_exchange(victim.port, payload)
    codes = error_codes(reply)
    assert codes and codes[-1] == "protocol", reply[:200]
    wait_until(lambda: victim.server.refused.get("ProtocolError", 0) >= 1, 5, "refusal")
    assert victim.still_serves()


def _ack(c: Channel) -> bytes:
    return c.seal(MsgType.ACK, encode_body({"vv": {}, "lag_us": [], "refused": {}}))


def _replayed(c: Channel) -> bytes:
    frame = c.seal(MsgType.PING, encode_body({"t": 1}))
    return frame + frame


def _reordered(c: Channel) -> bytes:
    first, second = (c.seal(MsgType.PING, encode_body({"t": t})) for t in (1, 2))
    return second + first


def _flipped(c: Channel) -> bytes:
    frame = bytearray(c.seal(MsgType.PING, encode_body({"t": 1})))
    frame[7] ^= 1
    return bytes(frame)


@pytest.mark.parametrize("payload,code", [
    pytest.param(lambda c: c.seal(0x55, b"\xa0"), "protocol", id="unknown-message"),
    pytest.param(lambda c: c.seal(MsgType.HELLO, hello_frame()[5:]), "protocol",
                 id="hello-again"),
    pytest.param(lambda c: 3 * _ack(c), "protocol",
                 id="ack-without-segment"),  # the server sent one segment: 2 ACKs too many
    pytest.param(lambda c: c.seal(MsgType.SEGMENT, b"not a segment"), "segment",
                 id="corrupt-segment"),
    pytest.param(lambda c: struct.pack(">IB", (64 << 20), MsgType.SEGMENT), "protocol",
                 id="oversized-segment"),
    pytest.param(lambda c: encode_frame(MsgType.PING, encode_body({"t": 1})), "protocol",
                 id="untagged-frame"),
    pytest.param(_replayed, "protocol", id="replayed-frame"),
    pytest.param(_reordered, "protocol", id="reordered-frames"),
    pytest.param(_flipped, "protocol", id="altered-frame"),
])
def test_bad_messages_after_auth_close_the_connection(victim: Any, payload: Payload,
                                                       code: str) -> None:
    reply = after_handshake(victim.port, payload, b"right")
    assert error_codes(reply)[-1:] == [code], reply[-300:]
    wait_until(lambda: sum(victim.server.refused.values()) >= 1, 5, "refusal")
    assert victim.still_serves()


def test_v1_peer_is_refused_with_a_clear_message(victim: Any) -> None:
    reply = raw_exchange(victim.port, hello_frame(proto=1))
    import cbor2

    errors = [cbor2.loads(b) for t, b in frames(reply) if t == MsgType.ERROR]
    assert errors and errors[-1]["code"] == "protocol"
    assert "protocol 1" in errors[-1]["message"] and "upgrade" in errors[-1]["message"]
    assert victim.still_serves()


def test_slow_loris_is_timed_out(victim: Any) -> None:
    payload = hello_frame()
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", victim.port), timeout=10) as sock:
        closed = False
        for byte in payload:  # one byte every 0.1 s: the 2 s handshake deadline passes first
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.1)
            sock.setblocking(False)
            try:
                if sock.recv(1) == b"":
                    closed = True
                    break
            except BlockingIOError:
                pass
            except ConnectionResetError:
                closed = True
                break
            finally:
                sock.setblocking(True)
    assert closed, "slow loris was never cut off"
    assert time.monotonic() - t0 < FAST.handshake_timeout + 3
    wait_until(lambda: victim.server.refused.get("TimeoutError", 0) >= 1, 5, "timeout counted")
    assert victim.still_serves()


def test_clock_skew_refused_then_applied(make_store: Any, closing: list[Callable[[], None]],
                                         caplog: pytest.LogCaptureFixture) -> None:
    now = time.time_ns() // 1_000_000
    rclock = engine.ManualClock(now)
    receiver = make_store("receiver", wall_clock=rclock)
    fill(receiver, 3, "r")
    skewed = make_store("skewed", wall_clock=engine.ManualClock(now + 10_000))
    skewed.create_table("t", partition_key="id")
    skewed.table("t").put({"id": "from-the-future"})
    server = start_server(receiver, closing)
    before = Snapshot(receiver)
    with caplog.at_level(logging.WARNING):
        report = sync(skewed, server.address, timeout=10)
    assert skewed.node_id in report.peer_refused
    assert "ahead" in report.peer_refused[skewed.node_id]
    assert "ClockSkewError" in caplog.text or "ahead of the local clock" in caplog.text
    assert before.unchanged() and skewed.node_id not in receiver.version_vector()
    assert ids(skewed) >= {f"r{i:06d}" for i in range(3)}  # the other direction went through
    # Live: the skewed node's replicator keeps offering; once the receiver's clock is within
    # the bound, the changes apply.
    address = f"127.0.0.1:{server.address[1]}"
    rep = Replicator(skewed, [address], options=FAST).start()
    closing.append(rep.stop)
    # A positive event first: the live link offered the changes and the receiver refused them.
    wait_until(lambda: "ahead" in (rep.lag()[address].last_error or ""), 10, "live refusal")
    assert skewed.node_id not in receiver.version_vector()
    rclock.advance(10_000)
    wait_until(lambda: converged(receiver, skewed), 10, "skewed changes applied in bounds")
    assert receiver.table("t").get("from-the-future") is not None


# ------------------------------------------------------------------------------- faults


def test_connection_cut_mid_frame_loses_nothing(make_store: Any,
                                                closing: list[Callable[[], None]]) -> None:
    src = make_store("src")
    fill(src, 3000, "s", pad=500)  # ~1.5 MB: several segments
    opts = NetOptions(segment_bytes=256 * 1024, handshake_timeout=5)
    server = start_server(src, closing, options=opts)
    dst = make_store("dst")
    with FaultProxy(("127.0.0.1", server.address[1])) as proxy:
        for cut in (700_000, 100, 5):  # mid-segment, inside the first segment, mid-header
            proxy.cut_after(cut)
            with pytest.raises(engine.TransportBrokenError):
                sync(dst, proxy.address, timeout=20, options=opts)
            # Whatever arrived came in whole segments of whole transactions (1000 puts each):
            # a cut never leaves part of a batch applied.
            assert len(ids(dst)) in (0, 1000, 2000, 3000)
        report = sync(dst, proxy.address, timeout=20, options=opts)
        assert converged(src, dst), report


def test_live_connection_cuts_resume_from_acknowledged_vv(
        make_store: Any, closing: list[Callable[[], None]]) -> None:
    a, b = make_store("a", durable=False), make_store("b", durable=False)
    a.create_table("t", partition_key="id")
    server = start_server(b, closing)
    with FaultProxy(("127.0.0.1", server.address[1])) as proxy:
        rep = Replicator(a, [proxy.address], options=FAST).start()
        closing.append(rep.stop)
        assert rep.wait_connected(10)
        for round_ in range(5):
            for i in range(200):
                a.table("t").put({"id": f"{round_}-{i}"})
            proxy.cut()  # RST in the middle of the stream
        wait_until(lambda: converged(a, b), 20, "convergence after cuts")
        assert proxy.connections >= 2
        wait_until(lambda: rep.lag()[proxy.address].unacked == 0, 10, "all acknowledged")


def test_peer_that_stops_reading_costs_bounded_memory(
        make_store: Any, closing: list[Callable[[], None]]) -> None:
    src = make_store("src", durable=False)
    fill(src, 20_000, "s", pad=1000)  # ~20 MB to push at a peer that never reads
    opts = NetOptions(segment_bytes=256 * 1024, max_buffer=1 << 20, write_timeout=1.0,
                      handshake_timeout=5)
    server = start_server(src, closing, options=opts)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    closing.append(sock.close)

    async def handshake_then_stall() -> None:
        reader, writer = await asyncio.open_connection(sock=sock)
        me = Hello(secrets.randbits(63) + 1, "staller", {}, {}, frozenset(), mode="live")
        await client_handshake(reader, writer, me, None, timeout=5)
        writer.transport.pause_reading()
        await asyncio.sleep(3.0)  # read nothing while the server tries to push 20 MB

    sock.connect(("127.0.0.1", server.address[1]))
    stall = threading.Thread(target=lambda: asyncio.run(handshake_then_stall()), daemon=True)
    stall.start()
    time.sleep(0.5)
    other = make_store("other")
    sync(other, server.address, timeout=30, options=opts)  # others are still served meanwhile
    assert converged(src, other)
    wait_until(lambda: server.refused.get("TimeoutError", 0) >= 1, 10, "staller dropped")
    stall.join(10)
    from replication.session import hub_for

    peak = max(p.peak_buffered for p in hub_for(src).peers.values())
    assert peak <= opts.max_buffer + opts.segment_bytes + 64 * 1024, peak


# ------------------------------------------------------------------------------- processes


class Node:
    """A node process (tests.integration.nodeproc) with JSON-line commands."""

    def __init__(self, store: Path, region: str, *, listen: str = "127.0.0.1:0",
                 peers: tuple[str, ...] = (), extra: tuple[str, ...] = ()) -> None:
        args = [sys.executable, "-m", "tests.integration.nodeproc", "--store", str(store),
                "--region", region, "--listen", listen, "--nosync", *extra]
        for p in peers:
            args += ["--peer", p]
        self.proc = subprocess.Popen(args, cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.events: list[dict[str, Any]] = []
        self.replies: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        ready = self._wait(lambda: next((e for e in self.events if e.get("event") == "ready"),
                                        None), 30)
        self.address = f"127.0.0.1:{ready['address'][1]}"
        self.port = ready["address"][1]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            msg = json.loads(line)
            with self._cond:
                (self.events if "event" in msg else self.replies).append(msg)
                self._cond.notify_all()

    def _wait(self, pick: Callable[[], Any], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while (got := pick()) is None:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(f"node process: no answer (rc={self.proc.poll()})")
                self._cond.wait(min(left, 0.2))
            return got

    def call(self, cmd: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
        with self._cond:
            n = len(self.replies)
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._wait(lambda: self.replies[n] if len(self.replies) > n else None, timeout)

    def acknowledged(self) -> set[str]:
        with self._cond:
            return {e["id"] for e in self.events if e.get("event") == "wrote"}

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.terminate()
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()


def test_peer_sigkilled_mid_stream_and_restarted(
        make_store: Any, tmp_path: Path, closing: list[Callable[[], None]]) -> None:
    a = make_store("a", durable=False)
    fill(a, 1, "a-")
    node = Node(tmp_path / "b", "r-b")
    closing.append(node.close)  # bound now: node is rebound below
    rep = Replicator(a, [node.address], options=FAST).start()
    closing.append(rep.stop)
    assert rep.wait_connected(10)
    stop = threading.Event()
    written: list[str] = []

    def writer() -> None:
        i = 0
        while not stop.is_set():
            key = f"a-live{i:06d}"
            a.table("t").put({"id": key})
            written.append(key)
            i += 1
            time.sleep(0.002)

    w = threading.Thread(target=writer, daemon=True)
    w.start()
    node.call({"cmd": "write_async", "n": 400, "rate": 400, "prefix": "b-"})
    time.sleep(0.5)
    node.kill()  # mid-stream, in both directions
    acked_by_b = node.acknowledged()
    assert acked_by_b, "b wrote nothing before it was killed"
    time.sleep(0.3)
    node = Node(tmp_path / "b", "r-b", listen=f"127.0.0.1:{node.port}")
    closing.append(node.close)  # bound now: node is rebound below
    time.sleep(0.5)
    stop.set()
    w.join(10)

    def same() -> bool:
        got = node.call({"cmd": "digest"})
        return got["digest"] == a.digest()

    wait_until(same, 30, "convergence after restart")
    theirs = set(node.call({"cmd": "digest"})["ids"])
    assert set(written) <= theirs, "a write acknowledged on a was lost on b"
    assert acked_by_b <= ids(a), "a write acknowledged on b before SIGKILL was lost"


def test_partition_heals_and_all_converge(make_store: Any,
                                          closing: list[Callable[[], None]]) -> None:
    names = ["a", "b", "c"]
    stores = {n: make_store(n, durable=False) for n in names}
    stores["a"].create_table("t", partition_key="id")
    servers = {n: start_server(s, closing) for n, s in stores.items()}
    proxies: dict[tuple[str, str], FaultProxy] = {}
    for src in names:
        for dst in names:
            if src != dst:
                proxies[src, dst] = FaultProxy(("127.0.0.1", servers[dst].address[1]))
                closing.append(proxies[src, dst].close)
    for src in names:
        rep = Replicator(stores[src], [proxies[src, d].address for d in names if d != src],
                         options=FAST).start()
        closing.append(rep.stop)
    wait_until(lambda: converged(*stores.values()), 10, "initial convergence")
    cut = [p for (s, d), p in proxies.items() if "c" in (s, d)]
    for p in cut:
        p.partition()
    written: dict[str, list[str]] = {n: [] for n in names}
    for i in range(150):
        for n in ("a", "c"):  # both sides of the partition write
            key = f"{n}{i:04d}"
            stores[n].table("t").put({"id": key})
            stores[n].table("t").update("shared", set={n: i})
            written[n].append(key)
    # b has all of a's writes (a positive event: replication ran meanwhile); c none of them.
    wait_until(lambda: set(written["a"]) <= ids(stores["b"]), 10, "a and b still replicate")
    assert not ids(stores["c"]) & set(written["a"]), "the partition leaked"
    for p in cut:
        p.heal()
    wait_until(lambda: converged(*stores.values()), 20, "convergence after healing")
    everything = set(written["a"]) | set(written["c"])
    for s in stores.values():
        assert everything <= ids(s)
        assert s.table("t").get("shared") == {"id": "shared", "a": 149, "c": 149}


@pytest.mark.slow
def test_soak_repeated_sigkill_and_cuts(make_store: Any, tmp_path: Path,
                                        closing: list[Callable[[], None]]) -> None:
    """Soak: a peer process killed and restarted ten times while both sides write."""
    a = make_store("a", durable=False)
    fill(a, 1, "a-")
    node = Node(tmp_path / "b", "r-b")
    port = node.port
    closing.append(node.close)  # bound now: node is rebound below
    with FaultProxy(("127.0.0.1", port)) as proxy:
        rep = Replicator(a, [proxy.address], options=FAST).start()
        closing.append(rep.stop)
        acked: set[str] = set()
        for round_ in range(10):
            node.call({"cmd": "write_async", "n": 300, "rate": 600, "prefix": f"b{round_}-"})
            for i in range(300):
                a.table("t").put({"id": f"a{round_}-{i:04d}"})
                if i == 150:
                    proxy.cut()
            time.sleep(0.3)
            node.kill()
            acked |= node.acknowledged()
            node = Node(tmp_path / "b", "r-b", listen=f"127.0.0.1:{port}")
            closing.append(node.close)
        wait_until(lambda: node.call({"cmd": "digest"})["digest"] == a.digest(), 60,
                   "convergence after the soak")
        assert acked <= ids(a)


def test_close_and_stop_return_only_once_no_apply_runs(
        make_store: Any, closing: list[Callable[[], None]]) -> None:
    """Closing mid-stream: when Server.close()/Replicator.stop() return, their apply threads
    are gone (so the caller may close the store at once)."""
    src = make_store("src", durable=False)
    fill(src, 20_000, "s", pad=200)
    opts = NetOptions(segment_bytes=64 * 1024, handshake_timeout=5)
    dst = make_store("dst")  # durable: each segment's apply takes an fsync
    server = start_server(dst, closing, options=opts)
    rep = Replicator(src, [f"127.0.0.1:{server.address[1]}"], options=opts).start()
    closing.append(rep.stop)
    wait_until(lambda: len(dst.version_vector()) > 0, 20, "the first applies on dst")
    server.close()

    def apply_threads() -> list[str]:
        return [t.name for t in threading.enumerate()
                if t.is_alive() and t.name.startswith("regiondb-") and "-apply" in t.name
                and dst.region in t.name]

    assert apply_threads() == []
    rep.stop()
    assert [t.name for t in threading.enumerate()
            if t.is_alive() and f"regiondb-repl-{src.region}" in t.name] == []


def test_network_failures_are_transport_errors(make_store: Any,
                                               closing: list[Callable[[], None]]) -> None:
    store = make_store("s")
    server = start_server(store, closing)
    with pytest.raises(engine.TransportBrokenError, match="cannot listen on 127.0.0.1") as bound:
        serve(store, port=server.address[1])
    assert isinstance(bound.value, OSError) and isinstance(bound.value.__cause__, OSError)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    with pytest.raises(engine.TransportBrokenError, match=f"sync with 127.0.0.1:{free}") as lost:
        sync(store, ("127.0.0.1", free), timeout=5)
    assert isinstance(lost.value, ConnectionError)
    with socket.socket() as silent:  # accepts, never answers: the sync's deadline passes
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        with pytest.raises(engine.TransportTimeoutError) as late:
            sync(store, silent.getsockname(), timeout=1, options=FAST)
    assert isinstance(late.value, TimeoutError)
