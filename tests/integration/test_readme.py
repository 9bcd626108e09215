"""The README's quickstart runs as written (in a temporary directory)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_quickstart_runs(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text()
    code = re.search(r"## Quickstart\n\n```python\n(.*?)```", text, re.S)
    assert code, "README has no quickstart block"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code.group(1)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "'status': 'SHIPPED'" in proc.stdout
    # the live part replicated: the new order is in Virginia's store
    import engine

    with engine.open(tmp_path / "data" / "virginia") as us:
        assert us.table("orders").get("c2", "o9") is not None


@pytest.mark.integration
def test_secondary_index_example_runs(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text()
    code = re.search(r"## Secondary indexes\n.*?```python\n(.*?)```", text, re.S)
    assert code, "README has no secondary index example"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code.group(1)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout.splitlines()
    assert "'status': 'PLACED'" in out[0] and "'cart_owner': 'c1'" in out[0]
    assert out[1].startswith("[{") and "'total': 42" in out[1] and "cart_owner" not in out[1]
    assert out[2:] == ["[]", "['by_region', 'by_status', 'open_carts']"]


@pytest.mark.integration
def test_data_api_example_runs(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text()
    code = re.search(r"## The DynamoDB data API\n\n.*?```python\n(.*?)```", text, re.S)
    assert code, "README has no data API block"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code.group(1)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split("\n")[:4] == ["6 {'city': 'Mumbai'} 1", "kept SHIPPED", "17", "3"]


@pytest.mark.integration
def test_counters_sets_and_ttl_example_runs(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text()
    code = re.search(r"## Counters, sets and TTL\n.*?```python\n(.*?)```", text, re.S)
    assert code, "README has no counters example"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code.group(1)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines() == [
        "True 97 {'gift'}", "None 1"]
