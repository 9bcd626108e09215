"""Issue item 11: threads sharing one store, and processes sharing one store directory."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from itertools import pairwise
from pathlib import Path

import pytest

import engine

pytestmark = pytest.mark.integration

SCALE = 5 if os.environ.get("REGIONDB_SLOW") else 1
ROOT = Path(__file__).resolve().parents[2]


def _check_log(store: engine.Store) -> list[engine.Change]:
    """The local log: seqs contiguous 1..N, HLCs strictly increasing in log order."""
    feed = [c for c in store.changes() if c.origin == store.node_id]
    seqs = sorted({c.seq for c in feed})
    assert seqs == list(range(1, len(seqs) + 1)), "seqs are not contiguous"
    per_txn: dict[int, int] = {}
    for c in feed:
        assert per_txn.setdefault(c.seq, c.hlc) == c.hlc
    hlcs = [per_txn[s] for s in seqs]
    assert all(a < b for a, b in pairwise(hlcs)), "HLCs not strictly increasing"
    assert store.version_vector()[store.node_id] == len(seqs)
    return feed


def test_threads_write_and_read_one_store(tmp_path: Path) -> None:
    n_threads, per_thread = 4, 150 * SCALE
    with engine.open(tmp_path / "s", region="r", durable=False) as store:
        t = store.create_table("t", partition_key="writer", sort_key="i")
        errors: list[BaseException] = []
        start = threading.Barrier(n_threads + 1)

        def writer(w: int) -> None:
            try:
                start.wait(timeout=30)
                for i in range(per_thread):
                    if i % 10 == 9:
                        with store.batch() as b:
                            b.put(t, {"writer": w, "i": i, "batch": True})
                            b.update(t, w, -1, set={"last": i})
                    else:
                        t.put({"writer": w, "i": i})
                    if i % 7 == 0:
                        t.update(w, i, set={"touched": True})
                    assert t.get(w, i) is not None  # read your own write
                    list(t.query(w, limit=5, reverse=True))
                    list(t.scan(limit=20))
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(n_threads)]
        for th in threads:
            th.start()
        start.wait(timeout=30)
        for th in threads:
            th.join(timeout=120)
            assert not th.is_alive(), "a writer thread hung"
        assert not errors, errors
        for w in range(n_threads):
            got = [i["i"] for i in t.query(w) if i["i"] >= 0]
            assert got == list(range(per_thread)), f"writer {w} lost writes"
            assert t.get(w, -1) == {"writer": w, "i": -1, "last": per_thread - 1}
        feed = _check_log(store)
        versions = [c.version for c in feed]
        assert len({c.seq for c in feed}) == len(set(versions)), "two transactions shared a version"


WRITER = textwrap.dedent(
    """
    import sys
    import engine
    path, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with engine.open(path, durable=False) as store:
        t = store.table("t")
        print("ready", flush=True)
        sys.stdin.readline()  # start together
        for i in range(count):
            if i % 5 == 4:
                with store.batch() as b:
                    b.put(t, {"writer": name, "i": i})
            else:
                t.put({"writer": name, "i": i})
    print("done", flush=True)
    """
)


def test_two_processes_write_one_directory(tmp_path: Path) -> None:
    count = 400 * SCALE
    path = tmp_path / "s"
    with engine.open(path, region="r") as store:
        store.create_table("t", partition_key="writer", sort_key="i")
        node = store.node_id
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, str(script), str(path), name, str(count)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
             for name in ("p1", "p2")]
    try:
        for p in procs:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in procs:
            out, _ = p.communicate(timeout=120)
            assert p.returncode == 0 and out.strip() == "done"
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
    with engine.open(path) as store:
        assert store.node_id == node  # both processes wrote as the same node
        t = store.table("t")
        for name in ("p1", "p2"):
            assert [i["i"] for i in t.query(name)] == list(range(count))
        feed = _check_log(store)
        assert len({c.seq for c in feed}) == 1 + 2 * count
