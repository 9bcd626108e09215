"""One region of ``regiondb demo`` as seen from the demo: its process and the JSON-lines pipe.

:class:`Worker` starts ``python -m regiondb.demo_node`` in its own session (so Ctrl-C
reaches the demo only), reads its events (``ready``, ``stats``, ``reply``, ``warning``) on a
thread, and sends it commands whose replies can be awaited. The node exits by itself when
the pipe closes, so a crashed demo leaves no process behind.
"""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from .jsonvalues import dumps, loads

__all__ = ["START_TIMEOUT", "STEP_TIMEOUT", "DemoError", "Reply", "Worker"]

START_TIMEOUT = 30.0
STEP_TIMEOUT = 30.0


class Reply(Protocol):
    """Waits for the reply to a command sent with :meth:`Worker.send`; returns its result.

    :raises DemoError: if the node died, did not answer within ``timeout``, or failed.
    """

    def __call__(self, timeout: float = STEP_TIMEOUT) -> Any: ...


class DemoError(Exception):
    """Raised when a step of the demo fails or times out (the demo then exits non-zero)."""



class Worker:
    """One region's process and the JSON-lines pipe to it."""

    def __init__(self, region: str, store: Path, port: int, peers: list[int], secret: Path,
                 rate: float, logdir: Path, seed: int, nats: str | None = None) -> None:
        self.region = region
        self.nats = nats  # replicate through this JetStream server instead of the peers
        self.store, self.port, self.peers = store, port, peers
        self.secret, self.rate, self.logdir, self.seed = secret, rate, logdir, seed
        self.proc: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}
        self.stats: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self._ready = threading.Event()
        self._pending: dict[int, tuple[threading.Event, list[dict[str, Any]]]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.on_stats: Callable[[Worker, dict[str, Any]], None] | None = None

    def start(self) -> None:
        """Start (or restart) the node process; :meth:`wait_ready` waits for it to serve."""
        self._ready.clear()
        self.info = {}
        cmd = [sys.executable, "-m", "regiondb.demo_node", "--store", str(self.store),
               "--region", self.region, "--listen", f"127.0.0.1:{self.port}",
               "--secret-file", str(self.secret), "--rate", str(self.rate),
               "--seed", str(self.seed)]
        for p in [] if self.nats else self.peers:
            cmd += ["--peer", f"127.0.0.1:{p}"]
        if self.nats:
            cmd += ["--nats", self.nats]
        # The child inherits the log file; our copy closes once it is started.
        with open(self.logdir / f"{self.region}.log", "a") as log:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                bufsize=1, start_new_session=True,  # Ctrl-C reaches the demo only; it stops us
            )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        """The reader thread: dispatch every event the node prints until its stdout closes."""
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                msg = loads(line, "node output")
            except ValueError:
                continue
            ev = msg.get("event")
            if ev == "ready":
                self.info = msg
                self._ready.set()
            elif ev == "stats":
                self.stats.append(msg)
                if self.on_stats is not None:
                    self.on_stats(self, msg)
            elif ev == "reply":
                with self._lock:
                    slot = self._pending.pop(msg["id"], None)
                if slot is not None:
                    slot[1].append(msg)
                    slot[0].set()
            elif ev == "warning":
                self.warnings.append(str(msg.get("message")))

    @property
    def alive(self) -> bool:
        """Whether the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float = START_TIMEOUT) -> dict[str, Any]:
        """The node's ``ready`` event (pid, address, node id, vv) once it serves."""
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.1):
            if not self.alive:
                raise DemoError(f"{self.region} exited during start-up "
                                f"(status {self.proc.returncode if self.proc else None}):"
                                f" {self.log_tail()}")
            if time.monotonic() > deadline:
                raise DemoError(f"{self.region} did not start within {timeout:.0f} s")
        return self.info

    def log_tail(self, n: int = 3) -> str:
        """The last ``n`` lines of the node's log on one line, for error messages."""
        try:
            lines = (self.logdir / f"{self.region}.log").read_text().strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-n:]) or "(empty log)"

    def send(self, cmd: dict[str, Any]) -> Reply:
        """Send a command; return ``wait(timeout) -> result`` for its reply."""
        if not self.alive or self.proc is None or self.proc.stdin is None:
            raise DemoError(f"{self.region} is not running")
        ident = next(self._ids)
        event = threading.Event()
        box: list[dict[str, Any]] = []
        with self._lock:
            self._pending[ident] = (event, box)
        try:
            self.proc.stdin.write(dumps({**cmd, "id": ident}) + "\n")
            self.proc.stdin.flush()
        except OSError as exc:
            raise DemoError(f"{self.region}: cannot send {cmd['cmd']}: {exc}") from None

        def wait(timeout: float = STEP_TIMEOUT) -> Any:
            deadline = time.monotonic() + timeout
            while not event.wait(0.1):
                if not self.alive:
                    raise DemoError(f"{self.region} died during {cmd['cmd']}: {self.log_tail()}")
                if time.monotonic() > deadline:
                    raise DemoError(f"{self.region}: no answer to {cmd['cmd']} in {timeout:.0f} s")
            reply = box[0]
            if not reply.get("ok"):
                raise DemoError(f"{self.region}: {cmd['cmd']} failed: {reply.get('error')}")
            return reply.get("result")

        return wait

    def request(self, cmd: dict[str, Any], timeout: float = STEP_TIMEOUT) -> Any:
        """Send a command and wait for its result."""
        return self.send(cmd)(timeout)

    def kill(self) -> None:
        """SIGKILL the node: no shutdown, no flush (the crash the demo shows)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        """Ask the node to quit, then SIGTERM, then SIGKILL, a few seconds each."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            assert proc.stdin is not None
            proc.stdin.write(dumps({"cmd": "quit"}) + "\n")
            proc.stdin.close()
        except (OSError, ValueError):
            pass
        for sig, wait in ((None, 5.0), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            if sig is not None:
                proc.send_signal(sig)
            try:
                proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

