"""Timing primitives and summary statistics shared by every benchmark row.

Each operation is timed on its own with ``time.perf_counter_ns`` so that latency percentiles are
real per-operation figures, not averages of batches. Throughput is taken per round (operations
divided by the round's wall time, timer overhead included, the same for every backend) and the
median over rounds is reported: medians resist the noise of a shared 2-core machine.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RoundResult", "Summary", "percentile", "summarize", "threaded", "time_ops"]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Return the ``q``-th percentile (0..100) of already sorted values, nearest-rank method.

    Nearest rank (no interpolation) so that a reported p99 is a latency that really happened.
    """
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 100))))
    return float(sorted_values[rank - 1])


@dataclass
class RoundResult:
    """One round: per-operation latencies (ns) and the round's wall time (ns)."""

    latencies_ns: list[int]
    wall_ns: int
    units: int  # items processed (an op may process many, e.g. a batch or a query)

    @property
    def ops_per_s(self) -> float:
        """Operations per second over the round's wall time."""
        return len(self.latencies_ns) / (self.wall_ns / 1e9) if self.wall_ns else float("nan")

    @property
    def units_per_s(self) -> float:
        """Items per second over the round's wall time."""
        return self.units / (self.wall_ns / 1e9) if self.wall_ns else float("nan")


def time_ops(fn: Callable[[Any], Any], args: Iterable[Any], units_per_op: int = 1) -> RoundResult:
    """Call ``fn(arg)`` for each argument, timing each call; return the round's result.

    Arguments are materialised before the clock starts so that generating them is never timed.
    """
    prepared = list(args)
    lat: list[int] = []
    append = lat.append
    clock = time.perf_counter_ns
    start = clock()
    for arg in prepared:
        t0 = clock()
        fn(arg)
        append(clock() - t0)
    wall = clock() - start
    return RoundResult(lat, wall, units_per_op * len(prepared))


@dataclass
class Summary:
    """Median throughput over rounds and pooled latency percentiles (microseconds)."""

    ops_per_s: float
    units_per_s: float
    ops_per_s_rounds: list[float]
    p50_us: float
    p95_us: float
    p99_us: float
    max_us: float
    ops: int
    rounds: int
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "ops_per_s": self.ops_per_s,
            "units_per_s": self.units_per_s,
            "ops_per_s_rounds": self.ops_per_s_rounds,
            "latency_us": {
                "p50": self.p50_us,
                "p95": self.p95_us,
                "p99": self.p99_us,
                "max": self.max_us,
            },
            "ops": self.ops,
            "rounds": self.rounds,
            **self.extra,
        }


def summarize(rounds: Sequence[RoundResult]) -> Summary:
    """Median of per-round throughput; percentiles over all rounds' operations pooled."""
    pooled = sorted(x for r in rounds for x in r.latencies_ns)
    per_round = [r.ops_per_s for r in rounds]
    return Summary(
        ops_per_s=statistics.median(per_round) if per_round else float("nan"),
        units_per_s=statistics.median([r.units_per_s for r in rounds]) if rounds else float("nan"),
        ops_per_s_rounds=per_round,
        p50_us=percentile(pooled, 50) / 1e3,
        p95_us=percentile(pooled, 95) / 1e3,
        p99_us=percentile(pooled, 99) / 1e3,
        max_us=(pooled[-1] / 1e3) if pooled else float("nan"),
        ops=len(pooled),
        rounds=len(rounds),
    )


def threaded(threads: int, share: Callable[[int], RoundResult]) -> RoundResult:
    """Run ``share(i)`` on ``threads`` threads that start together at a barrier; one round
    whose wall time spans all of them, pooling their latencies. A thread's error is re-raised.
    """
    results: list[RoundResult | None] = [None] * threads
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads + 1)

    def work(i: int) -> None:
        barrier.wait()
        try:
            results[i] = share(i)
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
