"""What secondary indexes cost and give, measured as ratios in the same run.

Rows (group ``indexes``), every one on regiondb (``engine``, durable):

- ``write_single_{0,1,3}``: durable single-item puts per second into a table with 0, 1 or 3
  indexes (each write maintains every index in its own transaction); ratio to 0 indexes.
- ``write_batch_{0,1,3}``: the same in batches of ``batch_size``; ratio to 0 indexes.
- ``query_table`` / ``query_index_all`` / ``query_index_keys``: 100-item partition queries per
  second, of the table and of an index partition holding the same 100 items (``ALL``: each
  entry resolved to its item in the same read; ``KEYS_ONLY``: the entry alone); ratio to the
  table query.
- ``backfill``: items per second that ``create_index`` fills on a table of ``repl_changes``
  items (100,000 in the full run), in its chunked, durable transactions.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import engine
from engine import Index

from .data import ORDERS, ORDERS_PK, ORDERS_SK, order_item
from .harness import scratch_dir
from .sizes import Sizes

__all__ = ["run_indexes"]

Progress = Callable[[str], None]

INDEXES = [
    Index("by_status", "status", "created_at"),
    Index("by_sku", "sku", projection="KEYS_ONLY"),
    Index("by_price", "currency", "price_cents", projection=["qty"]),
]
ROWS = {
    "write_single": ("durable single puts, {n} indexes", "writes/s"),
    "write_batch": ("durable batched puts, {n} indexes", "items/s"),
    "query_table": ("100-item query of the table", "queries/s"),
    "query_index_all": ("100-item query of an index (ALL)", "queries/s"),
    "query_index_keys": ("100-item query of an index (KEYS_ONLY)", "queries/s"),
    "backfill": ("create_index backfill of a {n:,}-item table", "items/s"),
}


def _row(row: str, value: float | None, n: int | None = None, **extra: Any) -> dict[str, Any]:
    title, unit = ROWS[row]
    name = row if n is None or row == "backfill" else f"{row}_{n}"
    return {"group": "indexes", "row": name, "title": title.format(n=n), "backend": "engine",
            "unit": unit, "value": value, "available": value is not None, **extra}


def _items(count: int, base: int) -> Iterator[dict[str, Any]]:
    for i in range(count):
        yield order_item(base + i // 100, i % 100)


def _store(root: Path, n: int) -> engine.Store:
    store = engine.open(root / "s", region="bench-1")
    store.create_table(ORDERS, ORDERS_PK, ORDERS_SK, indexes=INDEXES[:n])
    return store


def _writes_single(root: Path, n: int, sizes: Sizes, r: int) -> float:
    with _store(root, n) as store:
        t = store.table(ORDERS)
        items = list(_items(sizes.single_writes, 1_000_000 * (r + 1)))
        start = time.perf_counter()
        for it in items:
            t.put(it)
        return len(items) / (time.perf_counter() - start)


def _writes_batch(root: Path, n: int, sizes: Sizes, r: int) -> float:
    with _store(root, n) as store:
        t = store.table(ORDERS)
        items = list(_items(sizes.batches * sizes.batch_size, 1_000_000 * (r + 1)))
        start = time.perf_counter()
        for i in range(0, len(items), sizes.batch_size):
            with store.batch() as b:
                for it in items[i:i + sizes.batch_size]:
                    b.put(t, it)
        return len(items) / (time.perf_counter() - start)


def _queries(root: Path, sizes: Sizes) -> dict[str, float]:
    """Queries/s of the table and of two indexes over partitions of the same 100 items."""
    with engine.open(root / "q", region="bench-1") as store:
        t = store.create_table(ORDERS, ORDERS_PK, ORDERS_SK, indexes=[
            Index("by_shard", "shard", "created_at"),
            Index("by_shard_keys", "shard", "created_at", projection="KEYS_ONLY")])
        custs = max(2, sizes.customers)
        for c in range(custs):
            with store.batch() as b:
                for o in range(100):
                    b.put(t, {**order_item(c, o), "shard": f"shard-{c}"})
        out: dict[str, float] = {}
        for row, run in (
            ("query_table", lambda c: t.query(order_item(c, 0)[ORDERS_PK], limit=100)),
            ("query_index_all", lambda c: t.query(f"shard-{c}", index="by_shard", limit=100)),
            ("query_index_keys",
             lambda c: t.query(f"shard-{c}", index="by_shard_keys", limit=100)),
        ):
            start = time.perf_counter()
            for q in range(sizes.queries):
                got = sum(1 for _ in run(q % custs))
                assert got == 100, (row, got)
            out[row] = sizes.queries / (time.perf_counter() - start)
        return out


def _backfill(root: Path, count: int, batch: int) -> float:
    with engine.open(root / "b", region="bench-1") as store:
        t = store.create_table(ORDERS, ORDERS_PK, ORDERS_SK)
        items = _items(count, 0)
        while True:
            chunk = [it for _, it in zip(range(batch), items, strict=False)]
            if not chunk:
                break
            with store.batch() as b:
                for it in chunk:
                    b.put(t, it)
        start = time.perf_counter()
        store.create_index(ORDERS, INDEXES[0])
        return count / (time.perf_counter() - start)


def run_indexes(sizes: Sizes, progress: Progress) -> list[dict[str, Any]]:
    """The index rows: medians over ``sizes.rounds`` rounds (the backfill: one)."""
    rows: list[dict[str, Any]] = []
    for row, fn in (("write_single", _writes_single), ("write_batch", _writes_batch)):
        med: dict[int, float] = {}
        for n in (0, 1, 3):
            values = []
            for r in range(sizes.rounds):
                with scratch_dir("regiondb-bench-index-") as root:
                    values.append(fn(root, n, sizes, r))
            med[n] = statistics.median(values)
            rows.append(_row(row, med[n], n, rounds=values,
                             **({} if n == 0 else {"ratio": med[n] / med[0],
                                                   "ratio_to": f"{row}_0"})))
        progress(f"indexes {row}: " + ", ".join(f"{n} indexes {med[n]:,.0f}" for n in med))
    samples: dict[str, list[float]] = {}
    for _ in range(sizes.rounds):
        with scratch_dir("regiondb-bench-index-") as root:
            for k, v in _queries(root, sizes).items():
                samples.setdefault(k, []).append(v)
    qmed = {k: statistics.median(v) for k, v in samples.items()}
    for k, v in qmed.items():
        extra = {} if k == "query_table" else {"ratio": v / qmed["query_table"],
                                                "ratio_to": "query_table"}
        rows.append(_row(k, v, rounds=samples[k], **extra))
    progress("indexes queries/s: " + ", ".join(f"{k} {v:,.0f}" for k, v in qmed.items()))
    with scratch_dir("regiondb-bench-index-") as root:
        rate = _backfill(root, sizes.repl_changes, sizes.batch_size)
    rows.append(_row("backfill", rate, sizes.repl_changes))
    progress(f"indexes backfill: {rate:,.0f} items/s over {sizes.repl_changes:,} items")
    return rows
