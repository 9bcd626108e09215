"""Run sizes for ``--smoke``, ``--quick`` and the full run, in one place."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["SIZES", "Sizes"]


@dataclass(frozen=True)
class Sizes:
    """How much work each row does. Rounds are repeated and their median reported."""

    customers: int  # prepopulated partitions, each with ``orders_per_customer`` items
    orders_per_customer: int
    rounds: int
    single_writes: int  # durable single-write transactions per round (also update, delete)
    batches: int  # batches of ``batch_size`` per round
    batch_size: int
    gets: int  # point reads per round
    queries: int  # 100-item partition queries per round
    thread_writes: int  # writes per round shared by ``threads`` threads
    threads: int
    ycsb_records: int
    ycsb_ops: int
    ycsb_chunks: int  # each phase is timed in this many chunks; the median chunk is reported
    repl_changes: int
    repl_rounds: int
    lag_seconds: float
    lag_rate: int  # writes per second on the writing node

    def as_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return asdict(self)


SIZES: dict[str, Sizes] = {
    "smoke": Sizes(
        customers=3, orders_per_customer=100, rounds=2, single_writes=30, batches=1,
        batch_size=1000, gets=200, queries=10, thread_writes=40, threads=4,
        ycsb_records=200, ycsb_ops=200, ycsb_chunks=2, repl_changes=1000, repl_rounds=1,
        lag_seconds=1.0, lag_rate=200,
    ),
    "quick": Sizes(
        customers=20, orders_per_customer=100, rounds=5, single_writes=300, batches=2,
        batch_size=1000, gets=5000, queries=200, thread_writes=400, threads=4,
        ycsb_records=2000, ycsb_ops=2000, ycsb_chunks=5, repl_changes=10_000, repl_rounds=1,
        lag_seconds=3.0, lag_rate=1000,
    ),
    "full": Sizes(
        customers=100, orders_per_customer=100, rounds=7, single_writes=1000, batches=4,
        batch_size=1000, gets=20_000, queries=500, thread_writes=1000, threads=4,
        ycsb_records=20_000, ycsb_ops=20_000, ycsb_chunks=5, repl_changes=100_000,
        repl_rounds=3, lag_seconds=10.0, lag_rate=1000,
    ),
}
