"""Admission control: a flood of idle and slow-loris sockets never keeps a real peer out.

A separate process holds hundreds of unauthenticated connections open, reopening each as the
server drops it, while legitimate peers run one-shot syncs back to back and a live
replicator pushes writes. Every legitimate sync must succeed (refused: 0), live writes must
arrive, and the server must have dropped pending handshakes (proof the flood was real).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_until

import engine
from replication.net import NetOptions, Replicator, serve, sync

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# The server cuts handshakes short (the flood's sockets cycle fast); the legitimate clients
# allow theirs the default time (on a loaded 2-core machine, their own deadline could
# otherwise pass while they wait for a CPU, which says nothing about admission).
OPTS = NetOptions(handshake_timeout=3.0, heartbeat=0.5, idle_timeout=5.0,
                  backoff_base=0.05, backoff_max=0.5)
CLIENT = NetOptions(handshake_timeout=10.0, heartbeat=0.5, idle_timeout=5.0,
                    backoff_base=0.05, backoff_max=0.5)


def flood(port: int, seconds: float, idle: int, loris: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.flood", "--port", str(port), "--idle",
         str(idle), "--loris", str(loris), "--seconds", str(seconds)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    assert json.loads(proc.stdout.readline())["event"] == "started"
    return proc


def run_flood_test(make_store: Any, closing: list[Callable[[], None]], seconds: float,
                   idle: int, loris: int) -> dict[str, Any]:
    """The scenario; returns its figures (the slow variant prints them)."""
    a = make_store("a", durable=False)
    a.create_table("t", partition_key="id")
    server = serve(a, secret="s", options=OPTS)
    closing.append(server.close)
    attackers = flood(server.address[1], seconds, idle, loris)
    closing.append(lambda: attackers.kill() if attackers.poll() is None else None)
    wait_until(lambda: server.pending >= OPTS.max_pending, 10, "the flood to fill the pool")
    live = make_store("live", durable=False)
    live.create_table("t", partition_key="id")
    rep = Replicator(live, [f"127.0.0.1:{server.address[1]}"], secret="s",
                     options=CLIENT).start()
    closing.append(rep.stop)
    syncs = refused = 0
    errors: list[str] = []
    deadline = time.monotonic() + seconds - 1.0
    i = 0
    while time.monotonic() < deadline:
        a.table("t").put({"id": f"a{i:05d}"})
        live.table("t").put({"id": f"live{i:05d}"})
        peer = make_store(f"p{i}", durable=False)
        try:
            sync(peer, server.address, secret="s", timeout=20, options=CLIENT)
            assert {x["id"] for x in peer.table("t").scan()} >= {f"a{i:05d}"}
        except engine.Error as exc:
            refused += 1
            errors.append(f"{type(exc).__name__}: {exc}")
        syncs += 1
        peer.close()
        i += 1
    want = {f"live{j:05d}" for j in range(i)}
    wait_until(lambda: want <= {x["id"] for x in a.table("t").scan()}, 10, "live writes")
    lag = rep.lag()[f"127.0.0.1:{server.address[1]}"]
    out, _ = attackers.communicate(timeout=seconds + 10)
    counts = json.loads(out.strip().splitlines()[-1])
    return {"syncs": syncs, "refused": refused, "errors": errors[:3],
            "evicted": server.refused.get("Evicted", 0), "flood": counts,
            "live_p50_ms": lag.p50_ms, "live_p99_ms": lag.p99_ms}


def test_flood_of_idle_and_slow_clients_never_refuses_a_real_peer(
        make_store: Any, closing: list[Callable[[], None]]) -> None:
    got = run_flood_test(make_store, closing, seconds=8.0, idle=200, loris=100)
    print(json.dumps(got))
    assert got["refused"] == 0, got
    assert got["syncs"] >= 3, got
    assert got["evicted"] > 0 and got["flood"]["dropped"] > 0, got


@pytest.mark.slow
def test_flood_soak(make_store: Any, closing: list[Callable[[], None]]) -> None:
    got = run_flood_test(make_store, closing, seconds=25.0, idle=300, loris=200)
    print(json.dumps(got))
    assert got["refused"] == 0, got
