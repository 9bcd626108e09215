"""A regiondb node in its own process, driven by JSON lines on stdin (one reply line each).

Used by the replication rows so that the serving side, the receiving side and each of the three
live-replication nodes run on their own interpreter (no shared GIL), as in production.

Start: ``python -m bench.node [--store DIR --region NAME [--nosync]]``. Commands::

    {"cmd": "create_table", "name": ..., "pk": ..., "sk": ...}
    {"cmd": "serve"}                      -> {"address": [host, port]}
    {"cmd": "replicate", "peers": [...]}  -> {"ok": true}       (replication.Replicator)
    {"cmd": "write", "n": N, "rate": R}   -> {"written": N, "seconds": s}  (paced durable puts)
    {"cmd": "watch", "n": N, "timeout": s} -> {"lags_ms": [...], "missing": k}
    {"cmd": "replicate_nats", "url": U, "cluster": C, "snapshots": b} -> {"ok": true}
                                            (replication.jetstream.Replicator)
    {"cmd": "flush", "timeout": s}         -> {"ok": bool}  (the Replicator's flush)
    {"cmd": "vv"}                          -> {"vv": {origin: seq}}
    {"cmd": "lag"}                         -> {"lag": <Replicator.lag() as JSON>}
    {"cmd": "applies"}                     -> {"segments": n, "commits": m, "largest_group": k}
                                            (received change segments and their commits)
    {"cmd": "frames", "file": F, "n": N}   -> {"address": [...]}  (the raw asyncio floor)
    {"cmd": "quit"}                        -> {"ok": true}, then exit
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

__all__ = ["LAG_PK", "LAG_TABLE", "main"]

LAG_TABLE = "lag"
LAG_PK = "id"
_PAD = "x" * 150  # brings a lag item to about the size of an order item


def _jsonable(obj: Any) -> Any:
    """Best-effort JSON form of whatever the replication API returns."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if hasattr(obj, "__dict__"):
        return {k: _jsonable(v) for k, v in vars(obj).items() if not k.startswith("_")}
    return repr(obj)


def _serve_frames(data: bytes, n: int) -> tuple[str, int]:
    """Serve ``data`` cut into ``n`` length-prefixed frames to each client, from a thread."""
    ready: dict[str, Any] = {}
    started = threading.Event()
    step = max(1, -(-len(data) // n))
    frames = [data[i : i + step] for i in range(0, len(data), step)]

    async def handle(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        for i, frame in enumerate(frames):
            w.write(len(frame).to_bytes(4, "big") + frame)
            if i % 256 == 255:
                await w.drain()
        w.write((0).to_bytes(4, "big"))
        await w.drain()
        w.close()

    async def run() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        ready["address"] = server.sockets[0].getsockname()[:2]
        started.set()
        async with server:
            await server.serve_forever()

    threading.Thread(target=lambda: asyncio.run(run()), daemon=True).start()
    started.wait(10)
    host, port = ready["address"]
    return str(host), int(port)


def main(argv: list[str] | None = None) -> int:
    """Run the command loop until ``quit`` or end of input."""
    ap = argparse.ArgumentParser(prog="python -m bench.node")
    ap.add_argument("--store")
    ap.add_argument("--region", default="bench")
    ap.add_argument("--nosync", action="store_true")
    args = ap.parse_args(argv)
    out = sys.stdout

    def reply(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    with ExitStack() as stack:
        store: Any = None
        if args.store:
            import engine

            store = stack.enter_context(
                engine.open(args.store, region=args.region, durable=not args.nosync)
            )
        rep: Any = None
        server: Any = None
        for line in sys.stdin:
            msg = json.loads(line)
            cmd = msg["cmd"]
            try:
                if cmd == "quit":
                    if rep is not None:
                        rep.stop()
                    reply({"ok": True})
                    break
                if cmd == "create_table":
                    store.create_table(msg["name"], partition_key=msg["pk"])
                    reply({"ok": True})
                elif cmd == "serve":
                    import replication

                    server = replication.serve(store, "127.0.0.1", port=0, secret=None)
                    stack.callback(server.close)
                    reply({"address": list(server.address)})
                elif cmd == "replicate":
                    import replication

                    rep = replication.Replicator(store, peers=msg["peers"], secret=None)
                    rep.start()
                    reply({"ok": True})
                elif cmd == "replicate_nats":
                    from replication import jetstream

                    opts = jetstream.FleetOptions(write_snapshots=bool(msg.get("snapshots")))
                    rep = jetstream.Replicator(store, [msg["url"]], cluster=msg["cluster"],
                                               options=opts).start()
                    reply({"ok": rep.wait_connected(30)})
                elif cmd == "vv":
                    reply({"vv": {str(o): s for o, s in store.version_vector().items()}})
                elif cmd == "flush":
                    reply({"ok": rep.flush(float(msg["timeout"]))})
                elif cmd == "write":
                    table = store.table(LAG_TABLE)
                    n, rate = int(msg["n"]), float(msg["rate"])
                    t0 = time.perf_counter()
                    for i in range(n):
                        delay = t0 + i / rate - time.perf_counter()
                        if delay > 0:
                            time.sleep(delay)
                        table.put({LAG_PK: f"{i:08d}", "t_ns": time.time_ns(), "pad": _PAD})
                    reply({"written": n, "seconds": time.perf_counter() - t0})
                elif cmd == "watch":
                    reply(_watch(store, int(msg["n"]), float(msg["timeout"])))
                elif cmd == "applies":
                    counts = [x.applies for x in (server, rep) if hasattr(x, "applies")]
                    reply({"segments": sum(c.segments for c in counts),
                           "commits": sum(c.commits for c in counts),
                           "largest_group": max((c.largest_group for c in counts), default=0)})
                elif cmd == "lag":
                    reply({"lag": _jsonable(rep.lag() if rep is not None else None)})
                elif cmd == "frames":
                    host, port = _serve_frames(Path(msg["file"]).read_bytes(), int(msg["n"]))
                    reply({"address": [host, port]})
                else:
                    reply({"error": f"unknown command {cmd!r}"})
            except Exception as exc:  # noqa: BLE001 - reported to the driver, which records it
                reply({"error": f"{type(exc).__name__}: {exc}"})
    return 0


def _watch(store: Any, n: int, timeout: float) -> dict[str, Any]:
    """Wait for lag items 0..n-1 in order; lag = arrival wall time minus the writer's stamp.

    Woken by the store's commit listener (it runs right after each commit made in this
    process, the applies of replication included), so an arrival is seen as soon as it is
    readable, not up to a poll interval later, and an idle watcher costs no CPU (a poll every
    0.5 ms did: 2,000 reads a second on a 2-core machine that also runs the nodes). It still
    looks every 5 ms in case a commit came from elsewhere. Both processes read the same system
    clock, so stamps compare directly.
    """
    deadline = time.monotonic() + timeout
    woke = threading.Event()

    def listener(_position: int) -> None:
        woke.set()

    store.add_listener(listener)
    try:
        return _watch_items(store, n, deadline, woke)
    finally:
        store.remove_listener(listener)


def _watch_items(store: Any, n: int, deadline: float, woke: threading.Event) -> dict[str, Any]:
    table = None
    lags: list[float] = []
    i = 0
    while i < n and time.monotonic() < deadline:
        woke.clear()  # before reading: a commit after this wakes the wait below at once
        if table is None:
            try:
                table = store.table(LAG_TABLE)
            except Exception:  # noqa: BLE001 - the table definition has not arrived yet
                woke.wait(0.005)
                continue
        item = table.get(f"{i:08d}")
        if item is None:
            woke.wait(0.005)
            continue
        lags.append((time.time_ns() - int(item["t_ns"])) / 1e6)
        i += 1
    return {"lags_ms": lags, "missing": n - len(lags)}


if __name__ == "__main__":
    raise SystemExit(main())
