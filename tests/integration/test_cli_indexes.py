"""``regiondb create-index``, ``drop-index``, ``indexes``, ``query --index`` and ``check``,
driven as subprocesses: happy paths, usage errors (exit 1), regiondb errors (exit 2) and a
damaged index that ``check`` reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli import assert_error, lines, ok, run

import engine

pytestmark = pytest.mark.integration


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    d = tmp_path / "mumbai"
    ok("init", d, "--region", "ap-south-1")
    ok("create-table", d, "orders", "--partition-key", "customer_id", "--sort-key", "order_id")
    items = "".join(json.dumps({"customer_id": f"c{i % 3}", "order_id": f"o{i:03}",
                                "status": "SHIPPED" if i % 2 else "PLACED", "placed_at": i,
                                "region": "eu" if i % 4 else "us"}) + "\n"
                    for i in range(40))
    ok("put", d, "orders", "-", input=items)
    return d


def test_create_query_list_drop(shop: Path) -> None:
    out = ok("create-index", shop, "orders", "by_status", "--partition-key", "status",
             "--sort-key", "placed_at", "--json")
    assert lines(out) == [{"table": "orders", "index": "by_status", "partition_key": "status",
                           "sort_key": "placed_at", "projection": "ALL", "created": True,
                           "items_read": 40, "seconds": lines(out)[0]["seconds"]}]
    got = lines(ok("query", shop, "orders", "SHIPPED", "--index", "by_status", "--gt", "30",
                   "--reverse"))
    assert [g["placed_at"] for g in got] == [39, 37, 35, 33, 31]
    ok("create-index", shop, "orders", "by_region", "--pk", "region", "--projection",
       "status,placed_at")
    got = lines(ok("query", shop, "orders", "us", "--index", "by_region", "--limit", "2"))
    assert got == [{"customer_id": "c0", "order_id": "o000", "region": "us",
                    "status": "PLACED", "placed_at": 0},
                   {"customer_id": "c0", "order_id": "o012", "region": "us",
                    "status": "PLACED", "placed_at": 12}]
    listed = lines(ok("indexes", shop, "orders", "--json"))
    assert [x["index"] for x in listed] == ["by_region", "by_status"]
    assert listed[0]["projection"] == ["placed_at", "status"]
    ok("drop-index", shop, "orders", "by_region")
    assert [x["index"] for x in lines(ok("indexes", shop, "orders", "--json"))] == ["by_status"]
    report = lines(ok("check", shop, "--json"))[0]
    assert report["ok"] and report["log_replayed"] and report["indexes"] == 1
    assert report["index_entries"] == 40


def test_index_errors(shop: Path) -> None:
    assert_error(run("create-index", shop, "orders", "bad name", "--pk", "status"), 2,
                 "index name must be")
    assert_error(run("create-index", shop, "orders", "x", "--pk", "status", "--projection",
                     "a,,b"), 1, "--projection must be")
    assert_error(run("create-index", shop, "orders", "x"), 1, "--partition-key")
    assert_error(run("create-index", shop, "orders", "dup", "--pk", "customer_id",
                     "--sk", "order_id"), 2, "the table's own key schema")
    assert_error(run("create-index", shop, "nope", "x", "--pk", "status"), 2, "nope")
    ok("create-index", shop, "orders", "by_status", "--pk", "status")
    assert_error(run("create-index", shop, "orders", "by_status", "--pk", "region"), 2,
                 "already used")
    assert_error(run("query", shop, "orders", "x", "--index", "nope"), 2, "no index 'nope'")
    assert_error(run("query", shop, "orders", "x", "--index", "by_status", "--gt", "1"), 2,
                 "has no sort key")
    assert_error(run("drop-index", shop, "orders", "nope"), 2, "no index 'nope'")
    assert_error(run("put", shop, "orders", '{"customer_id": "c", "order_id": "o", '
                     '"status": [1]}'), 2, "'status' is a key of index 'by_status'")


def test_check_reports_a_damaged_index(shop: Path) -> None:
    ok("create-index", shop, "orders", "by_status", "--pk", "status")
    assert "ok: 40 items" in ok("check", shop)
    with engine.open(shop) as store:
        env = store._e()

        def damage(txn: object) -> None:
            cur = txn.cursor(db=env.idx)  # type: ignore[attr-defined]
            cur.first()
            cur.delete()

        env.write(damage)
    p = run("check", shop)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "PROBLEMS" in p.stdout and "items without their entry: 1" in p.stdout
