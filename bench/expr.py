"""``python -m bench.expr``: what DynamoDB's expressions cost on the native API, as ratios.

Rows (each measured in the same run against its own floor, medians over interleaved rounds):

- **condition overhead**: a put with a parsed-and-cached ConditionExpression
  (``attribute_not_exists(order_id)``) and with the equivalent Python callable, each against a
  blind put of the same items, on a durable and on a non-durable store;
- **filter throughput**: a 100k-item scan with a FilterExpression (``total > :t AND #s = :s``)
  against the same scan unfiltered and against filtering the unfiltered scan in Python.

Usage: ``python -m bench.expr [--quick] [--out DIR]``; prints a Markdown table and writes
``expr-latest.json`` into ``--out`` (default ``bench/results``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import engine

from .harness import scratch_dir

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def _item(i: int, prefix: str) -> dict[str, Any]:
    return {"customer_id": f"c{i % 97}", "order_id": f"{prefix}{i:08}", "total": i % 1000,
            "status": ("NEW", "PAID", "SHIPPED")[i % 3], "note": "x" * 40}


def _rate(n: int, fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t0)


def _puts(durable: bool, n: int, rounds: int) -> dict[str, float]:
    """Median puts/s for blind, string-condition and callable-condition puts."""
    kinds: dict[str, Any] = {
        "blind": None,
        "expression": "attribute_not_exists(order_id)",
        "callable": lambda cur: cur is None,
    }
    rates: dict[str, list[float]] = {k: [] for k in kinds}
    with scratch_dir() as root, engine.open(root / "s", region="bench", durable=durable) as s:
        t = s.create_table("orders", partition_key="customer_id", sort_key="order_id")
        for r in range(rounds):
            order = list(kinds)[r % 3:] + list(kinds)[:r % 3]  # rotate: noise lands on all
            for kind in order:
                items = [_item(i, f"{kind}{r}-") for i in range(n)]
                cond = kinds[kind]

                def run(items: list[dict[str, Any]] = items, cond: Any = cond) -> None:
                    for it in items:
                        t.put(it, condition=cond)

                rates[kind].append(_rate(n, run))
    return {k: statistics.median(v) for k, v in rates.items()}


def _scans(n: int, rounds: int) -> dict[str, float]:
    """Median items/s scanned: unfiltered, FilterExpression, filter in Python."""
    values = {":t": 500, ":s": "PAID"}
    names = {"#s": "status"}
    out: dict[str, list[float]] = {"unfiltered": [], "expression": [], "python": []}
    with scratch_dir() as root, engine.open(root / "s", region="bench", durable=False) as s:
        t = s.create_table("orders", partition_key="customer_id", sort_key="order_id")
        for start in range(0, n, 5000):
            with s.batch() as b:
                for i in range(start, min(n, start + 5000)):
                    b.put(t, _item(i, "o"))
        for _ in range(rounds):
            out["unfiltered"].append(_rate(n, lambda: sum(1 for _ in t.scan()) and None))
            out["expression"].append(_rate(n, lambda: sum(1 for _ in t.scan(
                filter="total > :t AND #s = :s", names=names, values=values)) and None))
            out["python"].append(_rate(n, lambda: sum(
                1 for i in t.scan() if i["total"] > 500 and i["status"] == "PAID") and None))
    return {k: statistics.median(v) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.expr", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes (seconds)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    durable_n, fast_n, scan_n, rounds = (100, 1000, 10_000, 3) if args.quick else \
        (400, 5000, 100_000, 5)
    result: dict[str, Any] = {"sizes": {"durable_puts": durable_n, "non_durable_puts": fast_n,
                                        "scan_items": scan_n, "rounds": rounds}}
    print("measuring durable puts…", file=sys.stderr)
    result["durable_put"] = _puts(True, durable_n, rounds)
    print("measuring non-durable puts…", file=sys.stderr)
    result["non_durable_put"] = _puts(False, fast_n, rounds)
    print("measuring scans…", file=sys.stderr)
    result["scan"] = _scans(scan_n, rounds)
    lines = ["| row | ops/s | ratio to its floor |", "|---|---:|---:|"]
    for row in ("durable_put", "non_durable_put"):
        r = result[row]
        for kind in ("blind", "expression", "callable"):
            lines.append(f"| {row} {kind} | {r[kind]:,.0f} | {r[kind] / r['blind']:.2f} |")
    sc = result["scan"]
    for kind in ("unfiltered", "expression", "python"):
        lines.append(f"| scan {scan_n:,} items, filter {kind} | {sc[kind]:,.0f} items/s | "
                     f"{sc[kind] / sc['unfiltered']:.2f} |")
    print("\n".join(lines))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "expr-latest.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
