"""``regiondb`` commands that replicate over sockets: ``serve`` (listen, replicate live with
``--peer``s, log status lines, keep ``serve-status.json`` current) and one-shot ``sync``.

The work is :mod:`replication.net`; this module builds the TLS contexts, handles signals
and prints. ``serve-status.json`` is how ``regiondb status`` run beside a server shows live
lag: only the serving process has it in memory.
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

import engine
from engine.ttl import Expirer
from replication.atomic import write_atomic
from replication.net import Replicator, serve, status, sync

from . import fleet
from .args import UsageError, open_store, read_secret
from .dynamodb import start_endpoint
from .output import (
    PROG,
    SERVE_STATUS,
    emit,
    hex_id,
    ms_text,
    plain,
    report_dict,
    vv_json,
    write_line,
)

if TYPE_CHECKING:
    from replication.jetstream import Replicator as FleetReplicator

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _ssl_server(args: argparse.Namespace) -> ssl.SSLContext | None:
    """``--tls-cert``/``--tls-key`` (and ``--tls-ca``: clients must present a certificate)."""
    if not (args.tls_cert or args.tls_key):
        return None
    if not (args.tls_cert and args.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.tls_cert, args.tls_key)
    if args.tls_ca:
        ctx.load_verify_locations(args.tls_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _ssl_client(args: argparse.Namespace) -> ssl.SSLContext | None:
    """``--tls-ca`` (or ``--tls``: the system CAs), presenting ``--tls-cert`` when serving."""
    if not (args.tls_ca or getattr(args, "tls", False)):
        return None
    ctx = ssl.create_default_context(cafile=args.tls_ca)
    if args.tls_ca:
        ctx.check_hostname = False  # peers are named by address; the CA pins who they are
    cert, key = getattr(args, "tls_cert", None), getattr(args, "tls_key", None)
    if cert and key:
        ctx.load_cert_chain(cert, key)
    return ctx


def cmd_sync(args: argparse.Namespace) -> int:
    """``sync DIR HOST:PORT``: one two-way exchange with a serving peer, then exit."""
    host, port = args.peer
    secret = read_secret(args.secret_file)
    start = time.monotonic()
    with open_store(args) as store:
        report = sync(store, f"{host}:{port}", secret=secret, ssl=_ssl_client(args))
    elapsed = time.monotonic() - start
    if args.json:
        emit({**report_dict(report), "seconds": round(elapsed, 3)})
    else:
        refused = len(report.refused)
        write_line(f"synced {args.dir} with {host}:{port} ({report.region}): "
                   f"sent {report.sent:,} changes, received {report.applied:,} "
                   f"({report.skipped:,} already known, {report.conflicts:,} conflicts)"
                   + (f", {refused} origins refused for now" if refused else "")
                   + f" in {elapsed:.2f} s")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """``serve DIR --listen HOST:PORT [--peer ...] [--nats URL]``: serve and replicate until a
    signal (NATS only without ``--listen``: :mod:`.fleet`)."""
    if args.listen is None:
        if not args.nats:
            raise UsageError("serve needs --listen HOST:PORT, --nats URL, or both")
        return fleet.cmd_serve_nats(args)
    host, port = args.listen
    secret = read_secret(args.secret_file)
    if secret is None and not args.insecure and host not in _LOOPBACK:
        raise UsageError(f"listening on {host} without --secret-file lets anyone write: "
                         "give --secret-file F (or --insecure)")
    server_ssl = _ssl_server(args)
    client_ssl = _ssl_client(args) if (args.tls_ca or server_ssl) else None
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    status_path = Path(args.dir) / SERVE_STATUS
    try:
        with open_store(args) as store:
            server = serve(store, host=host, port=port, secret=secret, ssl=server_ssl)
            rep = ddb = None
            expirer: Expirer | None = None
            nats_rep = fleet.start(store, args)
            try:
                address = server.address
                peers = [f"{h}:{p}" for h, p in args.peer]
                _log(f"{PROG} serve: {store.region} node {hex_id(store.node_id)} "
                     f"listening on {address[0]}:{address[1]}"
                     + (f", replicating with {', '.join(peers)}" if peers else ""))
                if peers:
                    rep = Replicator(store, peers=peers, secret=secret, ssl=client_ssl)
                    rep.start()
                ddb = start_endpoint(store, args.dynamodb, args.credentials)
                if rep is None and ddb is None:  # both expire TTL items themselves
                    expirer = Expirer(store).start()
                _serve_loop(store, rep, address, peers, args.status_interval, stop,
                            status_path, nats_rep)
            finally:
                if expirer is not None:
                    expirer.stop()
                if ddb is not None:
                    ddb.close()
                if rep is not None:
                    rep.stop()
                if nats_rep is not None:
                    nats_rep.stop()
                server.close()
                status_path.unlink(missing_ok=True)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    _log(f"{PROG} serve: stopped")
    return 0


def _log(line: str) -> None:
    """A status line of ``serve`` on stdout, time-stamped like a log."""
    print(time.strftime("%H:%M:%S ") + line, flush=True)


def _live_peers(store: engine.Store, rep: Replicator | None) -> list[dict[str, Any]]:
    """Per connected peer: region, sessions, unacknowledged changes, lag both ways (ms)."""
    try:
        return [{
            "node_id": hex_id(p["node_id"]), "region": p.get("region"),
            "sessions": p.get("sessions"), "unacked": p.get("unacked"),
            "lag_ms": p.get("lag_ms"), "inbound_lag_ms": p.get("inbound_lag_ms"),
            "last_error": p.get("last_error"),
        } for p in status(store).get("peers", [])]
    except Exception:  # figures only; never stop serving for them
        pass
    if rep is None:
        return []
    try:
        return [{"peer": addr, **report_dict(lag)} for addr, lag in rep.lag().items()]
    except Exception:
        return []


def peers_text(rows: list[dict[str, Any]]) -> str:
    """Live peer rows (as ``serve`` writes them to ``serve-status.json``) on one line."""
    parts = []
    for r in rows:
        name = r.get("region") or r.get("peer") or r.get("node_id")
        out, inb = r.get("lag_ms") or {}, r.get("inbound_lag_ms") or {}
        text = f"{name}: lag out {ms_text(out.get('p50'))}/{ms_text(out.get('p99'))}"
        if inb:
            text += f", in {ms_text(inb.get('p50'))}/{ms_text(inb.get('p99'))}"
        if r.get("unacked"):
            text += f", {r['unacked']:,} unacked"
        if not r.get("sessions", 1):
            text += " (disconnected" + (f": {r['last_error']}" if r.get("last_error") else "") + ")"
        parts.append(text)
    return "; ".join(parts)


def process_started(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (``/proc/PID/stat`` field 22);
    ``None`` where there is no ``/proc`` or no such process.

    ``regiondb status`` compares it with what ``serve`` recorded, so a status file left by a
    dead server whose pid the system gave to another process is not taken as live.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its last ')'
    fields = stat[stat.rfind(")") + 2:].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _serve_loop(store: engine.Store, rep: Replicator | None, address: tuple[str, int],
                peers: list[str], interval: float, stop: threading.Event,
                status_path: Path, nats_rep: FleetReplicator | None = None) -> None:
    """Until ``stop``: rewrite ``status_path`` every second, log rates and lag every
    ``interval`` seconds (0: never) and once more on the way out."""
    last_seq, last_t = store.stats()["local_seq"], time.monotonic()
    last_pos = store.position()
    next_log = time.monotonic() + interval if interval else float("inf")
    while not stop.is_set():
        stop.wait(1.0)
        rows = _live_peers(store, rep) + fleet.fleet_rows(nats_rep)
        now = time.monotonic()
        stats = store.stats()
        info = {"pid": os.getpid(), "pid_started": process_started(os.getpid()),
                "address": list(address), "peers_configured": peers,
                "updated": time.time(), "peers": rows, "vv": vv_json(store.version_vector()),
                **fleet.status_fields(nats_rep)}
        with contextlib.suppress(OSError):  # a full disk must not stop replication
            write_atomic(status_path, json.dumps(plain(info)).encode())
        if now >= next_log or stop.is_set():
            dt = now - last_t
            writes = (stats["local_seq"] - last_seq) / dt
            applied = (stats["position"] - last_pos) / dt - writes
            _log(f"{store.region}: {writes:.1f} local writes/s, {max(applied, 0):.1f} remote "
                 f"applies/s, {stats['items']:,} items, {stats['conflicts_total']:,} conflicts"
                 + (f"; {peers_text(rows)}" if rows else "; no peers connected"))
            last_seq, last_pos, last_t = stats["local_seq"], stats["position"], now
            next_log = now + interval
