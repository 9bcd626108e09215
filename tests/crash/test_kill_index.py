"""SIGKILL during an index backfill, an index drop and segment merges into indexed tables:
after every reopen the index equals the items (``integrity_check``), and the interrupted
backfill or drop completes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_kill_during_write import _read_lines

import engine
from engine import Index
from replication import exchange as ex
from replication.segment import decode_segment

pytestmark = pytest.mark.crash

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("indexproc.py")
ROUNDS = 30 if os.environ.get("REGIONDB_SLOW") else 8


def _kill_after(args: list[str], rng: random.Random, most: float,
                lines_before: int | None = None) -> list[str]:
    """Run the child, let it work for a random while (or until it printed ``lines_before``
    lines, so a fast machine cannot finish first), SIGKILL it; return its lines."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(CHILD), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        ready = _read_lines(proc, time.monotonic() + 30, 1)
        if ready != ["ready"]:
            err = proc.stderr.read() if proc.poll() is not None else ""  # type: ignore[union-attr]
            pytest.fail(f"child did not start: {ready} {err}")
        if lines_before is None:
            lines = _read_lines(proc, time.monotonic() + rng.uniform(0.0, most), None)
        else:
            lines = _read_lines(proc, time.monotonic() + 60, lines_before)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.stdout is not None
        return lines + proc.stdout.read().splitlines()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _check(path: Path) -> engine.Store:
    store = engine.open(path)  # reopening finishes an interrupted fill or clear
    report = store.integrity_check()
    assert report.ok, report.problems
    return store


def test_sigkill_during_backfill_and_drop(tmp_path: Path) -> None:
    rng = random.Random(os.environ.get("REGIONDB_CRASH_SEED", "regiondb-index"))
    path = tmp_path / "s"
    with engine.open(path, region="crash") as store:
        t = store.create_table("t", "k")
        with store.batch() as b:
            for i in range(3000):
                b.put(t, {"k": i, "g": i % 7, "v": i})
    interrupted = 0
    for _ in range(ROUNDS):
        lines = _kill_after(["build", str(path)], rng, 0.6)
        finished = "built" in lines or "dropped" in lines
        interrupted += not finished
        with _check(path) as store:
            t = store.table("t")
            if t.indexes():
                assert [i["v"] for i in t.query(3, index="by_g", limit=3)] == [3, 10, 17]
                assert sum(1 for _ in t.query(3, index="by_g")) == 3000 // 7 + (3 < 3000 % 7)
    assert interrupted, "no kill landed inside a backfill or drop: the test proved nothing"


def test_sigkill_during_merges(tmp_path: Path) -> None:
    rng = random.Random(os.environ.get("REGIONDB_CRASH_SEED", "regiondb-merge"))
    src_path, dst_path, segdir = tmp_path / "src", tmp_path / "dst", tmp_path / "segs"
    segdir.mkdir()
    with engine.open(src_path, region="src", durable=False) as src:
        t = src.create_table("t", "k", indexes=[Index("by_g", "g", "v"),
                                                Index("by_w", "w", projection="KEYS_ONLY")])
        for n in range(60):
            with src.batch() as b:
                for i in range(20):
                    k = (n * 7 + i * 13) % 400
                    if (n + i) % 5 == 0:
                        b.delete(t, k)
                    else:
                        b.put(t, {"k": k, "g": (n + i) % 4, "v": n, "w": f"w{i % 3}"})
        for i, data in enumerate(ex.segments_for(src, {}, max_records=2)):
            (segdir / f"{i:05d}.seg").write_bytes(data)
        want = sorted((i["k"], i["v"]) for i in t.query(1, index="by_g"))
    with engine.open(dst_path, region="dst"):
        pass
    files = len(list(segdir.iterdir()))
    early = 0
    for r in range(ROUNDS):
        # every other round is killed part-way by progress (a fast machine would otherwise
        # finish the pass inside any short random delay), the others by a random delay
        cut = rng.randrange(1, files) if r % 2 == 0 else None
        lines = _kill_after(["merge", str(dst_path), str(segdir)], rng, 0.3, cut)
        early += sum(1 for line in lines if line.startswith("applied")) < files
        _check(dst_path).close()
    assert early, "no kill landed before the first pass over the segments ended"
    with _check(dst_path) as dst:
        for f in sorted(segdir.iterdir()):  # finish whatever the kills left out
            ex.apply_segment(dst, decode_segment(f.read_bytes()))
        assert dst.integrity_check().ok
        got = sorted((i["k"], i["v"]) for i in dst.table("t").query(1, index="by_g"))
        assert got == want
