"""One regiondb node in its own process, for tests where failure (SIGKILL) is the point.

``python -m tests.integration.nodeproc --store DIR --region R [--listen HOST:PORT]
[--peer HOST:PORT ...] [--secret S] [--nosync] [--nats URL --cluster NAME]`` opens the store,
serves, replicates to the peers (or through NATS JetStream with ``--nats``), prints
``{"event": "ready", "address": [host, port], "node_id": N}`` and then obeys JSON-line
commands on stdin, one JSON reply line each::

    {"cmd": "write", "n": N, "rate": R, "prefix": P}  -> {"written": [ids...]}  (table "t")
    {"cmd": "write_async", "n": N, "rate": R, "prefix": P} -> {"ok": true}; later lines
        {"event": "wrote", "id": ...} as each write commits (acknowledged writes)
    {"cmd": "digest"}  -> {"digest": ..., "vv": {...}, "ids": [...]}
    {"cmd": "lag"}     -> {"lag": {...}}
    {"cmd": "quit"}    -> {"ok": true}, then exit
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

import engine
from replication.net import NetOptions, Replicator, serve

TABLE = "t"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.integration.nodeproc")
    ap.add_argument("--store", required=True)
    ap.add_argument("--region", default="test")
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--peer", action="append", default=[])
    ap.add_argument("--secret")
    ap.add_argument("--nosync", action="store_true")
    ap.add_argument("--nats", help="replicate through this JetStream server, not the peers")
    ap.add_argument("--cluster", default="test")
    args = ap.parse_args(argv)
    lock = threading.Lock()

    def say(obj: dict[str, Any]) -> None:
        with lock:
            sys.stdout.write(json.dumps(obj) + "\n")
            sys.stdout.flush()

    opts = NetOptions(backoff_base=0.05, backoff_max=0.5, heartbeat=0.5, idle_timeout=3.0)
    host, _, port = args.listen.rpartition(":")
    with engine.open(args.store, region=args.region, durable=not args.nosync) as store:
        store.create_table(TABLE, partition_key="id")
        server = serve(store, host, int(port), secret=args.secret, options=opts)
        rep: Any
        if args.nats:
            from replication import jetstream

            fleet = jetstream.FleetOptions(row_interval=0.05, retry_delay=0.2, gap_grace=0.3,
                                           reconnect_wait=0.1)
            rep = jetstream.Replicator(store, [args.nats], cluster=args.cluster,
                                       options=fleet).start()
        else:
            rep = Replicator(store, args.peer, secret=args.secret, options=opts).start()
        say({"event": "ready", "address": list(server.address), "node_id": store.node_id})

        def write(n: int, rate: float, prefix: str, stream: bool) -> list[str]:
            table = store.table(TABLE)
            ids = []
            t0 = time.perf_counter()
            for i in range(n):
                delay = t0 + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                key = f"{prefix}{i:06d}"
                table.put({"id": key, "t_ns": time.time_ns()})
                ids.append(key)
                if stream:
                    say({"event": "wrote", "id": key})
            return ids

        for line in sys.stdin:
            msg = json.loads(line)
            cmd = msg["cmd"]
            if cmd == "quit":
                say({"ok": True})
                break
            if cmd == "write":
                say({"written": write(msg["n"], msg.get("rate", 1e9), msg.get("prefix", ""),
                                      False)})
            elif cmd == "write_async":
                threading.Thread(target=write, args=(msg["n"], msg.get("rate", 1e9),
                                                     msg.get("prefix", ""), True),
                                 daemon=True).start()
                say({"ok": True})
            elif cmd == "digest":
                ids = sorted(item["id"] for item in store.table(TABLE).scan())
                say({"digest": store.digest(),
                     "vv": {str(k): v for k, v in store.version_vector().items()}, "ids": ids})
            elif cmd == "lag":
                say({"lag": {k: {"p50_ms": v.p50_ms, "p99_ms": v.p99_ms, "unacked": v.unacked,
                                 "connected": v.connected} for k, v in rep.lag().items()}})
            else:
                say({"error": f"unknown command {cmd!r}"})
        rep.stop()
        server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
