"""``regiondb demo`` end to end: three live processes, a SIGKILL and restart, an offline node;
the run must converge (exit 0 and the convergence line)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("transport", [
    "tcp", pytest.param("nats", marks=pytest.mark.slow),  # the same run through JetStream
])
def test_demo_converges(tmp_path: Path, transport: str) -> None:
    keep = tmp_path / "stores"
    p = subprocess.run(
        [sys.executable, "-m", "regiondb", "demo", "--duration", "8", "--keep", str(keep),
         "--transport", transport],
        capture_output=True, text=True, timeout=120, env={**os.environ, "TERM": "dumb"},
    )
    assert p.returncode == 0, (p.stdout[-3000:], p.stderr[-3000:])
    m = re.search(r"^converged: 4/4 nodes, digest ([0-9a-f]{64})$", p.stdout, re.MULTILINE)
    assert m, p.stdout[-3000:]
    out = p.stdout
    assert "SIGKILL Mumbai" in out and "caught up" in out
    assert "Both survive everywhere" in out and "DynamoDB Global Tables" in out
    assert "regiondb sync-dir" in out
    # one stock counter per product, decremented everywhere: no decrement lost
    sold = re.search(r"^stock: ([\d,]+) units sold in all regions; stock consumed on every "
                     r"node: ([\d,]+) / ([\d,]+) / ([\d,]+) / ([\d,]+) — equal, no decrement "
                     r"lost$", out, re.MULTILINE)
    assert sold, out[-3000:]
    assert len(set(sold.groups())) == 1 and int(sold.group(1).replace(",", "")) > 0
    assert "Traceback" not in p.stderr
    # the kept stores are real replicas with the digest the demo printed
    import engine

    for region in ("ap-south-1", "us-east-1", "eu-west-1", "popup-goa"):
        with engine.open(keep / region, create=False) as s:
            assert s.digest() == m.group(1)
    # every node process is gone
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(keep) not in ps
    if transport == "nats":
        assert "through the JetStream server at nats://127.0.0.1:" in out
