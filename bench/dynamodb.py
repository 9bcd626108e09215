"""``python -m bench.dynamodb``: boto3 through the DynamoDB endpoint, against moto's server and
the native API, in one run.

Three backends do the same PutItem, GetItem (hit) and Query (one partition of 10 items) calls,
one at a time from one client:

- ``regiondb endpoint``: ``regiondb.dynamodb.serve`` in its own process over a store opened
  with ``durable=False`` (moto keeps nothing on disk either, so neither pays an fsync);
- ``moto server``: ``moto.server.ThreadedMotoServer`` in its own process (PyPI
  ``moto[server]``), the usual stand-in for DynamoDB in tests;
- ``native API``: ``table.put`` / ``get`` / ``query_page`` on the same kind of store in this
  process — the floor the endpoint sits on.

The "raw HTTP" rows send both servers the same calls as pre-built JSON bodies with
``http.client`` (no botocore), so the report names where the time goes: botocore's own client
work (boto3 minus raw), the endpoint's HTTP and translation (raw minus native), and the engine
(native) — and compares the two servers without the client cost they share. Figures are
requests/s and p50/p99 latency; ratios are computed in the same run. Results go to
``bench/results/dynamodb-<stamp>.json`` and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
TABLE = "bench-orders"
_ITEM = {"status": {"S": "PLACED"}, "total": {"N": "129.99"}, "qty": {"N": "3"},
         "address": {"S": "12 Marine Drive, Mumbai 400020"},
         "lines": {"L": [{"M": {"sku": {"S": "tea"}, "n": {"N": "2"}}}]}}


def _serve_regiondb(path: str, conn: Any) -> None:
    import engine
    import regiondb.dynamodb

    with engine.open(path, region="us-east-1", durable=False) as store, \
            regiondb.dynamodb.serve(store) as srv:
        conn.send(srv.url)
        conn.recv()  # until told to stop


def _serve_moto(conn: Any) -> None:
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    conn.send(f"http://127.0.0.1:{port}")
    conn.recv()
    server.stop()


def _timed(fn: Callable[[int], Any], n: int) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t)
    return out


def _summary(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {"rps": len(s) / sum(s), "p50_ms": statistics.median(s) * 1000,
            "p99_ms": s[min(len(s) - 1, int(len(s) * 0.99))] * 1000, "n": len(s)}


def _boto3_ops(url: str, n: int) -> dict[str, dict[str, float]]:
    import boto3
    from botocore.config import Config

    ddb = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1",
                       aws_access_key_id="bench", aws_secret_access_key="bench",
                       config=Config(retries={"max_attempts": 1}))
    ddb.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                {"AttributeName": "sk", "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "sk", "AttributeType": "S"}])

    def key(i: int) -> dict[str, Any]:
        return {"pk": {"S": f"c{i // 10}"}, "sk": {"S": f"o{i % 10:03d}"}}

    for i in range(20):  # warm up connections and caches
        ddb.put_item(TableName=TABLE, Item={**key(i), **_ITEM})
    out = {
        "PutItem": _summary(_timed(lambda i: ddb.put_item(
            TableName=TABLE, Item={**key(i), **_ITEM}), n)),
        "GetItem": _summary(_timed(lambda i: ddb.get_item(TableName=TABLE, Key=key(i)), n)),
        "Query": _summary(_timed(lambda i: ddb.query(
            TableName=TABLE, KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": f"c{i % (n // 10)}"}}), n)),
    }
    return out


_FAKE_AUTH = ("AWS4-HMAC-SHA256 Credential=bench/20240101/us-east-1/dynamodb/aws4_request, "
              "SignedHeaders=host, Signature=" + "0" * 64)


def _raw_ops(url: str, n: int) -> dict[str, dict[str, float]]:
    """The same calls as pre-built JSON bodies over one keep-alive ``http.client`` connection:
    the server's own cost, without botocore's client-side work."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port))

    def key(i: int) -> dict[str, Any]:
        return {"pk": {"S": f"r{i // 10}"}, "sk": {"S": f"o{i % 10:03d}"}}

    bodies = {
        "PutItem": [{"TableName": TABLE, "Item": {**key(i), **_ITEM}} for i in range(n)],
        "GetItem": [{"TableName": TABLE, "Key": key(i)} for i in range(n)],
        "Query": [{"TableName": TABLE, "KeyConditionExpression": "pk = :p",
                   "ExpressionAttributeValues": {":p": {"S": f"r{i % (n // 10)}"}}}
                  for i in range(n)],
    }
    out = {}
    for op, reqs in bodies.items():
        raw = [json.dumps(r).encode() for r in reqs]
        headers = {"X-Amz-Target": f"DynamoDB_20120810.{op}", "Authorization": _FAKE_AUTH,
                   "Content-Type": "application/x-amz-json-1.0"}

        def call(i: int, raw: list[bytes] = raw, headers: dict[str, str] = headers) -> None:
            conn.request("POST", "/", body=raw[i], headers=headers)
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200, resp.status

        out[op] = _summary(_timed(call, n))
    conn.close()
    return out


def _native_ops(n: int) -> dict[str, dict[str, float]]:
    import engine
    from regiondb.dynamodb.values import unmarshal_item

    item = unmarshal_item(_ITEM)
    with tempfile.TemporaryDirectory() as d, \
            engine.open(Path(d) / "s", region="us-east-1", durable=False) as store:
        t = store.create_table(TABLE, partition_key="pk", sort_key="sk")
        out = {
            "PutItem": _summary(_timed(lambda i: t.put(
                {"pk": f"c{i // 10}", "sk": f"o{i % 10:03d}", **item}), n)),
            "GetItem": _summary(_timed(lambda i: t.get(f"c{i // 10}", f"o{i % 10:03d}"), n)),
        }
        query_page = getattr(t, "query_page", None)
        if query_page is not None:
            out["Query"] = _summary(_timed(lambda i: query_page(
                f"c{i % (n // 10)}", key="pk = :p", values={":p": f"c{i % (n // 10)}"}), n))
        else:
            out["Query"] = _summary(_timed(lambda i: list(t.query(f"c{i % (n // 10)}")), n))
        return out


def _in_process(target: Callable[..., None], *args: Any) -> tuple[Any, Any, str]:
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=target, args=(*args, child), daemon=True)
    proc.start()
    if not parent.poll(60):
        proc.kill()
        raise RuntimeError(f"{target.__name__} did not start")
    return proc, parent, parent.recv()


def run(n: int) -> dict[str, Any]:
    """Run every backend; return the results with ratios."""
    results: dict[str, Any] = {"ops": n, "when": datetime.now(UTC).isoformat(),
                               "python": sys.version.split()[0], "backends": {}}
    with tempfile.TemporaryDirectory() as d:
        proc, conn, url = _in_process(_serve_regiondb, str(Path(d) / "store"))
        try:
            results["backends"]["regiondb endpoint"] = _boto3_ops(url, n)
            results["backends"]["regiondb endpoint, raw HTTP"] = _raw_ops(url, n)
        finally:
            conn.send("stop")
            proc.join(20)
    proc, conn, url = _in_process(_serve_moto)
    try:
        results["backends"]["moto server"] = _boto3_ops(url, n)
        results["backends"]["moto server, raw HTTP"] = _raw_ops(url, n)
    finally:
        conn.send("stop")
        proc.join(20)
    results["backends"]["native API"] = _native_ops(n)
    b = results["backends"]
    results["ratios"] = {
        op: {"endpoint/moto rps": b["regiondb endpoint"][op]["rps"] / b["moto server"][op]["rps"],
             "moto/endpoint p50": b["moto server"][op]["p50_ms"]
             / b["regiondb endpoint"][op]["p50_ms"],
             "endpoint/moto rps, raw HTTP": b["regiondb endpoint, raw HTTP"][op]["rps"]
             / b["moto server, raw HTTP"][op]["rps"],
             "native/endpoint rps": b["native API"][op]["rps"]
             / b["regiondb endpoint"][op]["rps"]}
        for op in ("PutItem", "GetItem", "Query")}
    return results


def markdown(r: dict[str, Any]) -> str:
    """The results as a Markdown table, ratios and the endpoint's overhead."""
    lines = [f"boto3 through the endpoint vs moto's server vs the native API — {r['ops']} "
             f"sequential calls per operation, one client ({r['when'][:19]} UTC)", "",
             "| backend | operation | requests/s | p50 ms | p99 ms |", "|---|---|---:|---:|---:|"]
    for name, ops in r["backends"].items():
        for op, s in ops.items():
            lines.append(f"| {name} | {op} | {s['rps']:,.0f} | {s['p50_ms']:.3f} | "
                         f"{s['p99_ms']:.3f} |")
    lines += ["", "| operation | endpoint / moto, boto3 (req/s) | moto p50 / endpoint p50, "
                  "boto3 | endpoint / moto, raw HTTP (req/s) | native / endpoint (req/s) |",
              "|---|---:|---:|---:|---:|"]
    for op, x in r["ratios"].items():
        lines.append(f"| {op} | {x['endpoint/moto rps']:.1f}× | {x['moto/endpoint p50']:.1f}× | "
                     f"{x['endpoint/moto rps, raw HTTP']:.1f}× | "
                     f"{x['native/endpoint rps']:.1f}× |")
    b = r["backends"]
    lines.append("")
    for op in ("PutItem", "GetItem", "Query"):
        boto = b["regiondb endpoint"][op]["p50_ms"]
        raw = b["regiondb endpoint, raw HTTP"][op]["p50_ms"]
        native = b["native API"][op]["p50_ms"]
        lines.append(f"{op} p50 {boto:.3f} ms = botocore client {boto - raw:.3f} ms + endpoint "
                     f"HTTP and translation {raw - native:.3f} ms + engine {native:.3f} ms.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.dynamodb",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--ops", type=int, default=2000, help="calls per operation (default 2000)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    r = run(max(100, args.ops))
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (args.out / f"dynamodb-{stamp}.json").write_text(json.dumps(r, indent=2))
    text = markdown(r)
    (args.out / "dynamodb-latest.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
