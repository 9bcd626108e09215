"""The ``regiondb`` command, driven as a subprocess (``python -m regiondb``).

Every command's happy path, usage errors (exit 1), regiondb errors (exit 2, one line on
stderr, no traceback) and the JSON round trip of bytes, sets and decimals.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import engine
from regiondb.jsonvalues import dumps, loads, parse_key

pytestmark = pytest.mark.integration

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def run(
    *args: object, input: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "regiondb", *map(str, args)],
                          capture_output=True, text=True, input=input, timeout=timeout, env=ENV)


def ok(*args: object, input: str | None = None) -> str:
    p = run(*args, input=input)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    return p.stdout


def lines(out: str) -> list[Any]:
    return [loads(line) for line in out.splitlines() if line.strip()]


def assert_error(p: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    err = p.stderr.strip().splitlines()
    if code == 2:
        assert len(err) == 1, p.stderr
    for needle in needles:
        assert needle in p.stderr, p.stderr


@pytest.fixture
def store(tmp_path: Path) -> Path:
    d = tmp_path / "mumbai"
    ok("init", d, "--region", "ap-south-1")
    ok("create-table", d, "orders", "--partition-key", "customer_id", "--sort-key", "order_id")
    ok("create-table", d, "inventory", "--partition-key", "sku")
    return d


# -- the JSON value encoding (in-process: it is pure) -----------------------------------


def test_json_values_round_trip() -> None:
    item = {"id": "o1", "total": Decimal("19.99"), "big": Decimal("1E+30"), "n": 42,
            "raw": b"\x00\xff", "tags": {"b", "a"}, "blobs": frozenset({b"x", b"y"}),
            "nums": {1, 2, Decimal("2.5")}, "nested": [{"k": None, "t": True}],
            "looks_tagged": {"$b64": "not base64"}, "f": 0.5}
    text = dumps(item)
    assert "\n" not in text
    back = loads(text)
    assert back["total"] == Decimal("19.99") and isinstance(back["total"], Decimal)
    assert back["big"] == Decimal("1E+30")
    assert back["raw"] == b"\x00\xff"
    assert back["tags"] == {"a", "b"} and back["blobs"] == {b"x", b"y"}
    assert back["looks_tagged"] == {"$b64": "not base64"}
    assert back["f"] == Decimal("0.5")
    assert back["nested"] == [{"k": None, "t": True}]
    assert dumps(back) == text


def test_json_numbers_policy() -> None:
    assert loads("1") == 1 and isinstance(loads("1"), int)
    assert loads("0.1") == Decimal("0.1")
    assert loads("1e3") == Decimal("1E+3")
    with pytest.raises(ValueError):
        loads("NaN")
    assert parse_key("c1") == "c1"
    assert parse_key("42") == 42
    assert parse_key('"42"') == "42"
    assert parse_key("1.5") == Decimal("1.5")
    assert parse_key('{"$b64": "AAE="}') == b"\x00\x01"
    assert parse_key("true") == "true"
    assert parse_key("{not json") == "{not json"


# -- local commands --------------------------------------------------------------------


def test_help_everywhere() -> None:
    out = ok("--help")
    for cmd in ("init", "create-table", "put", "get", "delete", "update", "query", "scan",
                "export", "import", "sync-dir", "serve", "sync", "status", "demo"):
        assert cmd in out
        sub = ok(cmd, "--help")
        assert "examples:" in sub and "--json" in sub


def test_init_and_idempotent(tmp_path: Path) -> None:
    d = tmp_path / "s"
    info = lines(ok("init", d, "--region", "eu-west-1", "--json"))[0]
    assert info["region"] == "eu-west-1" and info["created"] is True
    again = lines(ok("init", d, "--region", "eu-west-1", "--json"))[0]
    assert again["created"] is False and again["node_id"] == info["node_id"]
    assert_error(run("init", d, "--region", "us-east-1"), 2, "ValidationError", "eu-west-1")


def test_put_get_update_delete(store: Path) -> None:
    item = ('{"customer_id": "c1", "order_id": "o1", "total": 19.99, "qty": 2, '
            '"raw": {"$b64": "AAE="}, "tags": {"$set": ["gift", "express"]}}')
    assert "put orders" in ok("put", store, "orders", item)
    got = lines(ok("get", store, "orders", "c1", "o1"))
    assert got == [{"customer_id": "c1", "order_id": "o1", "total": Decimal("19.99"), "qty": 2,
                    "raw": b"\x00\x01", "tags": {"gift", "express"}}]
    # what the engine stored is exactly what was typed
    with engine.open(store) as s:
        stored = s.table("orders").get("c1", "o1")
    assert stored is not None and stored["total"] == Decimal("19.99")
    assert isinstance(stored["total"], Decimal) and stored["raw"] == b"\x00\x01"

    new = lines(ok("update", store, "orders", "c1", "o1", "--set", '{"status": "SHIPPED"}',
                   "--remove", "tags"))[0]
    assert new["status"] == "SHIPPED" and "tags" not in new
    assert lines(ok("get", store, "orders", "c1", "o1"))[0]["status"] == "SHIPPED"

    out = lines(ok("delete", store, "orders", "c1", "o1", "--json"))[0]
    assert out == {"table": "orders", "key": {"customer_id": "c1", "order_id": "o1"},
                   "deleted": True}
    assert ok("get", store, "orders", "c1", "o1") == ""
    ok("delete", store, "orders", "c1", "o1")  # deleting a missing item is fine


def test_numeric_and_bytes_keys(store: Path) -> None:
    ok("put", store, "inventory", '{"sku": 42, "stock": 5}')
    ok("put", store, "inventory", '{"sku": "42", "stock": 7}')
    ok("put", store, "inventory", '{"sku": {"$b64": "AAE="}, "stock": 9}')
    assert lines(ok("get", store, "inventory", "42"))[0]["stock"] == 5
    assert lines(ok("get", store, "inventory", '"42"'))[0]["stock"] == 7
    assert lines(ok("get", store, "inventory", '{"$b64": "AAE="}'))[0]["stock"] == 9
    skus = [i["sku"] for i in lines(ok("scan", store, "inventory"))]
    assert skus == [42, "42", b"\x00\x01"]  # numbers < strings < bytes


def test_conditions(store: Path) -> None:
    ok("put", store, "orders", '{"customer_id": "c1", "order_id": "o1", "status": "PLACED"}',
       "--if-not-exists")
    p = run("put", store, "orders", '{"customer_id": "c1", "order_id": "o1"}', "--if-not-exists")
    assert_error(p, 2, "ConditionFailed")
    ok("update", store, "orders", "c1", "o1", "--set", '{"status": "PAID"}',
       "--if", '{"status": "PLACED"}')
    p = run("update", store, "orders", "c1", "o1", "--set", '{"status": "PAID"}',
            "--if", '{"status": "PLACED"}')
    assert_error(p, 2, "ConditionFailed")
    assert_error(run("delete", store, "orders", "c9", "o9", "--if-exists"), 2, "ConditionFailed")
    assert lines(ok("get", store, "orders", "c1", "o1"))[0]["status"] == "PAID"


def test_query_and_scan(store: Path) -> None:
    items = "".join(json.dumps({"customer_id": "c1", "order_id": f"o{i:02d}", "n": i}) + "\n"
                    for i in range(20))
    assert "put 20 items" in ok("put", store, "orders", "-", input=items)
    ok("put", store, "orders", '{"customer_id": "c2", "order_id": "o00"}')

    def ids(*args: object) -> list[str]:
        return [i["order_id"] for i in lines(ok("query", store, "orders", "c1", *args))]

    assert ids() == [f"o{i:02d}" for i in range(20)]
    assert ids("--begins-with", "o1") == [f"o{i}" for i in range(10, 20)]
    assert ids("--between", "o03", "o05") == ["o03", "o04", "o05"]
    assert ids("--gt", "o17") == ["o18", "o19"]
    assert ids("--gte", "o05", "--lt", "o07") == ["o05", "o06"]
    assert ids("--lte", "o01", "--reverse") == ["o01", "o00"]
    assert ids("--reverse", "--limit", "2") == ["o19", "o18"]
    assert len(lines(ok("scan", store, "orders"))) == 21
    assert len(lines(ok("scan", store, "orders", "--limit", "3"))) == 3


def test_tables_changes_conflicts_status(store: Path) -> None:
    ok("put", store, "orders", '{"customer_id": "c1", "order_id": "o1"}')
    tables = lines(ok("tables", store, "--json"))
    assert {t["table"] for t in tables} == {"orders", "inventory"}
    changes = lines(ok("changes", store))
    assert [c["kind"] for c in changes] == ["create_table", "create_table", "put"]
    assert lines(ok("changes", store, "--since", changes[1]["position"])) == changes[2:]
    assert ok("conflicts", store) == ""
    status = lines(ok("status", store, "--json"))[0]
    assert status["region"] == "ap-south-1" and status["conflicts"] == 0
    assert status["vv"] == {status["node_id"]: 3}
    assert status["tables"] == ["inventory", "orders"]
    human = ok("status", store)
    assert "ap-south-1" in human and status["node_id"] in human


def test_conflicts_are_listed(tmp_path: Path) -> None:
    """Two replicas write one attribute concurrently; the merge records the loser."""
    from replication.segment import segment_filename  # noqa: F401 - needs the package
    a, b = tmp_path / "a", tmp_path / "b"
    with engine.open(a, region="r-a") as sa, engine.open(b, region="r-b") as sb:
        sa.create_table("t", partition_key="id")
        sb.apply_changes(sa.log_range(sa.node_id, 0))
        sa.table("t").put({"id": "x", "v": "from-a"})
        sb.table("t").put({"id": "x", "v": "from-b"})
        sb.apply_changes(sa.log_range(sa.node_id, 1))
    rows = lines(ok("conflicts", b, "--json"))
    assert len(rows) == 1 and rows[0]["attribute"] == "v"
    assert {rows[0]["value"], rows[0]["winner_value"]} == {"from-a", "from-b"}
    assert "conflict #1" in ok("conflicts", b)
    assert lines(ok("status", b, "--json"))[0]["conflicts"] == 1


def test_forget(store: Path) -> None:
    out = lines(ok("forget", store, "00000000000000ab", "--json"))
    assert out == [{"forgotten": "00000000000000ab"}]
    assert lines(ok("status", store, "--json"))[0]["forgotten"] == ["00000000000000ab"]


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("argv,needle", [
    ([], "arguments are required: COMMAND"),
    (["nope"], "invalid choice: 'nope'"),
    (["get"], "arguments are required: DIR, TABLE, PK"),
    (["put", "DIR", "orders"], "arguments are required: ITEM"),
    (["query", "DIR", "orders", "c1", "--limit", "0"], "expected a positive integer, not '0'"),
    (["query", "DIR", "orders", "c1", "--gt", "a", "--gte", "b"], "at most one of --gt/--gte"),
    (["query", "DIR", "orders", "c1", "--begins-with", "a", "--lt", "b"],
     "--begins-with and --between cannot be combined"),
    (["put", "DIR", "orders", "{not json"], "ITEM is not valid JSON"),
    (["put", "DIR", "orders", "[1, 2]"], "ITEM must be a JSON object"),
    (["put", "DIR", "orders", '{"x": NaN}'], "NaN is not a number"),
    (["put", "DIR", "orders", '{"x": {"$b64": "***"}}'], "ITEM.x: '***' is not valid base64"),
    (["get", "DIR", "orders", '{"$b64": "***"}'], "partition key: '***' is not valid base64"),
    (["query", "DIR", "orders", "c1", "--gt", '{"$b64": "***"}'],
     "sort key: '***' is not valid base64"),
    (["update", "DIR", "orders", "c1", "o1"], "give --set"),
    (["update", "DIR", "orders", "c1", "o1", "--set", "3"], "--set must be a JSON object"),
    (["serve", "DIR", "--listen", "nowhere"], "expected HOST:PORT, not 'nowhere'"),
    (["forget", "DIR", "xyz"], "expected a node id in hex, not 'xyz'"),
    (["demo", "--duration", "-3"], "expected seconds >= 0, not '-3'"),
])
def test_usage_errors_exit_1(store: Path, argv: list[str], needle: str) -> None:
    p = run(*[store if a == "DIR" else a for a in argv])
    assert_error(p, 1, needle)
    assert p.stderr.strip().splitlines()[-1].startswith("regiondb"), p.stderr


@pytest.mark.parametrize("argv,needle", [
    (["get", "MISSING", "orders", "c1", "o1"], "does not exist"),
    (["scan", "DIR", "nope"], "TableNotFound"),
    (["get", "DIR", "orders", "c1"], "needs a sort key"),
    (["put", "DIR", "orders", '{"order_id": "o1"}'], "partition key"),
    (["put", "DIR", "orders", '{"customer_id": true, "order_id": "o1"}'], "customer_id"),
    (["update", "DIR", "orders", "c1", "o1", "--set", '{"a": 1}', "--remove", "a"],
     "both set and removed"),
    (["create-table", "DIR", "orders", "--partition-key", "other"], "SchemaError"),
    (["import", "DIR", "MISSING"], "does not exist"),
    (["serve", "DIR", "--listen", "127.0.0.1:0", "--secret-file", "MISSING"], "MISSING"),
])
def test_regiondb_errors_exit_2(store: Path, tmp_path: Path, argv: list[str],
                                needle: str) -> None:
    missing = str(tmp_path / "missing")
    p = run(*[store if a == "DIR" else missing if a == "MISSING" else a for a in argv])
    assert_error(p, 2, needle.replace("MISSING", missing))


def test_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    assert_error(run("status", tmp_path / "plain"), 2, "not a regiondb store")
    (tmp_path / "file").write_text("x")
    assert_error(run("scan", tmp_path / "file", "t"), 2)


def test_bad_segment_import_exit_2(store: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.seg"
    bad.write_bytes(b"\x89RGDBSEG" + b"\x00" * 64)
    p = run("import", store, bad)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "bad.seg" in p.stderr


def test_broken_pipe_is_quiet(store: Path) -> None:
    items = "".join(json.dumps({"customer_id": "c", "order_id": f"o{i:05d}"}) + "\n"
                    for i in range(3000))
    ok("put", store, "orders", "-", input=items)
    p = subprocess.run(f"{sys.executable} -m regiondb scan {store} orders | head -1",
                       shell=True, capture_output=True, text=True, env=ENV, timeout=60)
    assert p.returncode == 0 and len(p.stdout.splitlines()) == 1
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr


# -- replication commands --------------------------------------------------------------


def _seed(store: Path, n: int) -> None:
    items = "".join(json.dumps({"customer_id": f"c{i % 7}", "order_id": f"o{i:05d}",
                                "total": "1.5"}) + "\n" for i in range(n))
    ok("put", store, "orders", "-", input=items)


def test_export_import_incremental(store: Path, tmp_path: Path) -> None:
    _seed(store, 1200)
    out, since = tmp_path / "backup", tmp_path / "since.json"
    first = lines(ok("export", store, out, "--since-file", since, "--json"))[0]
    assert first["segments"] >= 1 and first["changes"] >= 1
    assert json.loads(since.read_text()) == first["vv"]
    human = ok("export", store, tmp_path / "none", "--since-file", since)
    assert human.startswith("exported") and "0 segments" in human
    ok("put", store, "orders", '{"customer_id": "c1", "order_id": "new"}')
    inc = lines(ok("export", store, tmp_path / "inc", "--since-file", since, "--json"))[0]
    assert inc["segments"] == 1

    replica = tmp_path / "ireland"
    ok("init", replica, "--region", "eu-west-1")
    summary = ok("import", replica, out)
    assert summary.startswith("imported") and "changes applied" in summary
    again = lines(ok("import", replica, out, "--json"))[0]
    assert again["applied"] == 0 and again["skipped"] >= 1
    ok("import", replica, tmp_path / "inc")
    assert lines(ok("get", replica, "orders", "c1", "new")) == [
        {"customer_id": "c1", "order_id": "new"}]
    assert len(lines(ok("scan", replica, "orders"))) == 1201


def test_import_rejects_bad_file_and_applies_the_rest(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "seg"
    ok("export", store, out)
    bad = out / "zz-bad.seg"
    bad.write_bytes(b"\x89RGDBSEG" + b"\x00" * 64)
    replica = tmp_path / "r"
    ok("init", replica, "--region", "eu-west-1")
    p = run("import", replica, out)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "zz-bad.seg" in p.stderr and "rejected" in p.stderr
    assert "orders" in ok("tables", replica)


def test_sync_dir_two_nodes(store: Path, tmp_path: Path) -> None:
    mailbox, other = tmp_path / "mailbox", tmp_path / "virginia"
    ok("init", other, "--region", "us-east-1")
    ok("put", store, "orders", '{"customer_id": "c1", "order_id": "o1", "by": "mumbai"}')
    assert "exported" in ok("sync-dir", store, mailbox)
    ok("sync-dir", other, mailbox)
    ok("put", other, "orders", '{"customer_id": "c2", "order_id": "o1", "by": "virginia"}')
    report = lines(ok("sync-dir", other, mailbox, "--json"))[0]
    assert report["exported"]
    ok("sync-dir", store, mailbox)
    assert lines(ok("get", store, "orders", "c2", "o1"))[0]["by"] == "virginia"
    vv_a = lines(ok("status", store, "--json"))[0]["vv"]
    vv_b = lines(ok("status", other, "--json"))[0]["vv"]
    assert vv_a == vv_b
    with engine.open(store) as a, engine.open(other) as b:
        assert a.digest() == b.digest()


def _start_serve(store: Path, *extra: object) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "regiondb", "serve", str(store), "--listen", "127.0.0.1:0",
         "--status-interval", "1", *map(str, extra)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "listening on" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc, int(line.rsplit(":", 1)[1].split()[0].rstrip(","))


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0
    return out


def test_serve_sync_status(store: Path, tmp_path: Path) -> None:
    key = tmp_path / "secret.key"
    key.write_text("s3cret\n")
    ok("put", store, "orders", '{"customer_id": "c1", "order_id": "o1"}')
    proc, port = _start_serve(store, "--secret-file", key)
    try:
        van = tmp_path / "van"
        ok("init", van, "--region", "popup-goa")
        ok("create-table", van, "orders", "--pk", "customer_id", "--sk", "order_id")
        ok("put", van, "orders", '{"customer_id": "c9", "order_id": "o9"}')
        out = ok("sync", van, f"127.0.0.1:{port}", "--secret-file", key)
        assert out.startswith("synced") and "ap-south-1" in out
        assert lines(ok("get", van, "orders", "c1", "o1"))
        report = lines(ok("sync", van, f"127.0.0.1:{port}", "--secret-file", key, "--json"))[0]
        assert report["applied"] == 0
        bad = tmp_path / "bad.key"
        bad.write_text("wrong")
        assert_error(run("sync", van, f"127.0.0.1:{port}", "--secret-file", bad), 2, "AuthError")
        assert_error(run("sync", van, f"127.0.0.1:{port}"), 2)
        deadline = time.monotonic() + 20
        while True:  # the server writes its status file every second
            status = lines(ok("status", store, "--json"))[0]
            if status["server"] and status["server"]["peers"] or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert status["server"]["pid"] == proc.pid
        assert status["server"]["address"][1] == port
        assert lines(ok("get", store, "orders", "c9", "o9"))
        assert "server     running" in ok("status", store)
        assert any(p["behind"] == 0 for p in status["peers"])
    finally:
        log = _stop(proc)
    assert "stopped" in log and "local writes/s" in log
    assert lines(ok("status", store, "--json"))[0]["server"] is None
    assert not (store / "serve-status.json").exists()


def test_serve_with_peers_replicates_live(tmp_path: Path) -> None:
    key = tmp_path / "k"
    key.write_text("shared")
    a, b = tmp_path / "a", tmp_path / "b"
    ok("init", a, "--region", "ap-south-1")
    ok("init", b, "--region", "us-east-1")
    ok("create-table", a, "t", "--pk", "id")
    pa, port_a = _start_serve(a, "--secret-file", key)
    try:
        pb, _ = _start_serve(b, "--secret-file", key, "--peer", f"127.0.0.1:{port_a}")
        try:
            ok("put", a, "t", '{"id": "x", "v": 1}')
            deadline = time.monotonic() + 20
            while not lines(ok("get", b, "t", "x")) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert lines(ok("get", b, "t", "x")) == [{"id": "x", "v": 1}]
        finally:
            _stop(pb)
    finally:
        _stop(pa)


def test_serve_refuses_open_listen_without_secret(store: Path) -> None:
    assert_error(run("serve", store, "--listen", "0.0.0.0:0"), 1, "--secret-file")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sync_unreachable_exit_2(store: Path) -> None:
    assert_error(run("sync", store, f"127.0.0.1:{_free_port()}"), 2)


def test_status_and_writes_when_the_clock_ran_far_ahead(store: Path) -> None:
    """A store whose HLC is far ahead of the wall clock (it was written with a clock an hour
    fast): `status` says local writes are refused, and a write fails with the skew named."""
    ahead = engine.ManualClock(int(time.time() * 1000) + 3_600_000)
    with engine.open(store, wall_clock=ahead) as s:
        s.table("inventory").put({"sku": "fast-clock"})
    info = lines(ok("status", store, "--json"))[0]
    assert info["clock_ahead_ms"] > 3_500_000 and "ClockSkewError" in info["writes_refused"]
    assert "WARNING" in ok("status", store) and "ahead of this machine's wall clock" in \
        ok("status", store)
    assert_error(run("put", store, "inventory", '{"sku": "x"}'), 2, "ms ahead of its wall clock")
    assert lines(ok("get", store, "inventory", "fast-clock"))  # reads still work
