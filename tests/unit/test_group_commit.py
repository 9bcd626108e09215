"""Group commit: concurrent writers of one process share a transaction and its durable sync,
and each keeps its own condition, result, exception and sequence number."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import engine


def _txnid(store: engine.Store) -> int:
    return int(store._e().lmdb.info()["last_txnid"])


def _queued(store: engine.Store) -> int:
    env = store._e()
    with env._queue_lock:
        return len(env._queue)


def _wait(pred: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


def _held_group(store: engine.Store, writes: list[Callable[[], Any]]) -> list[Any]:
    """Run ``writes`` in threads while a first write holds the commit, so that they queue up
    behind it and commit as one group; return each one's result or exception."""
    t = store.table("t")
    release = threading.Event()

    def holding(_: object) -> bool:
        release.wait(30)
        return True

    outcomes: list[Any] = [None] * len(writes)

    def run(i: int) -> None:
        try:
            outcomes[i] = writes[i]()
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            outcomes[i] = exc

    first = threading.Thread(target=lambda: t.put({"id": "holder"}, condition=holding))
    first.start()
    _wait(lambda: store._e()._writer != 0)  # the holder is inside its transaction
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(writes))]
    for th in threads:
        th.start()
    _wait(lambda: _queued(store) == len(writes))
    release.set()
    first.join(30)
    for th in threads:
        th.join(30)
    return outcomes


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with engine.open(tmp_path / "s", region="ap-south-1") as s:
        s.create_table("t", partition_key="id")
        yield s


def test_queued_writers_share_one_commit(store: engine.Store) -> None:
    t = store.table("t")
    before = _txnid(store)
    outcomes = _held_group(store, [lambda i=i: t.update(f"k{i}", set={"n": i})
                                   for i in range(8)])
    assert outcomes == [{"id": f"k{i}", "n": i} for i in range(8)]  # each its own result
    assert _txnid(store) - before == 2  # the holder's commit, then one for all eight
    assert {c.key["id"] for c in store.changes() if c.kind != "create_table"} \
        == {"holder", *(f"k{i}" for i in range(8))}
    # every write keeps its own seq, contiguous with no gaps
    assert store.version_vector() == {store.node_id: 1 + 1 + 8}


def test_a_failed_condition_fails_that_write_alone(store: engine.Store) -> None:
    t = store.table("t")
    t.put({"id": "taken"})
    digest_items = {"taken"}

    def write(i: int) -> Callable[[], Any]:
        if i == 3:
            return lambda: t.put({"id": "taken", "x": 1}, condition=lambda cur: cur is None)
        return lambda: t.put({"id": f"k{i}"})

    before = _txnid(store)
    outcomes = _held_group(store, [write(i) for i in range(6)])
    assert isinstance(outcomes[3], engine.ConditionFailed)
    assert all(o is None for i, o in enumerate(outcomes) if i != 3)
    assert _txnid(store) - before == 2
    assert t.get("taken") == {"id": "taken"}  # the failed write changed nothing
    got = {item["id"] for item in t.scan()}
    assert got == digest_items | {"holder"} | {f"k{i}" for i in range(6) if i != 3}
    assert store.version_vector() == {store.node_id: 1 + 1 + 1 + 5}


def test_a_bad_write_in_a_group_raises_its_own_error(store: engine.Store) -> None:
    t = store.table("t")

    def bad() -> Any:
        def boom(_: object) -> bool:
            raise RuntimeError("condition exploded")
        return t.put({"id": "bad"}, condition=boom)

    outcomes = _held_group(store, [lambda: t.put({"id": "a"}), bad, lambda: t.put({"id": "b"})])
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], RuntimeError) and "exploded" in str(outcomes[1])
    assert t.get("bad") is None and t.get("a") and t.get("b")


def test_many_threads_all_commit_with_distinct_seqs(store: engine.Store) -> None:
    t = store.table("t")
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for i in range(50):
                t.put({"id": f"w{w}-{i}", "w": w})
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    before = _txnid(store)
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert errors == []
    assert sum(1 for _ in t.scan()) == 400
    seqs = [c.seq for c in store.changes() if c.kind != "create_table"]
    assert sorted(seqs) == list(range(2, 402))
    assert _txnid(store) - before <= 400  # never more commits than writes


def test_a_group_grows_a_full_map(tmp_path: Path) -> None:
    with engine.open(tmp_path / "s", region="x", map_size=256 << 10) as store:
        t = store.create_table("t", partition_key="id")
        blob = b"\x00" * 30_000
        outcomes = _held_group(store, [lambda i=i: t.put({"id": f"k{i}", "b": blob})
                                       for i in range(12)])
        assert outcomes == [None] * 12
        assert sum(1 for _ in t.scan()) == 13
