"""ShopEase in three regions, written purely with boto3: three ``regiondb serve --dynamodb
--peer`` processes replicate, each region's application talks only to its own endpoint, and
every region converges to the same orders (and the same table description)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import NATIVE, client_for

pytestmark = pytest.mark.integration

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
REGIONS = ("ap-south-1", "us-east-1", "eu-west-1")


def _start(store: Path, peers: list[str]) -> tuple[subprocess.Popen[str], str, str]:
    """``regiondb serve`` with the endpoint; returns (process, replication addr, endpoint url)."""
    args = [sys.executable, "-m", "regiondb", "serve", str(store), "--listen", "127.0.0.1:0",
            "--dynamodb", "127.0.0.1:0", "--status-interval", "0"]
    for p in peers:
        args += ["--peer", p]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV)
    assert proc.stdout is not None
    listen = url = None
    deadline = time.monotonic() + 30
    while (listen is None or url is None) and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(r"listening on (127\.0\.0\.1:\d+)", line)
        if m:
            listen = m.group(1)
        m = re.search(r"DynamoDB endpoint for \S+ on (http://\S+)", line)
        if m:
            url = m.group(1)
    if listen is None or url is None:
        proc.kill()
        raise AssertionError(f"serve did not start: {proc.stderr.read() if proc.stderr else ''}")
    return proc, listen, url


@pytest.fixture
def regions(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Mumbai, Virginia and Ireland, each a process; Virginia and Ireland peer with Mumbai."""
    procs: list[subprocess.Popen[str]] = []
    urls: dict[str, str] = {}
    try:
        hub = None
        for region in REGIONS:
            store = tmp_path / region
            subprocess.run([sys.executable, "-m", "regiondb", "init", str(store), "--region",
                            region], check=True, capture_output=True, env=ENV, timeout=60)
            proc, listen, url = _start(store, [] if hub is None else [hub])
            hub = hub or listen
            procs.append(proc)
            urls[region] = url
        yield {r: client_for(u, region=r) for r, u in urls.items()}
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def _wait(pred: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except Exception:  # noqa: BLE001 - e.g. ResourceNotFound before the table arrives
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


KEYS = [{"customer": {"S": f"{r}-c{i % 3}"}, "placed": {"N": str(1000 * n + i)}}
        for n, r in enumerate(REGIONS) for i in range(20)] + [
    {"customer": {"S": "vip"}, "placed": {"N": "1"}}]


def _orders(ddb: Any) -> list[dict[str, Any]]:
    """Every order a region holds (BatchGetItem of the 61 keys sold; Scan needs engine.expr)."""
    items: list[dict[str, Any]] = []
    for i in range(0, len(KEYS), 100):
        got = ddb.batch_get_item(RequestItems={"orders": {"Keys": KEYS[i:i + 100]}})
        assert got["UnprocessedKeys"] == {}
        items += got["Responses"]["orders"]
    return sorted(items, key=lambda i: (i["customer"]["S"], int(i["placed"]["N"])))


def test_three_regions_converge_through_boto3(regions: dict[str, Any]) -> None:
    mumbai, virginia, ireland = (regions[r] for r in REGIONS)
    virginia.create_table(
        TableName="orders", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "customer", "KeyType": "HASH"},
                   {"AttributeName": "placed", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "customer", "AttributeType": "S"},
                              {"AttributeName": "placed", "AttributeType": "N"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
    for ddb in (mumbai, ireland):  # the table replicates like data: Global Tables' replicas
        _wait(lambda d=ddb: d.describe_table(TableName="orders")["Table"]["TableStatus"]
              == "ACTIVE", "the table to reach every region")
    # its DynamoDB metadata replicated too: Mumbai knows the sort key is a number
    _wait(lambda: {"AttributeName": "placed", "AttributeType": "N"} in
          mumbai.describe_table(TableName="orders")["Table"]["AttributeDefinitions"]
          and "LatestStreamArn" in mumbai.describe_table(TableName="orders")["Table"],
          "the table's metadata in Mumbai")

    # every region sells, each to its own endpoint
    for n, region in enumerate(REGIONS):
        ddb = regions[region]
        with_batch = [{"PutRequest": {"Item": {
            "customer": {"S": f"{region}-c{i % 3}"}, "placed": {"N": str(1000 * n + i)},
            "total": {"N": f"{i}.99"}, "status": {"S": "PLACED"}}}} for i in range(20)]
        ddb.batch_write_item(RequestItems={"orders": with_batch})
    # an order placed through the DynamoDB API in Virginia is read through it in Mumbai
    virginia.put_item(TableName="orders", Item={
        "customer": {"S": "vip"}, "placed": {"N": "1"}, "total": {"N": "250"},
        "status": {"S": "PLACED"}, "lines": {"L": [{"M": {"sku": {"S": "tea"}}}]}})
    _wait(lambda: "Item" in mumbai.get_item(TableName="orders", Key={
        "customer": {"S": "vip"}, "placed": {"N": "1"}}), "the Virginia order in Mumbai")
    got = mumbai.get_item(TableName="orders", Key={"customer": {"S": "vip"},
                                                   "placed": {"N": "1"}})["Item"]
    assert got["lines"] == {"L": [{"M": {"sku": {"S": "tea"}}}]}

    if NATIVE["expr"]:
        # two regions update different attributes of one order at once: both survive
        key = {"customer": {"S": "vip"}, "placed": {"N": "1"}}
        mumbai.update_item(TableName="orders", Key=key, UpdateExpression="SET #s = :s",
                           ExpressionAttributeNames={"#s": "status"},
                           ExpressionAttributeValues={":s": {"S": "SHIPPED"}})
        ireland.update_item(TableName="orders", Key=key, UpdateExpression="SET gift = :g",
                            ExpressionAttributeValues={":g": {"BOOL": True}})
        _wait(lambda: all(
            d.get_item(TableName="orders", Key=key)["Item"].get("gift") == {"BOOL": True}
            and d.get_item(TableName="orders", Key=key)["Item"]["status"] == {"S": "SHIPPED"}
            for d in regions.values()), "both concurrent updates everywhere")

    _wait(lambda: len(_orders(ireland)) == 61 and _orders(mumbai) == _orders(virginia)
          == _orders(ireland), "every region to hold the same 61 orders")
