"""Counters against plain values: merge throughput and bytes per change.

``python -m bench.mergetypes [--changes N] [--items K] [--rounds R] [--json FILE]``

Two source stores each commit ``N`` single-write updates spread over ``K`` items: one
``ADD stock -1`` (a counter change: the ADD's amount and the origin's running total), the other
``SET stock = i`` (a plain last-writer-wins value). Their logs are then merged into fresh stores
with ``Store.apply_changes`` in chunks of 1000 records (the size of a segment on the wire), the
same way a peer applies what it receives; each round merges into a new store. Stores are
``durable=False`` on both sides, so the figure is the merge's CPU cost, not the disk's fsync
rate (which would be the same for both). Reported: merges/s (median over rounds) for each and
their ratio, the mean bytes of a logged change (the transaction CBOR a peer receives) and of a
segment per change (``encode_segment``, zlib when it saves 10 %). Both sides must converge to
the same stock (counted, not assumed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import engine
from replication.segment import encode_segment

CHUNK = 1000


def _source(path: Path, changes: int, items: int, counter: bool) -> engine.Store:
    store = engine.open(path, region="src", durable=False)
    table = store.create_table("stock", partition_key="sku")
    with store.batch() as b:
        for k in range(items):
            b.put("stock", {"sku": f"sku-{k:05d}", "stock": changes})
    for i in range(changes):
        sku = f"sku-{i % items:05d}"
        if counter:
            table.update(sku, add={"stock": -1})
        else:
            table.update(sku, set={"stock": changes - 1 - i // items})
    return store


def _merge_round(records: list[tuple[int, int, bytes]], path: Path) -> tuple[float, str]:
    with engine.open(path, region="dst", durable=False) as dst:
        t0 = time.perf_counter()
        for i in range(0, len(records), CHUNK):
            report = dst.apply_changes(records[i:i + CHUNK])
            if report.held:
                raise RuntimeError(f"merge held changes: {report}")
        seconds = time.perf_counter() - t0
        return seconds, dst.digest()


def _segment_bytes(store: engine.Store, records: list[tuple[int, int, bytes]]) -> int:
    total = 0
    vv = store.version_vector()
    for i in range(0, len(records), CHUNK):
        _, data = encode_segment(kind="changes", sender=store.node_id, region=store.region,
                                 records=records[i:i + CHUNK], vv=vv, created_hlc=i + 1)
        total += len(data)
    return total


def run(changes: int, items: int, rounds: int) -> dict[str, Any]:
    """Build both logs, merge each ``rounds`` times; return the figures."""
    root = Path(tempfile.mkdtemp(prefix="regiondb-bench-mergetypes-"))
    out: dict[str, Any] = {"changes": changes, "items": items, "rounds": rounds,
                           "chunk": CHUNK, "durable": False}
    try:
        for kind, counter in (("counter_add", True), ("plain_set", False)):
            with _source(root / f"src-{kind}", changes, items, counter) as src:
                records = src.log_range(src.node_id, 0)
                # the table and the seed batch are merged too, but not counted as changes
                body = records[2:]
                stock = sum(it["stock"] for it in src.table("stock").scan())
                rates, digest = [], src.digest()
                for r in range(rounds):
                    seconds, got = _merge_round(records, root / f"dst-{kind}-{r}")
                    if got != digest:
                        raise RuntimeError(f"{kind}: merged replica diverged from its source")
                    rates.append(len(body) / seconds)
                    shutil.rmtree(root / f"dst-{kind}-{r}", ignore_errors=True)
                out[kind] = {
                    "merges_per_s": statistics.median(rates), "rounds_per_s": rates,
                    "txn_bytes_per_change": sum(len(t) for _, _, t in body) / len(body),
                    "segment_bytes_per_change": _segment_bytes(src, body) / len(body),
                    "final_stock_sum": stock,
                }
        out["ratio_counter_vs_set"] = (out["counter_add"]["merges_per_s"]
                                       / out["plain_set"]["merges_per_s"])
        return out
    finally:
        shutil.rmtree(root, ignore_errors=True)


def render(result: dict[str, Any]) -> str:
    """A small Markdown table of ``run``'s result."""
    lines = [f"Merge of {result['changes']:,} changes over {result['items']} items "
             f"(chunks of {result['chunk']}, durable=False, median of {result['rounds']} rounds)",
             "", "| change | merges/s | bytes/change (txn) | bytes/change (segment) |",
             "|---|---:|---:|---:|"]
    for kind, label in (("counter_add", "counter `ADD stock -1`"),
                        ("plain_set", "plain `SET stock = n`")):
        r = result[kind]
        lines.append(f"| {label} | {r['merges_per_s']:,.0f} | {r['txn_bytes_per_change']:.1f} "
                     f"| {r['segment_bytes_per_change']:.1f} |")
    lines.append("")
    lines.append(f"ratio counter / plain: {result['ratio_counter_vs_set']:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.mergetypes", description=__doc__.split(
        "\n")[0])
    ap.add_argument("--changes", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = ap.parse_args(argv)
    result = run(args.changes, args.items, args.rounds)
    sys.stdout.write(render(result) + "\n")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
