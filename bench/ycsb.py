"""YCSB core workloads A-F (see ``../shared/YCSB.md``), driven against any :class:`Backend`.

The generators are ports of YCSB's own (brianfrankcooper/YCSB, Apache-2.0,
``site.ycsb.generator``): ``ZipfianGenerator`` (Gray et al., "Quickly generating billion-record
synthetic databases"), ``ScrambledZipfianGenerator`` (zipfian over a huge space, FNV-hashed onto
the key range so popular keys are scattered), ``SkewedLatestGenerator`` (workload D) and the
``CoreWorkload`` key naming (``"user" + fnvhash64(keynum)``). Zipfian constant 0.99.

Per backend (each on its own store, all open at once): one load phase (``recordcount``
single-item durable inserts), then workloads run in YCSB's recommended order A, B, C, F, D, E
on the same data (D and E insert, so they run last).
Operations and their arguments are generated before the clock starts; each phase is timed in
``ycsb_chunks`` chunks whose median throughput is reported, and per-operation latencies are pooled
per operation type for p50/p95/p99.
"""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from .backends import Backend
from .data import USERTABLE, YCSB_FIELDS, YCSB_PARTITION, YCSB_PK, YCSB_SK, ycsb_record, ycsb_value
from .harness import opened
from .sizes import Sizes
from .stats import RoundResult, percentile, summarize, threaded

__all__ = [
    "WORKLOADS",
    "YCSB_BACKENDS",
    "ScrambledZipfianGenerator",
    "SkewedLatestGenerator",
    "ZipfianGenerator",
    "fnvhash64",
    "key_name",
    "run_ycsb",
]

YCSB_BACKENDS = ["regiondb", "raw_lmdb", "sqlite_normal", "sqlite_full"]

# workload -> ({op: proportion}, request distribution)
WORKLOADS: dict[str, tuple[dict[str, float], str]] = {
    "A": ({"read": 0.5, "update": 0.5}, "zipfian"),
    "B": ({"read": 0.95, "update": 0.05}, "zipfian"),
    "C": ({"read": 1.0}, "zipfian"),
    "F": ({"read": 0.5, "rmw": 0.5}, "zipfian"),
    "D": ({"read": 0.95, "insert": 0.05}, "latest"),
    "E": ({"scan": 0.95, "insert": 0.05}, "zipfian"),
}
ORDER = ["A", "B", "C", "F", "D", "E"]
MAX_SCAN_LENGTH = 100
ZIPFIAN_CONSTANT = 0.99

_FNV_OFFSET_BASIS_64 = 0xCBF29CE484222325
_FNV_PRIME_64 = 1099511628211
_MASK64 = (1 << 64) - 1


def fnvhash64(val: int) -> int:
    """YCSB's ``Utils.fnvhash64``: FNV-1a over the 8 low-order bytes, as a non-negative long."""
    h = _FNV_OFFSET_BASIS_64
    for _ in range(8):
        h ^= val & 0xFF
        val >>= 8
        h = (h * _FNV_PRIME_64) & _MASK64
    if h >= 1 << 63:  # Java's signed long, then Math.abs
        h -= 1 << 64
    return abs(h)


def key_name(keynum: int) -> str:
    """``CoreWorkload.buildKeyName`` with ``insertorder=hashed``."""
    return f"user{fnvhash64(keynum)}"


class ZipfianGenerator:
    """Zipfian over ``[lo, hi]``, popular items first; item count may grow (incremental zeta)."""

    def __init__(self, lo: int, hi: int, rnd: random.Random, theta: float = ZIPFIAN_CONSTANT,
                 zetan: float | None = None) -> None:
        self.rnd = rnd
        self.base = lo
        self.items = hi - lo + 1
        self.theta = theta
        self.zeta2theta = self._zeta(0, 2, 0.0)
        self.alpha = 1.0 / (1.0 - theta)
        self.zetan = zetan if zetan is not None else self._zeta(0, self.items, 0.0)
        self.count_for_zeta = self.items
        self.eta = self._eta()

    def _zeta(self, start: int, n: int, initial: float) -> float:
        theta = self.theta
        return initial + sum(1.0 / (i + 1) ** theta for i in range(start, n))

    def _eta(self) -> float:
        # YCSB uses ``items`` here even after the count grows; kept for fidelity.
        return (1 - (2.0 / self.items) ** (1 - self.theta)) / (1 - self.zeta2theta / self.zetan)

    def next_long(self, item_count: int) -> int:
        """A zipfian value over the first ``item_count`` items."""
        if item_count != self.count_for_zeta:
            if item_count > self.count_for_zeta:
                self.zetan = self._zeta(self.count_for_zeta, item_count, self.zetan)
            else:
                self.zetan = self._zeta(0, item_count, 0.0)
            self.count_for_zeta = item_count
            self.eta = self._eta()
        u = self.rnd.random()
        uz = u * self.zetan
        if uz < 1.0:
            return self.base
        if uz < 1.0 + 0.5**self.theta:
            return self.base + 1
        return self.base + int(item_count * (self.eta * u - self.eta + 1) ** self.alpha)

    def next_value(self) -> int:
        """A zipfian value over the whole range."""
        return self.next_long(self.items)


class ScrambledZipfianGenerator:
    """Zipfian popularity over 10^10 items, FNV-hashed onto ``[lo, hi]`` (YCSB's default)."""

    ITEM_COUNT = 10_000_000_000
    ZETAN = 26.46902820178302  # zeta(10^10, 0.99), precomputed by YCSB

    def __init__(self, lo: int, hi: int, rnd: random.Random) -> None:
        self.lo = lo
        self.item_count = hi - lo + 1
        self.gen = ZipfianGenerator(0, self.ITEM_COUNT, rnd, ZIPFIAN_CONSTANT, self.ZETAN)

    def next_value(self) -> int:
        """A scrambled zipfian key number."""
        return self.lo + fnvhash64(self.gen.next_value()) % self.item_count


class Counter:
    """YCSB's (acknowledged) counter: the insert key sequence; single-threaded here."""

    def __init__(self, start: int) -> None:
        self.next = start

    def next_value(self) -> int:
        """Take the next key number."""
        v = self.next
        self.next += 1
        return v

    def last_value(self) -> int:
        """The highest key number handed out (and, single-threaded, acknowledged)."""
        return self.next - 1


class SkewedLatestGenerator:
    """Workload D's "latest": zipfian over recency, the newest insert most popular."""

    def __init__(self, basis: Counter, rnd: random.Random) -> None:
        self.basis = basis
        self.zipfian = ZipfianGenerator(0, basis.last_value(), rnd)

    def next_value(self) -> int:
        """A recent key number."""
        hi = self.basis.last_value()
        return hi - self.zipfian.next_long(hi)


@dataclass
class Op:
    """One prepared operation."""

    kind: str
    key: str
    arg: Any = None


def _prepare(workload: str, n: int, records: int, counter: Counter, rnd: random.Random) -> list[Op]:
    """Generate the operations of one run phase (deterministic; never timed)."""
    mix, dist = WORKLOADS[workload]
    kinds, weights = list(mix), list(mix.values())
    chooser: Any
    if dist == "latest":
        chooser = SkewedLatestGenerator(counter, rnd)
    else:
        expected_new = int(n * mix.get("insert", 0.0) * 2.0)
        chooser = ScrambledZipfianGenerator(0, records + expected_new, rnd)

    def pick() -> int:
        while True:
            k = chooser.next_value()
            if k <= counter.last_value():
                return int(k)

    ops: list[Op] = []
    for kind in rnd.choices(kinds, weights, k=n):
        if kind == "insert":
            key = key_name(counter.next_value())
            ops.append(Op(kind, key, ycsb_record(key, rnd)))
        elif kind == "scan":
            ops.append(Op(kind, key_name(pick()), rnd.randint(1, MAX_SCAN_LENGTH)))
        elif kind in ("update", "rmw"):
            ops.append(Op(kind, key_name(pick()), {rnd.choice(YCSB_FIELDS): ycsb_value(rnd)}))
        else:
            ops.append(Op(kind, key_name(pick())))
    return ops


def _executor(backend: Backend) -> Callable[[Op], Any]:
    """Map an :class:`Op` onto the backend's API (reads fetch all fields)."""
    t, p = USERTABLE, YCSB_PARTITION

    def execute(op: Op) -> Any:
        kind = op.kind
        if kind == "read":
            return backend.get(t, p, op.key)
        if kind == "update":
            return backend.update(t, p, op.key, op.arg)
        if kind == "insert":
            return backend.put(t, op.arg)
        if kind == "scan":
            return backend.query(t, p, gte=op.key, limit=op.arg)
        backend.get(t, p, op.key)  # read-modify-write: a read, then an update, as YCSB does
        return backend.update(t, p, op.key, op.arg)

    return execute


def _time_chunk(chunk: list[Op], execute: Callable[[Op], Any],
                by_kind: dict[str, list[int]]) -> RoundResult:
    """Run one chunk of operations, timing each; latencies also go to ``by_kind``."""
    clock = time.perf_counter_ns
    lat: list[int] = []
    start = clock()
    for op in chunk:
        t0 = clock()
        execute(op)
        dt = clock() - t0
        lat.append(dt)
        by_kind.setdefault(op.kind, []).append(dt)
    return RoundResult(lat, clock() - start, len(chunk))


def _phase_result(results: list[RoundResult], by_kind: dict[str, list[int]]) -> dict[str, Any]:
    """Median chunk throughput, overall throughput, and p50/p95/p99 per operation kind."""
    s = summarize(results)
    total_wall = sum(r.wall_ns for r in results)
    ops = sum(len(r.latencies_ns) for r in results)
    per_op = {}
    for kind, values in sorted(by_kind.items()):
        values.sort()
        per_op[kind] = {
            "count": len(values),
            "p50_us": percentile(values, 50) / 1e3,
            "p95_us": percentile(values, 95) / 1e3,
            "p99_us": percentile(values, 99) / 1e3,
        }
    return {
        "throughput": s.ops_per_s,
        "ops_per_s_chunks": s.ops_per_s_rounds,
        "ops_per_s_overall": ops / (total_wall / 1e9) if total_wall else float("nan"),
        "ops": ops,
        "per_op": per_op,
    }


Progress = Callable[[str], None]


class YcsbRunner:
    """One backend's YCSB state: its store, its generators (seeded alike for every backend)."""

    def __init__(self, backend: Backend, sizes: Sizes) -> None:
        self.b = backend
        self.sizes = sizes
        self.rnd = random.Random(1234)
        self.counter = Counter(0)
        self.execute = _executor(backend)
        backend.create_table(USERTABLE, YCSB_PK, YCSB_SK)

    def prepare(self, workload: str) -> list[Op]:
        """The phase's operations, generated before any clock starts."""
        if workload == "load":
            keys = [key_name(self.counter.next_value()) for _ in range(self.sizes.ycsb_records)]
            return [Op("insert", k, ycsb_record(k, self.rnd)) for k in keys]
        return _prepare(workload, self.sizes.ycsb_ops, self.sizes.ycsb_records, self.counter,
                        self.rnd)


THREADED = ["A", "F"]  # run again with several client threads, after the single-thread phases


def _time_threaded(chunk: list[Op], execute: Callable[[Op], Any],
                   by_kind: dict[str, list[int]], threads: int) -> RoundResult:
    """Run one chunk split round-robin over ``threads`` client threads that start together;
    the wall time spans all of them (YCSB's ``-threads``)."""
    shares = [chunk[i::threads] for i in range(threads)]
    kinds: list[dict[str, list[int]]] = [{} for _ in range(threads)]
    result = threaded(threads, lambda i: _time_chunk(shares[i], execute, kinds[i]))
    for part in kinds:
        for kind, values in part.items():
            by_kind.setdefault(kind, []).extend(values)
    return result


def _run_phase(runners: list[YcsbRunner], workload: str, threads: int, sizes: Sizes,
               progress: Progress) -> tuple[list[dict[str, Any]], set[str]]:
    """One phase on every runner, chunks interleaved across backends; rows and the failed."""
    phase = "load" if workload == "load" else "run"
    ops = {r.b.name: r.prepare(workload) for r in runners}
    size = max(1, -(-max((len(v) for v in ops.values()), default=1) // sizes.ycsb_chunks))
    chunks: dict[str, list[RoundResult]] = {r.b.name: [] for r in runners}
    by_kind: dict[str, dict[str, list[int]]] = {r.b.name: {} for r in runners}
    failed: dict[str, str] = {}
    for c in range(sizes.ycsb_chunks):
        k = c % max(1, len(runners))
        for runner in runners[k:] + runners[:k]:
            name = runner.b.name
            part = ops[name][c * size : (c + 1) * size]
            if name in failed or not part:
                continue
            try:
                if threads > 1:
                    timed = _time_threaded(part, runner.execute, by_kind[name], threads)
                else:
                    timed = _time_chunk(part, runner.execute, by_kind[name])
                chunks[name].append(timed)
            except Exception as exc:  # noqa: BLE001 - recorded, the others go on
                failed[name] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"
    rows: list[dict[str, Any]] = []
    label = f"{workload}×{threads}" if threads > 1 else workload
    for runner in runners:
        name = runner.b.name
        base = {"group": "ycsb", "workload": workload, "phase": phase, "threads": threads,
                "backend": name}
        if name in failed:
            err, tb = failed[name].split("\n", 1)
            rows.append({**base, "error": err, "traceback": tb})
            progress(f"ycsb  {label:<5} {name:<16} ERROR {err}")
            continue
        res = _phase_result(chunks[name], by_kind[name])
        rows.append({**base, **res})
        lat = "  ".join(f"{k} p99 {v['p99_us']:,.0f} us" for k, v in res["per_op"].items())
        progress(f"ycsb  {label:<5} {name:<16} {res['throughput']:>12,.0f} ops/s  {lat}")
    return rows, set(failed)


def run_ycsb(sizes: Sizes, backends: list[str], progress: Progress) -> list[dict[str, Any]]:
    """Load and run A-F against every backend, each on its own fresh store, all open at once,
    then A and F again with ``sizes.threads`` client threads sharing each store.

    Chunks are interleaved across backends (chunk 1 of each backend, then chunk 2 in a rotated
    order, ...), so that machine noise lands on all of them alike.
    """
    rows: list[dict[str, Any]] = []
    with ExitStack() as stack:
        runners: list[YcsbRunner] = []
        for name in backends:
            try:
                runners.append(YcsbRunner(stack.enter_context(opened(name)), sizes))
            except Exception as exc:  # noqa: BLE001 - e.g. the engine failing to open
                rows.append({"group": "ycsb", "workload": "*", "phase": "*", "backend": name,
                             "error": f"{type(exc).__name__}: {exc}",
                             "traceback": traceback.format_exc(limit=6)})
                progress(f"ycsb  {name}: ERROR {type(exc).__name__}: {exc}")
        broken: set[str] = set()
        phases = [("load", 1)] + [(w, 1) for w in ORDER] + [(w, sizes.threads) for w in THREADED]
        for workload, threads in phases:
            live = [r for r in runners if r.b.name not in broken]
            phase_rows, failed = _run_phase(live, workload, threads, sizes, progress)
            rows += phase_rows
            if workload == "load":
                broken |= failed
    return rows
