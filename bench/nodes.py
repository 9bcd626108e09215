"""Driver side of :mod:`bench.node`: start a node process, send a command, read its reply."""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["NodeError", "NodeProc"]

REPO_ROOT = Path(__file__).resolve().parent.parent


class NodeError(RuntimeError):
    """A node process replied with an error, died, or did not reply in time."""


class NodeProc:
    """One ``python -m bench.node`` process. Use as a context manager: it is always reaped."""

    def __init__(self, store: Path | None = None, region: str = "bench", nosync: bool = False):
        cmd = [sys.executable, "-m", "bench.node"]
        if store is not None:
            cmd += ["--store", str(store), "--region", region]
        if nosync:
            cmd.append("--nosync")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, cwd=REPO_ROOT, env=env,
        )

    def send(self, msg: dict[str, Any]) -> None:
        """Send a command without waiting for its reply."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(msg) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError as exc:
            raise NodeError(f"node exited: {self._stderr()}") from exc

    def receive(self, timeout: float = 120.0) -> dict[str, Any]:
        """Wait for the next reply line; raise :class:`NodeError` on error or timeout."""
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise NodeError(f"node did not reply within {timeout:.0f} s")
        line = self.proc.stdout.readline()
        if not line:
            raise NodeError(f"node exited: {self._stderr()}")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise NodeError(reply["error"])
        return reply

    def call(self, msg: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
        """Send a command and return its reply."""
        self.send(msg)
        return self.receive(timeout)

    def _stderr(self) -> str:
        try:
            self.proc.wait(timeout=5)
            assert self.proc.stderr is not None
            return self.proc.stderr.read()[-2000:]
        except Exception:  # noqa: BLE001
            return "(no stderr)"

    def close(self) -> None:
        """Ask the node to quit; kill it (this process only) if it does not."""
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):  # a dead or stuck node is killed below
                self.call({"cmd": "quit"}, timeout=20)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> NodeProc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
