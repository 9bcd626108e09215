"""``python -m bench.profile OP [--backend NAME] [-n N]``: where one operation spends its time.

Runs ``N`` operations of one kind (get, put, batch, update, query) against a prepopulated store
under ``cProfile`` and prints the functions with the most own time, so a missed target can be
traced to the hot functions of ``engine/``. Uses the same backends and items as the report.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import random
from collections.abc import Callable
from typing import Any

from .backends import ALL_BACKENDS, Backend
from .data import ORDERS, ORDERS_PK, ORDERS_SK, customer_id, order_id, order_item
from .harness import opened

__all__ = ["main"]

OPS = ["get", "put", "batch", "update", "query"]


def _workload(b: Backend, op: str, n: int) -> Callable[[], Any]:
    rnd = random.Random(1)
    if op == "get":
        keys = [(customer_id(rnd.randrange(20)), order_id(rnd.randrange(100))) for _ in range(n)]
        return lambda: [b.get(ORDERS, pk, sk) for pk, sk in keys]
    if op == "put":
        items = [order_item(100 + k // 1000, k % 1000) for k in range(n)]
        return lambda: [b.put(ORDERS, i) for i in items]
    if op == "batch":
        items = [order_item(100 + k // 1000, k % 1000) for k in range(n)]
        return lambda: [b.put_batch(ORDERS, items[i : i + 1000]) for i in range(0, n, 1000)]
    if op == "update":
        keys = [(customer_id(rnd.randrange(20)), order_id(rnd.randrange(100))) for _ in range(n)]
        return lambda: [b.update(ORDERS, pk, sk, {"status": "SHIPPED"}) for pk, sk in keys]
    custs = [customer_id(rnd.randrange(20)) for _ in range(n)]
    return lambda: [b.query(ORDERS, pk, limit=100) for pk in custs]


def main(argv: list[str] | None = None) -> int:
    """Profile and print the top functions by own time."""
    ap = argparse.ArgumentParser(prog="python -m bench.profile")
    ap.add_argument("op", choices=OPS)
    ap.add_argument("--backend", default="regiondb_nosync", choices=ALL_BACKENDS)
    ap.add_argument("-n", type=int, default=20_000)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args(argv)
    with opened(args.backend) as b:
        b.create_table(ORDERS, ORDERS_PK, ORDERS_SK)
        b.put_batch(ORDERS, [order_item(c, o) for c in range(20) for o in range(100)])
        fn = _workload(b, args.op, args.n)
        prof = cProfile.Profile()
        prof.enable()
        fn()
        prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(args.top)
    print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
