"""Issue item 14: SIGKILL a writing process at random moments; every acknowledged write survives,
the log and the items agree, and the store opens cleanly every time."""

from __future__ import annotations

import os
import random
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import engine

pytestmark = pytest.mark.crash

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("crashproc.py")
ROUNDS = 100 if os.environ.get("REGIONDB_SLOW") else 20


def _read_lines(proc: subprocess.Popen[str], until: float, stop_after: int | None) -> list[str]:
    """Lines from the child's stdout until the deadline (or ``stop_after`` lines)."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    lines: list[str] = []
    try:
        while time.monotonic() < until and (stop_after is None or len(lines) < stop_after):
            if not sel.select(timeout=max(0.0, until - time.monotonic())):
                break
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
    finally:
        sel.close()
    return lines


def _run_and_kill(path: Path, run: int, rng: random.Random, threads: int = 1) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(CHILD), str(path), str(run), str(threads)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        ready = _read_lines(proc, time.monotonic() + 30, 1)
        if ready != ["ready"]:
            err = proc.stderr.read() if proc.poll() is not None else ""  # type: ignore[union-attr]
            pytest.fail(f"child did not start: {ready} {err}")
        # let it write for a random while, reading acknowledgements as they come
        acked = _read_lines(proc, time.monotonic() + rng.uniform(0.02, 0.4), None)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        # lines flushed before the kill are acknowledged writes too
        assert proc.stdout is not None
        rest = proc.stdout.read()
        acked += [line for line in rest.splitlines() if line.strip()]
        return acked
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _replay(feed: list[engine.Change]) -> dict[Any, dict[str, Any]]:
    """The table as the log says it should be: local, sequential writes replayed in order."""
    items: dict[Any, dict[str, Any]] = {}
    for c in feed:
        if c.kind in ("create_table", "create_index", "drop_index"):
            continue
        k = c.key["k"]
        if c.kind == "put":
            items[k] = dict(c.delta["item"])
        elif c.kind == "update":
            cur = items.setdefault(k, {})
            cur.update(c.delta["set"])
            for name in c.delta["remove"]:
                cur.pop(name, None)
        else:
            items.pop(k, None)
        assert items.get(k) == c.new_image, f"new_image of {c.position} disagrees with replay"
    return items


def _check(path: Path, acked_ever: dict[str, Any], maybe_deleted: set[str]) -> None:
    with engine.open(path) as store:  # opens cleanly
        t = store.table("t")
        feed = list(store.changes())
        # the log and the items agree
        replayed = _replay(feed)
        actual = {i["k"]: i for i in t.scan()}
        assert actual == replayed
        # every acknowledged write is there
        for key, expect in acked_ever.items():
            if key in maybe_deleted and key not in actual:
                continue  # its delete was in flight at the kill and did commit
            if expect is None:
                assert key not in actual, f"acknowledged delete of {key} lost"
            else:
                assert key in actual, f"acknowledged write of {key} lost"
                for attr in expect:
                    assert actual[key].get(attr) is True, f"acknowledged update {attr} lost"
        # the version vector counts the local log
        seqs = {c.seq for c in feed if c.origin == store.node_id}
        assert store.version_vector() == {store.node_id: len(seqs)}
        assert seqs == set(range(1, len(seqs) + 1))
        assert store.stats()["log_entries"] == len(seqs)
        store.digest()
        report = store.integrity_check()  # index == items, log == items
        assert report.ok and report.replayed, report.problems


@pytest.mark.parametrize("threads", [1, 4])
def test_sigkill_during_writes(tmp_path: Path, threads: int) -> None:
    """Killed at random moments, with one writer or with four sharing group commits."""
    rng = random.Random(os.environ.get("REGIONDB_CRASH_SEED", "regiondb"))
    path = tmp_path / "s"
    with engine.open(path, region="crash", map_size=256 << 10) as store:
        # an index over the written values: maintained in every killed transaction too
        store.create_table("t", partition_key="k", indexes=[engine.Index("by_v", "v")])
    acked_ever: dict[str, Any] = {}  # key -> set of update attrs that must be True, or None
    maybe_deleted: set[str] = set()
    total = 0
    for run in range(1, ROUNDS + 1):
        lines = _run_and_kill(path, run, rng, threads)
        for line in lines:
            kind, *args = line.split()
            if kind == "P":
                acked_ever[args[0]] = set()
            elif kind == "B":
                for k in args:
                    acked_ever[k] = set()
            elif kind == "U":
                if acked_ever.get(args[0]) is not None:
                    acked_ever[args[0]].add(args[1])
            elif kind == "D":
                acked_ever[args[0]] = None
            elif kind == "intent":
                maybe_deleted.add(args[1])
                continue
            total += 1
        _check(path, acked_ever, maybe_deleted)
    assert total > ROUNDS  # the children did write between kills
    with engine.open(path) as store:
        assert store.stats()["map_size"] > 256 << 10  # and the map grew along the way
