"""The local rows: writes, batches, reads, range queries, updates, deletes, scans, 4 writers.

Every backend gets its own fresh store, all open at once, prepopulated with
``customers x orders_per_customer`` order items. Rounds are **interleaved**: round 1 of every
backend, then round 2 (in a rotated order), and so on, so that a noisy neighbour or a slow patch
of the disk hits all backends alike instead of whichever happened to run then. Writes use keys no
other row touches, and each backend draws the same random keys, so all do the same work.
"""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from .backends import Backend
from .data import ORDERS, ORDERS_PK, ORDERS_SK, customer_id, order_id, order_item
from .harness import opened
from .sizes import Sizes
from .stats import RoundResult, summarize, threaded, time_ops

__all__ = ["LOCAL_ROWS", "WRITE_BACKENDS", "run_local"]

WRITE_BACKENDS = [
    "regiondb", "raw_lmdb", "sqlite_normal", "sqlite_full", "regiondb_nosync", "raw_lmdb_nosync",
]

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
    return threaded(threads, lambda i: time_ops(lambda it: backend.put(ORDERS, it), shares[i]))


class LocalRunner:
    """One backend's store and the state its rows share; each ``*_round`` runs one round."""

    def __init__(self, backend: Backend, sizes: Sizes) -> None:
        self.b = backend
        self.sizes = sizes
        self.rnd = random.Random(42)  # same seed for every backend: the same keys everywhere
        c, per = sizes.customers, sizes.orders_per_customer
        backend.create_table(ORDERS, ORDERS_PK, ORDERS_SK)
        prepop = [order_item(i, j) for i in range(c) for j in range(per)]
        for i in range(0, len(prepop), sizes.batch_size):
            backend.put_batch(ORDERS, prepop[i : i + sizes.batch_size])
        self.existing = [(customer_id(i), order_id(j)) for i in range(c) for j in range(per)]
        self.next_cust = c  # fresh partitions for new writes, 1000 orders each
        self.single_written: list[list[dict[str, Any]]] = []
        self.last_keys: list[tuple[str, str]] = []
        self.scanned = 0

    def fresh(self, n: int) -> list[dict[str, Any]]:
        """``n`` order items under keys nobody wrote yet."""
        out = [order_item(self.next_cust + k // 1000, k % 1000) for k in range(n)]
        self.next_cust += (n + 999) // 1000
        return out

    def _random_existing(self, n: int) -> list[tuple[str, str]]:
        return [self.existing[self.rnd.randrange(len(self.existing))] for _ in range(n)]

    # -- rounds --------------------------------------------------------------------------

    def write_single_round(self, r: int) -> RoundResult:
        items = self.fresh(self.sizes.single_writes)
        self.single_written.append(items)
        return time_ops(lambda it: self.b.put(ORDERS, it), items)

    def write_batch_round(self, r: int) -> RoundResult:
        batches = [self.fresh(self.sizes.batch_size) for _ in range(self.sizes.batches)]
        return time_ops(lambda b: self.b.put_batch(ORDERS, b), batches,
                        units_per_op=self.sizes.batch_size)

    def get_hit_round(self, r: int) -> RoundResult:
        keys = self._random_existing(self.sizes.gets)
        return time_ops(lambda k: self.b.get(ORDERS, k[0], k[1]), keys)

    def query_100_round(self, r: int) -> RoundResult:
        custs = [customer_id(self.rnd.randrange(self.sizes.customers))
                 for _ in range(self.sizes.queries)]
        return time_ops(lambda p: self.b.query(ORDERS, p, limit=100), custs, units_per_op=100)

    def update_round(self, r: int) -> RoundResult:
        keys = self._random_existing(self.sizes.single_writes)
        self.last_keys = keys
        changes = {"status": "SHIPPED", "tracking": f"TRK-{r:02d}-0000000001"}
        return time_ops(lambda k: self.b.update(ORDERS, k[0], k[1], changes), keys)

    def delete_round(self, r: int) -> RoundResult:
        if r >= len(self.single_written):
            raise RuntimeError("write_single produced no items to delete")
        keys = [(i[ORDERS_PK], i[ORDERS_SK]) for i in self.single_written[r]]
        self.last_keys = keys
        return time_ops(lambda k: self.b.delete(ORDERS, k[0], k[1]), keys)

    def scan_round(self, r: int) -> RoundResult:
        t0 = time.perf_counter_ns()
        self.scanned = self.b.scan(ORDERS)
        dt = time.perf_counter_ns() - t0
        return RoundResult([dt], dt, self.scanned)

    def threads4_round(self, r: int) -> RoundResult:
        return _threaded_round(self.b, self.fresh(self.sizes.thread_writes), self.sizes.threads)

    # -- checks (after the rounds; never timed) ---------------------------------------------

    def check(self, row: str) -> dict[str, Any]:
        """Verify the row did what it claims; return extra fields for the row."""
        b = self.b
        if row == "write_single":
            item = self.single_written[0][0]
            got = b.get(ORDERS, item[ORDERS_PK], item[ORDERS_SK])
            if got != item:
                raise AssertionError(f"read back differs: {got!r} != {item!r}")
        elif row == "get_hit":
            if b.get(ORDERS, *self.existing[0]) != order_item(0, 0):
                raise AssertionError("point read returned a different item")
        elif row == "query_100":
            got = b.query(ORDERS, customer_id(0), limit=100)
            if len(got) != 100 or got[0] != order_item(0, 0) or got[-1] != order_item(0, 99):
                raise AssertionError(f"query returned {len(got)} items or the wrong ones")
        elif row == "update":
            got = b.get(ORDERS, *self.last_keys[0])
            if not got or got.get("status") != "SHIPPED" or "sku" not in got:
                raise AssertionError(f"update lost attributes or did not apply: {got!r}")
        elif row == "delete":
            if b.get(ORDERS, *self.last_keys[0]) is not None:
                raise AssertionError("deleted item still readable")
        elif row == "scan":
            return {"items_per_scan": self.scanned}
        elif row == "threads4":
            return {"threads": self.sizes.threads}
        return {}


def _record(row: str, name: str, rounds: list[RoundResult], extra: dict[str, Any],
            progress: Progress) -> dict[str, Any]:
    title, unit, per_what, _ = LOCAL_ROWS[row]
    s = summarize(rounds)
    throughput = s.units_per_s if unit == "items/s" else s.ops_per_s
    progress(f"local {row:<13} {name:<16} {throughput:>12,.0f} {unit}"
             f"  p50 {s.p50_us:,.1f} us  p99 {s.p99_us:,.1f} us")
    return {"group": "local", "row": row, "title": title, "backend": name, "unit": unit,
            "latency_per": per_what, "throughput": throughput, **s.as_dict(), **extra}


def _error(row: str, name: str, exc: BaseException, progress: Progress) -> dict[str, Any]:
    progress(f"local {row:<13} {name:<16} ERROR {type(exc).__name__}: {exc}")
    return {"group": "local", "row": row, "title": LOCAL_ROWS.get(row, (row,))[0],
            "backend": name, "unit": LOCAL_ROWS.get(row, ("", ""))[1],
            "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=6)}


def run_local(sizes: Sizes, backends: list[str], progress: Progress) -> list[dict[str, Any]]:
    """All local rows, every backend on its own fresh store, rounds interleaved."""
    rows: list[dict[str, Any]] = []
    with ExitStack() as stack:
        runners: list[LocalRunner] = []
        for name in backends:
            try:
                runners.append(LocalRunner(stack.enter_context(opened(name)), sizes))
            except Exception as exc:  # noqa: BLE001 - e.g. the engine failing to open
                rows.append(_error("*", name, exc, progress))
        for row, (_title, _unit, _per, is_write) in LOCAL_ROWS.items():
            active = [r for r in runners if is_write or not r.b.name.endswith("_nosync")]
            results: dict[str, list[RoundResult]] = {r.b.name: [] for r in active}
            failed: dict[str, dict[str, Any]] = {}
            # Read rows are cheap and short, so a descheduling moves them most: 3x the rounds.
            n_rounds = sizes.rounds if is_write else 3 * sizes.rounds
            for i in range(n_rounds):
                k = i % max(1, len(active))
                for runner in active[k:] + active[:k]:  # rotate who goes first
                    if runner.b.name in failed:
                        continue
                    try:
                        results[runner.b.name].append(getattr(runner, f"{row}_round")(i))
                    except Exception as exc:  # noqa: BLE001 - one broken row must not sink the run
                        failed[runner.b.name] = _error(row, runner.b.name, exc, progress)
            for runner in active:
                name = runner.b.name
                if name in failed:
                    rows.append(failed[name])
                    continue
                try:
                    extra = runner.check(row)
                except Exception as exc:  # noqa: BLE001
                    rows.append(_error(row, name, exc, progress))
                    continue
                rows.append(_record(row, name, results[name], extra, progress))
    return rows
