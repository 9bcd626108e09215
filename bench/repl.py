"""Replication rows: merge, re-merge, segment export/import, TCP catch-up, live lag.

Each row uses only the public replication API of DESIGN.md and runs only when that API exists;
otherwise it is reported as "not available" with the reason. The floors run regardless:

* merge floor — raw LMDB (same flags, sync on) reading a file of the same changes, decoding each
  record and doing the item put plus log put, one transaction per segment's worth of changes;
  its re-merge checks the log for each change and writes nothing;
* catch-up floor — a separate process sending the same segment bytes, cut into one
  length-prefixed frame per change, over loopback with asyncio; the receiver reads every frame.

Nodes that serve, and the three live-replication nodes, are separate processes
(:mod:`bench.node`), so no two replicas share an interpreter.
"""

from __future__ import annotations

import asyncio
import inspect
import statistics
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2
import lmdb

from .backends import MAP_SIZE, _key, engine_available
from .data import ORDERS, ORDERS_PK, ORDERS_SK, mean_cbor_size, order_item
from .harness import scratch_dir
from .node import LAG_PK, LAG_TABLE
from .nodes import NodeProc
from .sizes import Sizes
from .stats import percentile

__all__ = ["REPL_ROWS", "replication_api", "run_replication"]

Progress = Callable[[str], None]

REPL_ROWS: dict[str, tuple[str, str]] = {
    "export": ("export changes to segments", "changes/s"),
    "export_compressed": ("export changes, compressed segments", "changes/s"),
    "bytes_per_change": ("segment bytes per change (as exported)", "bytes"),
    "bytes_per_change_plain": ("segment bytes per change, uncompressed", "bytes"),
    "bytes_per_change_compressed": ("segment bytes per change, compressed", "bytes"),
    "merge": ("merge (import) into an empty store", "changes/s"),
    "remerge": ("no-op re-merge of the same segments", "changes/s"),
    "catchup_tcp": ("catch-up over loopback TCP", "changes/s"),
    "live_lag": ("live lag, 3 nodes at steady writes", "ms"),
    "catchup_nats": ("catch-up from the JetStream stream", "changes/s"),
}


def replication_api() -> dict[str, bool]:
    """Which public replication entry points exist right now."""
    names = ["export_changes", "import_changes", "serve", "sync", "Replicator"]
    try:
        import replication
    except Exception:  # noqa: BLE001
        return {n: False for n in names}
    return {n: callable(getattr(replication, n, None)) for n in names}


def _row(row: str, backend: str, value: float | None, **extra: Any) -> dict[str, Any]:
    title, unit = REPL_ROWS.get(row, (row, ""))
    return {"group": "replication", "row": row, "title": title, "backend": backend,
            "unit": extra.pop("unit", unit), "value": value,
            "available": value is not None, **extra}


def _unavailable(row: str, reason: str) -> dict[str, Any]:
    return _row(row, "regiondb", None, reason=reason)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# ---------------------------------------------------------------------------------------------
# floors


def _floor_file(items: list[dict[str, Any]], path: Path) -> None:
    """Write the changes as length-prefixed CBOR records, the floor's "segment"."""
    origin = (7).to_bytes(8, "big")
    with path.open("wb") as f:
        for seq, item in enumerate(items, 1):
            rec = cbor2.dumps({"t": ORDERS, "k": _key(item[ORDERS_PK], item[ORDERS_SK]),
                               "o": origin, "s": seq, "v": cbor2.dumps(item)})
            f.write(len(rec).to_bytes(4, "big") + rec)


def _floor_merge(path: Path, env: Any, chunk: int, noop: bool) -> float:
    """Read, decode and apply the floor's records; return seconds taken."""
    t0 = time.perf_counter()
    data = path.read_bytes()
    items_db, log_db = env.open_db(b"orders"), env.open_db(b"log")
    pos, n = 0, len(data)
    loads = cbor2.loads
    while pos < n:
        with env.begin(write=True) as txn:
            for _ in range(chunk):
                if pos >= n:
                    break
                size = int.from_bytes(data[pos : pos + 4], "big")
                raw = data[pos + 4 : pos + 4 + size]
                pos += 4 + size
                rec = loads(raw)
                log_key = rec["o"] + rec["s"].to_bytes(8, "big")
                if noop and txn.get(log_key, db=log_db) is not None:
                    continue
                txn.put(rec["k"], rec["v"], db=items_db)
                txn.put(log_key, raw, db=log_db)
    return time.perf_counter() - t0


def _floor_merge_rows(items: list[dict[str, Any]], chunk: int, rounds: int,
                      progress: Progress) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with scratch_dir("regiondb-bench-floor-merge-") as root:
        src = root / "changes.bin"
        _floor_file(items, src)
        merge, remerge = [], []
        for r in range(rounds):
            env = lmdb.open(str(root / f"env{r}"), map_size=MAP_SIZE, max_dbs=16, subdir=True,
                            sync=True, metasync=True, readahead=False, max_readers=512)
            try:
                merge.append(len(items) / _floor_merge(src, env, chunk, noop=False))
                remerge.append(len(items) / _floor_merge(src, env, chunk, noop=True))
            finally:
                env.close()
        rows.append(_row("merge", "raw_lmdb", _median(merge), rounds_values=merge,
                         changes=len(items), txn_changes=chunk))
        rows.append(_row("remerge", "raw_lmdb", _median(remerge), rounds_values=remerge,
                         changes=len(items), txn_changes=chunk))
    progress(f"repl  merge floor       raw_lmdb         {_median(merge):>12,.0f} changes/s"
             f"  re-merge {_median(remerge):,.0f} changes/s")
    return rows


async def _receive_frames(host: str, port: int) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    count = 0
    while True:
        size = int.from_bytes(await reader.readexactly(4), "big")
        if size == 0:
            break
        await reader.readexactly(size)
        count += 1
    writer.close()
    await writer.wait_closed()
    return count


def _floor_frames_row(blob: Path, changes: int, rounds: int, progress: Progress) -> dict[str, Any]:
    rates = []
    with NodeProc() as node:
        host, port = node.call({"cmd": "frames", "file": str(blob), "n": changes})["address"]
        for _ in range(rounds):
            t0 = time.perf_counter()
            got = asyncio.run(_receive_frames(host, port))
            dt = time.perf_counter() - t0
            rates.append(got / dt)
    progress(f"repl  catch-up floor    raw_asyncio      {_median(rates):>12,.0f} changes/s")
    return _row("catchup_tcp", "raw_asyncio", _median(rates), rounds_values=rates,
                changes=changes, bytes=blob.stat().st_size)


# ---------------------------------------------------------------------------------------------
# regiondb


def _source_store(path: Path, items: list[dict[str, Any]]) -> None:
    """A store whose log holds one change per item (single writes, as a shop makes them)."""
    import engine

    with engine.open(str(path), region="ap-south-1", durable=False, map_size=MAP_SIZE) as store:
        table = store.create_table(ORDERS, partition_key=ORDERS_PK, sort_key=ORDERS_SK)
        for item in items:
            table.put(item)


def _export(store_path: Path, out: Path, compress: bool | None) -> tuple[float, list[Path]]:
    import engine
    import replication

    out.mkdir(parents=True, exist_ok=True)
    kwargs = {} if compress is None else {"compress": compress}
    with engine.open(str(store_path), region="ap-south-1", durable=False,
                     map_size=MAP_SIZE) as store:
        t0 = time.perf_counter()
        paths = replication.export_changes(store, out, since=None, **kwargs)
        dt = time.perf_counter() - t0
    return dt, [Path(p) for p in paths]


def _digest(store: Any) -> str | None:
    fn = getattr(store, "digest", None)
    return str(fn()) if callable(fn) else None


def _regiondb_rows(items: list[dict[str, Any]], sizes: Sizes, api: dict[str, bool],
                   root: Path, progress: Progress) -> tuple[list[dict[str, Any]], int, Path | None]:
    """Export, bytes per change, merge and re-merge; returns rows, #segments, export dir."""
    import engine
    import replication

    rows: list[dict[str, Any]] = []
    n = len(items)
    src = root / "src"
    t0 = time.perf_counter()
    _source_store(src, items)
    progress(f"repl  source store of {n:,} changes built in {time.perf_counter() - t0:.1f} s")
    item_size = mean_cbor_size(items)
    if not api["export_changes"]:
        for r in ("export", "bytes_per_change", "merge", "remerge"):
            rows.append(_unavailable(r, "replication.export_changes not available"))
        return rows, 0, None

    has_compress = "compress" in inspect.signature(replication.export_changes).parameters
    exports: dict[str, list[float]] = {}
    last: dict[str, list[Path]] = {}
    variants: list[tuple[str, bool | None]] = [("as_exported", None)]
    if has_compress:
        variants += [("plain", False), ("compressed", True)]
    for label, compress in variants:
        for r in range(sizes.repl_rounds):
            dt, paths = _export(src, root / f"export-{label}-{r}", compress)
            exports.setdefault(label, []).append(n / dt)
            last[label] = paths
    export_dir = (last["as_exported"][0].parent if last["as_exported"]
                  else root / "export-as_exported-0")
    rows.append(_row("export", "regiondb", _median(exports["as_exported"]),
                     rounds_values=exports["as_exported"], changes=n,
                     segments=len(last["as_exported"])))
    for label, row in (("as_exported", "bytes_per_change"), ("plain", "bytes_per_change_plain"),
                       ("compressed", "bytes_per_change_compressed")):
        if label not in last:
            rows.append(_row(row, "regiondb", None,
                             reason="export_changes has no compress= option"))
            continue
        total = sum(p.stat().st_size for p in last[label])
        rows.append(_row(row, "regiondb", total / n, total_bytes=total, changes=n,
                         item_cbor_bytes=item_size, ratio_to_item=total / n / item_size))
    if "compressed" in exports:
        rows.append(_row("export_compressed", "regiondb", _median(exports["compressed"]),
                         rounds_values=exports["compressed"], changes=n))
    bpc = sum(p.stat().st_size for p in last["as_exported"]) / n
    progress(f"repl  export            regiondb         {_median(exports['as_exported']):>12,.0f}"
             f" changes/s  {bpc:,.0f} bytes/change (item CBOR {item_size:,.0f} B)")

    if not api["import_changes"]:
        rows.append(_unavailable("merge", "replication.import_changes not available"))
        rows.append(_unavailable("remerge", "replication.import_changes not available"))
        return rows, len(last["as_exported"]), export_dir
    with engine.open(str(src), region="ap-south-1", durable=False, map_size=MAP_SIZE) as s:
        want = _digest(s)
    merge, remerge, converged, reports = [], [], [], []
    for r in range(sizes.repl_rounds):
        with engine.open(str(root / f"dst{r}"), region="eu-west-1", durable=True,
                         map_size=MAP_SIZE) as dst:
            t0 = time.perf_counter()
            rep = replication.import_changes(dst, export_dir)
            merge.append(n / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            rep2 = replication.import_changes(dst, export_dir)
            remerge.append(n / (time.perf_counter() - t0))
            converged.append(want is not None and _digest(dst) == want)
            reports.append([repr(rep)[:300], repr(rep2)[:300]])
    rows.append(_row("merge", "regiondb", _median(merge), rounds_values=merge, changes=n,
                     converged=converged, reports=reports, floor="raw_lmdb"))
    rows.append(_row("remerge", "regiondb", _median(remerge), rounds_values=remerge, changes=n,
                     floor="raw_lmdb"))
    progress(f"repl  merge             regiondb         {_median(merge):>12,.0f} changes/s"
             f"  re-merge {_median(remerge):,.0f} changes/s  converged={converged}")
    return rows, len(last["as_exported"]), export_dir


def _catchup_row(src: Path, changes: int, rounds: int, root: Path,
                 progress: Progress) -> dict[str, Any]:
    import engine
    import replication

    rates, converged = [], []
    with NodeProc(store=src, region="ap-south-1", nosync=True) as node:
        host, port = node.call({"cmd": "serve"})["address"]
        for r in range(rounds):
            with engine.open(str(root / f"catchup{r}"), region="us-east-1", durable=True,
                             map_size=MAP_SIZE) as dst:
                t0 = time.perf_counter()
                replication.sync(dst, f"{host}:{port}", secret=None)
                rates.append(changes / (time.perf_counter() - t0))
                converged.append(sum(1 for _ in dst.table(ORDERS).scan()) == changes)
    progress(f"repl  catch-up TCP      regiondb         {_median(rates):>12,.0f} changes/s"
             f"  complete={converged}")
    return _row("catchup_tcp", "regiondb", _median(rates), rounds_values=rates, changes=changes,
                complete=converged, floor="raw_asyncio")


def _lag_row(sizes: Sizes, root: Path, progress: Progress, *, nosync: bool = False,
             nats: str | None = None) -> dict[str, Any]:
    """Arrival lag among three node processes; ``nosync`` shows the protocol without fsyncs;
    ``nats`` (a broker URL) runs them through JetStream instead of a TCP mesh."""
    n = int(sizes.lag_rate * sizes.lag_seconds)
    regions = ["ap-south-1", "us-east-1", "eu-west-1"]
    tag = ("nats-" if nats else "") + ("nosync-" if nosync else "")
    backend = "regiondb" + ("_nats" if nats else "") + ("_nosync" if nosync else "")
    nodes = [NodeProc(store=root / f"lag-{tag}{r}", region=r, nosync=nosync) for r in regions]
    try:
        a, b, c = nodes
        a.call({"cmd": "create_table", "name": LAG_TABLE, "pk": LAG_PK})
        if nats:
            for node in nodes:
                node.call({"cmd": "replicate_nats", "url": nats, "cluster": f"lag-{tag}x"})
        else:
            addrs = [f"{h}:{p}" for h, p in (x.call({"cmd": "serve"})["address"]
                                             for x in nodes)]
            for i, node in enumerate(nodes):
                node.call({"cmd": "replicate",
                           "peers": [x for j, x in enumerate(addrs) if j != i]})
        timeout = sizes.lag_seconds + 60
        for w in (b, c):
            w.send({"cmd": "watch", "n": n, "timeout": timeout})
        written = a.call({"cmd": "write", "n": n, "rate": sizes.lag_rate}, timeout=timeout)
        watched = [w.receive(timeout=timeout + 10) for w in (b, c)]
        reported = b.call({"cmd": "lag"}).get("lag")
        applies = [x.call({"cmd": "applies"}) for x in (b, c)]
    finally:
        for node in nodes:
            node.close()
    lags = sorted(x for w in watched for x in w["lags_ms"])
    missing = sum(w["missing"] for w in watched)
    p50, p99 = percentile(lags, 50), percentile(lags, 99)
    segments = sum(x.get("segments", 0) for x in applies)
    commits = sum(x.get("commits", 0) for x in applies)
    progress(f"repl  live lag          {backend:<16} p50 {p50:,.2f} ms  p99 {p99:,.2f} ms"
             f"  ({len(lags):,} arrivals, {missing} missing,"
             f" {n / written['seconds']:,.0f} writes/s achieved"
             + (f"; receivers: {segments:,} segments in {commits:,} commits)" if segments
                else ")"))
    return _row("live_lag", backend, p99 if not missing else None, unit="ms",
                p50_ms=p50, p95_ms=percentile(lags, 95), p99_ms=p99,
                max_ms=lags[-1] if lags else None, arrivals=len(lags), missing=missing,
                writes=n, achieved_rate=n / written["seconds"], replicator_lag=reported,
                receiver_segments=segments or None, receiver_commits=commits or None,
                reason=f"{missing} of {2 * n} arrivals never seen" if missing else None)


def _catchup_nats_row(src: Path, changes: int, rounds: int, root: Path, url: str,
                      progress: Progress) -> dict[str, Any]:
    """A fresh durable node reads ``changes`` changes from the stream (no snapshot to load)."""
    import engine
    from replication import jetstream

    rates, converged = [], []
    with NodeProc(store=src, region="ap-south-1", nosync=True) as node:
        node.call({"cmd": "replicate_nats", "url": url, "cluster": "catchup"}, timeout=60)
        if not node.call({"cmd": "flush", "timeout": 300}, timeout=320)["ok"]:
            raise RuntimeError("the source did not publish its changes in time")
        target = {int(o): s for o, s in node.call({"cmd": "vv"})["vv"].items()}
        opts = jetstream.FleetOptions(write_snapshots=False)
        for r in range(rounds):
            with engine.open(str(root / f"catchup-nats{r}"), region="us-east-1", durable=True,
                             map_size=MAP_SIZE) as dst:
                t0 = time.perf_counter()
                with jetstream.Replicator(dst, [url], cluster="catchup", options=opts):
                    deadline = time.monotonic() + 600
                    while time.monotonic() < deadline and \
                            any(dst.version_vector().get(o, 0) < s for o, s in target.items()):
                        time.sleep(0.005)
                    rates.append(changes / (time.perf_counter() - t0))
                converged.append(sum(1 for _ in dst.table(ORDERS).scan()) == changes)
    progress(f"repl  catch-up NATS     regiondb_nats    {_median(rates):>12,.0f} changes/s"
             f"  complete={converged}")
    return _row("catchup_nats", "regiondb_nats", _median(rates), rounds_values=rates,
                changes=changes, complete=converged, floor="catchup_tcp")


def _nats_rows(sizes: Sizes, root: Path, items: list[dict[str, Any]],
               progress: Progress) -> list[dict[str, Any]]:
    """The fleet transport's rows, through one local nats-server started here.

    The catch-up source is a store of its own: the TCP rows' source has served three replicas
    that acknowledged everything, so its log may be garbage-collected by now (a newcomer would
    rightly get a snapshot, which is not what this row measures)."""
    from replication import jetstream

    with jetstream.LocalServer(root / "nats", name="bench-nats") as broker:
        rows: list[dict[str, Any]] = []
        for nosync in (False, True):
            try:
                rows.append(_lag_row(sizes, root, progress, nats=broker.url, nosync=nosync))
            except Exception as exc:  # noqa: BLE001 - as guarded(): recorded, the run goes on
                rows.append({"group": "replication", "row": "live_lag",
                             "backend": "regiondb_nats" + ("_nosync" if nosync else ""),
                             "value": None, "available": False,
                             "error": f"{type(exc).__name__}: {exc}"})
        src = root / "src-nats"
        _source_store(src, items)
        rows.append(_catchup_nats_row(src, len(items), sizes.repl_rounds, root, broker.url,
                                      progress))
    return rows


def run_replication(sizes: Sizes, progress: Progress) -> list[dict[str, Any]]:
    """All replication rows: floors always, regiondb rows where the API exists."""
    rows: list[dict[str, Any]] = []
    n = sizes.repl_changes
    items = [order_item(i // 100, i % 100) for i in range(n)]
    api = replication_api()
    ok, why = engine_available()

    def guarded(label: str, fn: Callable[[], list[dict[str, Any]]]) -> None:
        try:
            rows.extend(fn())
        except Exception as exc:  # noqa: BLE001 - one broken row must not sink the run
            rows.append({"group": "replication", "row": label, "backend": "regiondb",
                         "value": None, "available": False,
                         "error": f"{type(exc).__name__}: {exc}",
                         "traceback": traceback.format_exc(limit=8)})
            progress(f"repl  {label:<17} ERROR {type(exc).__name__}: {exc}")

    with scratch_dir("regiondb-bench-repl-") as root:
        segments, export_dir = 0, None
        if ok:
            def regiondb_rows() -> list[dict[str, Any]]:
                nonlocal segments, export_dir
                out, segments, export_dir = _regiondb_rows(items, sizes, api, root, progress)
                return out
            guarded("export/merge", regiondb_rows)
        else:
            for r in ("export", "bytes_per_change", "merge", "remerge"):
                rows.append(_unavailable(r, why))
        chunk = -(-n // segments) if segments else 10_000
        guarded("merge floor", lambda: _floor_merge_rows(items, chunk, sizes.repl_rounds,
                                                          progress))
        # The catch-up floor sends the regiondb segment bytes when there are some, else the
        # floor's own record file: the same changes either way.
        def frames() -> list[dict[str, Any]]:
            blob = root / "frames.bin"
            if export_dir is not None:
                blob.write_bytes(b"".join(p.read_bytes() for p in sorted(export_dir.iterdir())
                                          if p.is_file()))
            else:
                _floor_file(items, blob)
            return [_floor_frames_row(blob, n, sizes.repl_rounds, progress)]
        guarded("catch-up floor", frames)
        if ok and api["serve"] and api["sync"] and (root / "src").exists():
            guarded("catchup_tcp", lambda: [_catchup_row(root / "src", n, sizes.repl_rounds,
                                                          root, progress)])
        else:
            rows.append(_unavailable("catchup_tcp", why if not ok else
                                     "replication.serve / replication.sync not available"))
        if ok and api["serve"] and api["Replicator"]:
            # Two guards: a durable row that cannot keep up must not hide the protocol's row.
            guarded("live_lag", lambda: [_lag_row(sizes, root, progress)])
            guarded("live_lag", lambda: [_lag_row(sizes, root, progress, nosync=True)])
        else:
            rows.append(_unavailable("live_lag", why if not ok else
                                     "replication.serve / replication.Replicator not available"))
        try:
            import nats  # noqa: F401 - the fleet rows need the nats extra

            from replication.jetstream import find_nats_server
            find_nats_server()
        except Exception as exc:  # noqa: BLE001
            rows.append(_unavailable("catchup_nats", f"the nats extra is not installed: {exc}"))
        else:
            if ok:
                guarded("nats", lambda: _nats_rows(sizes, root, items, progress))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Only the live-lag row, several times: ``python -m bench.repl [--size quick|full]
    [--rounds N] [--nosync]``; prints each run and the medians of p50 and p99."""
    import argparse
    import json

    from .sizes import SIZES

    ap = argparse.ArgumentParser(prog="python -m bench.repl")
    ap.add_argument("--size", choices=sorted(SIZES), default="quick")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--nosync", action="store_true")
    args = ap.parse_args(argv)
    rows = []
    for _ in range(args.rounds):
        with scratch_dir("regiondb-bench-lag-") as root:
            rows.append(_lag_row(SIZES[args.size], root, print, nosync=args.nosync))
    print(json.dumps({
        "size": args.size, "nosync": args.nosync, "rounds": args.rounds,
        "p50_ms": [round(r["p50_ms"], 2) for r in rows],
        "p99_ms": [round(r["p99_ms"], 2) for r in rows],
        "median_p50_ms": round(statistics.median(r["p50_ms"] for r in rows), 2),
        "median_p99_ms": round(statistics.median(r["p99_ms"] for r in rows), 2)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
