"""The local rows: writes, batches, reads, range queries, updates, deletes, scans, 4 writers.

One store per backend, prepopulated with ``customers x orders_per_customer`` order items, then
each row runs ``rounds`` times. Writes use keys no other row touches, so every backend does
exactly the same work in the same order.
"""

from __future__ import annotations

import random
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from .backends import Backend
from .data import ORDERS, ORDERS_PK, ORDERS_SK, customer_id, order_id, order_item
from .harness import opened
from .sizes import Sizes
from .stats import RoundResult, summarize, time_ops

__all__ = ["LOCAL_ROWS", "READ_BACKENDS", "WRITE_BACKENDS", "run_local"]

WRITE_BACKENDS = [
    "regiondb", "raw_lmdb", "sqlite_normal", "sqlite_full", "regiondb_nosync", "raw_lmdb_nosync",
]
READ_BACKENDS = ["regiondb", "raw_lmdb", "sqlite_normal", "sqlite_full"]

# row id -> (title, unit of throughput, latency is per ..., is a write row)
LOCAL_ROWS: dict[str, tuple[str, str, str, bool]] = {
    "write_single": ("single-write txn (1 item)", "writes/s", "write", True),
    "write_batch": ("batched writes (1000/txn)", "items/s", "batch of 1000", True),
    "get_hit": ("point read (hit)", "reads/s", "read", False),
    "query_100": ("range query, 100 items of 1 partition", "queries/s", "query", False),
    "update": ("update (read-modify-write)", "updates/s", "update", True),
    "delete": ("delete", "deletes/s", "delete", True),
    "scan": ("full scan", "items/s", "scan", False),
    "threads4": ("4 threads writing at once", "writes/s", "write", True),
}

Progress = Callable[[str], None]


def _threaded_round(backend: Backend, items: list[dict[str, Any]], threads: int) -> RoundResult:
    """All threads start together and each writes its share; wall time spans all of them."""
    shares = [items[i::threads] for i in range(threads)]
    results: list[RoundResult | None] = [None] * threads
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads + 1)

    def work(i: int) -> None:
        barrier.wait()
        try:
            results[i] = time_ops(lambda it: backend.put(ORDERS, it), shares[i])
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    barrier.wait()
    start = time.perf_counter_ns()
    for w in workers:
        w.join()
    wall = time.perf_counter_ns() - start
    if errors:
        raise errors[0]
    lat = [x for r in results if r is not None for x in r.latencies_ns]
    return RoundResult(lat, wall, len(lat))


def _rows_for(backend: Backend, sizes: Sizes, progress: Progress) -> list[dict[str, Any]]:
    """Run every local row applicable to ``backend`` on one prepopulated store."""
    rnd = random.Random(42)
    rows: list[dict[str, Any]] = []
    writes_only = backend.name.endswith("_nosync")
    backend.create_table(ORDERS, ORDERS_PK, ORDERS_SK)
    c, per = sizes.customers, sizes.orders_per_customer
    prepop = [order_item(i, j) for i in range(c) for j in range(per)]
    for i in range(0, len(prepop), sizes.batch_size):
        backend.put_batch(ORDERS, prepop[i : i + sizes.batch_size])
    existing = [(customer_id(i), order_id(j)) for i in range(c) for j in range(per)]
    next_cust = c  # fresh partitions for new writes, 1000 orders each

    def fresh(n: int) -> list[dict[str, Any]]:
        nonlocal next_cust
        out = [order_item(next_cust + k // 1000, k % 1000) for k in range(n)]
        next_cust += (n + 999) // 1000
        return out

    single_written: list[list[dict[str, Any]]] = []

    def record(row: str, rounds: list[RoundResult], **extra: Any) -> None:
        title, unit, per_what, _ = LOCAL_ROWS[row]
        s = summarize(rounds)
        throughput = s.units_per_s if unit in ("items/s",) else s.ops_per_s
        rows.append({
            "group": "local", "row": row, "title": title, "backend": backend.name,
            "unit": unit, "latency_per": per_what, "throughput": throughput,
            **s.as_dict(), **extra,
        })
        progress(f"local {row:<13} {backend.name:<16} {throughput:>12,.0f} {unit}"
                 f"  p50 {s.p50_us:,.1f} us  p99 {s.p99_us:,.1f} us")

    def guarded(row: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - one broken row must not sink the run
            rows.append({"group": "local", "row": row, "title": LOCAL_ROWS[row][0],
                         "backend": backend.name, "unit": LOCAL_ROWS[row][1],
                         "error": f"{type(exc).__name__}: {exc}",
                         "traceback": traceback.format_exc(limit=6)})
            progress(f"local {row:<13} {backend.name:<16} ERROR {type(exc).__name__}: {exc}")

    def write_single() -> None:
        rounds = []
        for _ in range(sizes.rounds):
            items = fresh(sizes.single_writes)
            rounds.append(time_ops(lambda it: backend.put(ORDERS, it), items))
            single_written.append(items)
        check = single_written[0][0]
        got = backend.get(ORDERS, check[ORDERS_PK], check[ORDERS_SK])
        if got != check:
            raise AssertionError(f"read back differs: {got!r} != {check!r}")
        record("write_single", rounds)

    def write_batch() -> None:
        rounds = []
        for _ in range(sizes.rounds):
            batches = [fresh(sizes.batch_size) for _ in range(sizes.batches)]
            rounds.append(time_ops(lambda b: backend.put_batch(ORDERS, b), batches,
                                   units_per_op=sizes.batch_size))
        record("write_batch", rounds)

    def get_hit() -> None:
        rounds = []
        for _ in range(sizes.rounds):
            keys = [existing[rnd.randrange(len(existing))] for _ in range(sizes.gets)]
            rounds.append(time_ops(lambda k: backend.get(ORDERS, k[0], k[1]), keys))
        pk, sk = existing[0]
        if backend.get(ORDERS, pk, sk) != order_item(0, 0):
            raise AssertionError("point read returned a different item")
        record("get_hit", rounds)

    def query_100() -> None:
        got = backend.query(ORDERS, customer_id(0), limit=100)
        if len(got) != 100 or got[0] != order_item(0, 0) or got[-1] != order_item(0, 99):
            raise AssertionError(f"query returned {len(got)} items or the wrong ones")
        rounds = []
        for _ in range(sizes.rounds):
            custs = [customer_id(rnd.randrange(c)) for _ in range(sizes.queries)]
            rounds.append(time_ops(lambda p: backend.query(ORDERS, p, limit=100), custs,
                                   units_per_op=100))
        record("query_100", rounds)

    def update() -> None:
        rounds = []
        for r in range(sizes.rounds):
            keys = [existing[rnd.randrange(len(existing))] for _ in range(sizes.single_writes)]
            changes = {"status": "SHIPPED", "tracking": f"TRK-{r:02d}-0000000001"}
            rounds.append(time_ops(lambda k: backend.update(ORDERS, k[0], k[1], changes), keys))
        got = backend.get(ORDERS, keys[0][0], keys[0][1])
        if not got or got.get("status") != "SHIPPED" or "sku" not in got:
            raise AssertionError(f"update lost attributes or did not apply: {got!r}")
        record("update", rounds)

    def delete() -> None:
        if not single_written:
            raise RuntimeError("write_single produced no items to delete")
        rounds = []
        for items in single_written:
            keys = [(i[ORDERS_PK], i[ORDERS_SK]) for i in items]
            rounds.append(time_ops(lambda k: backend.delete(ORDERS, k[0], k[1]), keys))
        if backend.get(ORDERS, keys[0][0], keys[0][1]) is not None:
            raise AssertionError("deleted item still readable")
        record("delete", rounds)

    def scan() -> None:
        rounds = []
        count = 0
        for _ in range(sizes.rounds):
            t0 = time.perf_counter_ns()
            count = backend.scan(ORDERS)
            dt = time.perf_counter_ns() - t0
            rounds.append(RoundResult([dt], dt, count))
        record("scan", rounds, items_per_scan=count)

    def threads4() -> None:
        rounds = [
            _threaded_round(backend, fresh(sizes.thread_writes), sizes.threads)
            for _ in range(sizes.rounds)
        ]
        record("threads4", rounds, threads=sizes.threads)

    plan: list[tuple[str, Callable[[], None]]] = [
        ("write_single", write_single), ("write_batch", write_batch), ("get_hit", get_hit),
        ("query_100", query_100), ("update", update), ("delete", delete), ("scan", scan),
        ("threads4", threads4),
    ]
    for row, fn in plan:
        if writes_only and not LOCAL_ROWS[row][3]:
            continue
        guarded(row, fn)
    return rows


def run_local(sizes: Sizes, backends: list[str], progress: Progress) -> list[dict[str, Any]]:
    """All local rows for each backend in turn, each backend on its own fresh store."""
    rows: list[dict[str, Any]] = []
    for name in backends:
        try:
            with opened(name) as backend:
                rows.extend(_rows_for(backend, sizes, progress))
        except Exception as exc:  # noqa: BLE001 - e.g. the engine failing to open
            rows.append({"group": "local", "row": "*", "backend": name,
                         "error": f"{type(exc).__name__}: {exc}",
                         "traceback": traceback.format_exc(limit=6)})
            progress(f"local {name}: ERROR {type(exc).__name__}: {exc}")
    return rows
