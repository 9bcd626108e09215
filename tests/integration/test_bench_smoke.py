"""The benchmark suite is a product: its smallest run must work and write a well-formed report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_bench_smoke_run_writes_a_valid_report(tmp_path: Path) -> None:
    from bench.report import validate_result

    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path), "--no-plots"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads((tmp_path / "latest.json").read_text())
    assert validate_result(result) == []
    assert [t["name"] for t in result["targets"]] == [
        "durable single writes vs floor", "4 durable writer threads vs SQLite FULL",
        "4 durable writer threads vs one writer", "batched writes vs floor",
        "point reads vs raw get+decode", "point reads vs SQLite", "merge vs floor's merge",
        "catch-up over TCP vs merge", "live lag p99 (ms)", "bytes per change vs item CBOR",
        "YCSB A, 4 client threads vs SQLite FULL", "YCSB F, 4 client threads vs SQLite FULL",
    ]
    threaded = {(r["workload"], r["backend"]): r for r in result["rows"]
                if r.get("group") == "ycsb" and r.get("threads", 1) == 4}
    for workload in ("A", "F"):
        for backend in ("regiondb", "sqlite_full"):
            row = threaded[workload, backend]
            assert not row.get("error"), row
            assert row["ops"] == result["sizes"]["ycsb_ops"] and row["throughput"] > 0
    ycsb_targets = [t for t in result["targets"] if t["name"].startswith("YCSB")]
    assert all(t["value"] is not None and t["value"] > 0 for t in ycsb_targets), ycsb_targets
    for target in result["targets"]:
        assert set(target) >= {"name", "value", "goal", "met"}
    assert (tmp_path / "latest.md").read_text().startswith("# regiondb benchmark")
