"""A regiondb node process inside a lab namespace (``tests.integration.nodeproc``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from netlab import PORT, ROOT, Lab


class NsNode:
    """One node: serves on the lab port in its namespace, replicates with the other nodes,
    obeys JSON-line commands (see ``tests/integration/nodeproc.py``)."""

    def __init__(self, lab: Lab, name: str, store: Path) -> None:
        self.lab, self.name, self.store = lab, name, store
        self.acked: set[str] = set()  # writes acknowledged by every incarnation so far
        self.proc: subprocess.Popen[str] | None = None
        self.start()

    def start(self) -> None:
        peers = [self.lab.peer_address(self.name, p) for p in self.lab.nodes if p != self.name]
        args = self.lab.exec_args(self.name) + [
            sys.executable, "-m", "tests.integration.nodeproc", "--store", str(self.store),
            "--region", f"r-{self.name}", "--listen", f"0.0.0.0:{PORT}"]
        for p in peers:
            args += ["--peer", p]
        self.events: list[dict[str, Any]] = []
        self.replies: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(args, cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        self._wait(lambda: next((e for e in self.events if e.get("event") == "ready"), None),
                   30)

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            msg = json.loads(line)
            with self._cond:
                if msg.get("event") == "wrote":
                    self.acked.add(msg["id"])
                (self.events if "event" in msg else self.replies).append(msg)
                self._cond.notify_all()

    def _wait(self, pick: Callable[[], Any], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while (got := pick()) is None:
                left = deadline - time.monotonic()
                assert self.proc is not None
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(f"node {self.name}: no answer (rc={self.proc.poll()})")
                self._cond.wait(min(left, 0.2))
            return got

    def call(self, cmd: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        with self._cond:
            n = len(self.replies)
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._wait(lambda: self.replies[n] if len(self.replies) > n else None, timeout)

    def write_async(self, n: int, rate: float, prefix: str) -> None:
        self.call({"cmd": "write_async", "n": n, "rate": rate, "prefix": prefix})

    def state(self) -> tuple[str, set[str]]:
        got = self.call({"cmd": "digest"})
        return got["digest"], set(got["ids"])

    def lag(self) -> dict[str, Any]:
        return self.call({"cmd": "lag"})["lag"]

    def kill(self) -> None:
        """SIGKILL: whatever was acknowledged so far stays in :attr:`acked`."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def close(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.call({"cmd": "quit"}, timeout=10)
            self.proc.wait(10)
        except (AssertionError, subprocess.TimeoutExpired, OSError):
            self.kill()
