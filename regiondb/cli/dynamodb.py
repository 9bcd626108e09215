"""``regiondb dynamodb DIR --listen HOST:PORT``: the DynamoDB-compatible endpoint on a store,
and :func:`start_endpoint`, which ``regiondb serve --dynamodb HOST:PORT`` uses to run it beside
live replication in the same process.

The endpoint itself is :mod:`regiondb.dynamodb` (the ``dynamodb`` extra), imported only when
one of these commands runs.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any

import engine

from .args import UsageError
from .output import PROG

log = logging.getLogger(__name__)

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _credentials(path: str | None) -> dict[str, str] | None:
    if path is None:
        return None
    from ..dynamodb import load_credentials

    try:
        return load_credentials(path)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def start_endpoint(store: engine.Store, listen: tuple[str, int] | None,
                   credentials: str | None) -> Any:
    """Start the endpoint on ``listen`` (``None``: do nothing) and print where it listens."""
    if listen is None:
        return None
    from ..dynamodb import serve

    host, port = listen
    creds = _credentials(credentials)
    if creds is None and host not in _LOOPBACK:
        log.warning("DynamoDB endpoint on %s without --credentials: any client may write", host)
    server = serve(store, host=host, port=port, credentials=creds)
    print(time.strftime("%H:%M:%S ") + f"{PROG}: DynamoDB endpoint for {store.region} on "
          f"{server.url}" + (" (SigV4 verified)" if creds else ""), flush=True)
    return server


def cmd_dynamodb(args: argparse.Namespace) -> int:
    """``dynamodb DIR --listen HOST:PORT [--region NAME] [--credentials FILE]``: serve the
    DynamoDB API on the store (created if missing) until SIGINT or SIGTERM."""
    path = Path(args.dir)
    if not (path / "data.mdb").exists() and args.region is None:
        raise UsageError(f"{path} is not a store yet: give --region to create it")
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with engine.open(path, region=args.region) as store:
            server = start_endpoint(store, args.listen, args.credentials)
            try:
                while not stop.wait(1.0):
                    pass
            finally:
                server.close()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return 0


def add_parser(sub: Any, add: Any, common: Any, host_port: Any) -> None:
    """The ``dynamodb`` subcommand (called by :func:`regiondb.cli.parser.build_parser`)."""
    p = add(sub, "dynamodb", cmd_dynamodb, "serve DynamoDB's API (boto3) on a store",
            "regiondb dynamodb data/virginia --listen 127.0.0.1:8000 --region us-east-1\n"
            "regiondb dynamodb data/virginia --listen 0.0.0.0:8000 --credentials keys.txt\n"
            "regiondb serve data/virginia --listen 0.0.0.0:7001 --peer 10.0.2.5:7001 "
            "--dynamodb 0.0.0.0:8000   # beside replication", common,
            "Serve the DynamoDB JSON API over HTTP on the store (created if missing with "
            "--region), so boto3 applications run on it with only endpoint_url changed. "
            "With --credentials FILE (lines 'ACCESS_KEY_ID SECRET', or an AWS credentials "
            "file) SigV4 signatures are verified; without it any signature is accepted.")
    p.add_argument("dir", metavar="DIR", help="the store directory")
    p.add_argument("--listen", type=host_port, required=True, metavar="HOST:PORT",
                   help="address to serve HTTP on (port 0: any free port)")
    p.add_argument("--region", help="region of a new store, e.g. us-east-1")
    p.add_argument("--credentials", metavar="FILE", help="access keys to verify SigV4 with")


def add_serve_flags(p: argparse.ArgumentParser, host_port: Any) -> None:
    """``serve --dynamodb HOST:PORT [--credentials FILE]``."""
    g = p.add_argument_group("DynamoDB endpoint")
    g.add_argument("--dynamodb", type=host_port, metavar="HOST:PORT",
                   help="also serve DynamoDB's API (boto3) on this address")
    g.add_argument("--credentials", metavar="FILE",
                   help="access keys the DynamoDB endpoint verifies SigV4 with")
