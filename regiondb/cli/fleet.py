"""``regiondb serve --nats URL [--cluster NAME]``: the fleet transport from the command line.

:func:`add_args` adds the NATS flags to ``serve``; :func:`start` starts a
:class:`replication.jetstream.Replicator` from them (``None`` without ``--nats``), beside the
socket server and peers of :mod:`.live` when ``--listen``/``--peer`` are given too (transports
mix); :func:`cmd_serve_nats` is ``serve`` with ``--nats`` and no ``--listen``. NATS
credentials come from files, never from the command line (it shows in ``ps``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import ssl
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from replication.atomic import write_atomic

from .args import UsageError, open_store, positive_int, read_secret, seconds_arg
from .output import PROG, SERVE_STATUS, hex_id, plain, vv_json

if TYPE_CHECKING:
    from replication.jetstream import Replicator

__all__ = ["add_args", "cmd_serve_nats", "fleet_rows", "start", "status_fields"]


def add_args(p: argparse.ArgumentParser) -> None:
    """The ``--nats`` flags of ``serve``."""
    g = p.add_argument_group("fleet transport (NATS JetStream; the nats extra)")
    g.add_argument("--nats", action="append", default=[], metavar="URL",
                   help="a NATS server (nats://host:4222 or tls://...; repeatable: one cluster)")
    g.add_argument("--cluster", default="regiondb", metavar="NAME",
                   help="regiondb cluster name on the broker (default regiondb)")
    g.add_argument("--nats-user", metavar="U", help="NATS user (with --nats-password-file)")
    g.add_argument("--nats-password-file", metavar="F", help="file holding the NATS password")
    g.add_argument("--nats-token-file", metavar="F", help="file holding a NATS token")
    g.add_argument("--nats-creds", metavar="F", help="NATS credentials file (JWT + nkey seed)")
    g.add_argument("--nats-nkey", metavar="F", help="NATS nkey seed file")
    g.add_argument("--nats-tls-ca", metavar="F", help="CA (PEM) to verify the NATS servers")
    g.add_argument("--nats-tls-cert", metavar="F", help="client certificate (PEM) for NATS")
    g.add_argument("--nats-tls-key", metavar="F", help="key of --nats-tls-cert")
    g.add_argument("--nats-max-age", type=seconds_arg, default=None, metavar="S",
                   help="stream retention when this node creates the stream (default 7 days)")
    g.add_argument("--nats-replicas", type=positive_int, default=1, metavar="N",
                   help="stream copies on a NATS cluster (default 1)")


def _tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not (args.nats_tls_ca or args.nats_tls_cert or any(u.startswith("tls://")
                                                          for u in args.nats)):
        return None
    if bool(args.nats_tls_cert) != bool(args.nats_tls_key):
        raise UsageError("--nats-tls-cert and --nats-tls-key go together")
    ctx = ssl.create_default_context(cafile=args.nats_tls_ca)
    if args.nats_tls_cert:
        ctx.load_cert_chain(args.nats_tls_cert, args.nats_tls_key)
    return ctx


def _text(path: str | None) -> str | None:
    data = read_secret(path)
    return data.decode() if data is not None else None


def start(store: Any, args: argparse.Namespace) -> Replicator | None:
    """Start the JetStream replicator the flags ask for (``None`` without ``--nats``)."""
    if not args.nats:
        return None
    try:
        from replication.jetstream import FleetOptions, Replicator
    except ImportError as exc:
        raise UsageError(f"--nats needs the nats extra: pip install 'regiondb[nats]' ({exc})") \
            from None
    if args.nats_password_file and not args.nats_user:
        raise UsageError("--nats-password-file needs --nats-user")
    opts = FleetOptions(replicas=args.nats_replicas,
                        **({"max_age": args.nats_max_age} if args.nats_max_age else {}))
    rep = Replicator(store, args.nats, cluster=args.cluster, user=args.nats_user,
                     password=_text(args.nats_password_file),
                     token=_text(args.nats_token_file), credentials=args.nats_creds,
                     nkeys_seed=args.nats_nkey, tls=_tls(args), options=opts)
    return rep.start()


def status_fields(rep: Replicator | None) -> dict[str, Any]:
    """What ``serve-status.json`` says of the NATS link (read by ``regiondb status``)."""
    if rep is None:
        return {}
    return {"nats": list(rep.servers), "cluster": rep.names.cluster,
            "nats_connected": rep.stats.connected, "nats_error": rep.stats.last_error}


def fleet_rows(rep: Replicator | None) -> list[dict[str, Any]]:
    """The members of the cluster as ``serve`` status rows (the shape of socket peers)."""
    if rep is None:
        return []
    rows = []
    for node, p in rep.lag().items():
        rows.append({"node_id": node, "region": p.region, "transport": "nats",
                     "sessions": 1 if p.connected else 0, "unacked": p.unacked,
                     "lag_ms": {"last": p.last_ms, "p50": p.p50_ms, "p99": p.p99_ms,
                                "samples": p.samples},
                     "inbound_lag_ms": {"last": p.inbound.last_ms, "p50": p.inbound.p50_ms,
                                        "p99": p.inbound.p99_ms, "samples": p.inbound.samples},
                     "last_error": p.last_error})
    return rows


def cmd_serve_nats(args: argparse.Namespace) -> int:
    """``serve DIR --nats URL`` without ``--listen``: replicate through the broker only."""
    from .live import _log, peers_text

    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with open_store(args) as store:
            status_path = Path(args.dir) / SERVE_STATUS
            rep = start(store, args)
            assert rep is not None
            _log(f"{PROG} serve: {store.region} node {hex_id(store.node_id)} on NATS cluster "
                 f"{args.cluster} via {', '.join(args.nats)}")
            try:
                next_log = time.monotonic() + args.status_interval
                while not stop.wait(1.0):
                    rows = fleet_rows(rep)
                    info = {"pid": os.getpid(), **status_fields(rep), "updated": time.time(),
                            "peers": rows, "vv": vv_json(store.version_vector())}
                    with contextlib.suppress(OSError):
                        write_atomic(status_path, json.dumps(plain(info)).encode())
                    if args.status_interval and time.monotonic() >= next_log:
                        next_log = time.monotonic() + args.status_interval
                        err = rep.stats.last_error
                        _log(f"{store.region}: {len(rows)} members"
                             + (f"; {peers_text(rows)}" if rows else "")
                             + (f"; {err}" if err and not rep.stats.connected else ""))
            finally:
                rep.stop()
                status_path.unlink(missing_ok=True)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    _log(f"{PROG} serve: stopped")
    return 0
