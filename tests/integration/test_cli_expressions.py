"""The CLI speaks DynamoDB's expressions and pages (real subprocesses on a real store)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_cli import assert_error, lines, ok, run

pytestmark = pytest.mark.integration


@pytest.fixture
def store(tmp_path: Path) -> Path:
    d = tmp_path / "s"
    ok("init", d, "--region", "r")
    ok("create-table", d, "orders", "--pk", "c", "--sk", "o")
    items = "".join(f'{{"c": "c1", "o": "o{i}", "total": {i}}}\n' for i in range(1, 6))
    ok("put", d, "orders", "-", input=items)
    return d


def test_conditions_and_update_expressions(store: Path) -> None:
    assert_error(run("put", store, "orders", '{"c": "c1", "o": "o1"}', "--condition",
                     "attribute_not_exists(o)"), 2, "ConditionFailed")
    out = ok("update", store, "orders", "c1", "o1", "--expression",
             "SET total = total + :n, #s = :s", "--names", '{"#s": "status"}',
             "--values", '{":n": 2, ":s": "PAID"}', "--condition", "total = :one",
             "--values", '{":n": 2, ":s": "PAID", ":one": 1}')
    assert lines(out) == [{"c": "c1", "o": "o1", "total": 3, "status": "PAID"}]
    assert lines(ok("get", store, "orders", "c1", "o1", "--projection", "#s",
                    "--names", '{"#s": "status"}')) == [{"status": "PAID"}]
    assert_error(run("update", store, "orders", "c1", "o1", "--expression", "SET c = :v",
                     "--values", '{":v": 1}'), 2, "ValidationError", "part of the key")
    assert_error(run("update", store, "orders", "c1", "o1", "--expression", "SET a = :v",
                     "--values", '{":v": 1, ":w": 2}'), 2, "unused", ":w")
    assert_error(run("delete", store, "orders", "c1", "o1", "--condition", "total = :x",
                     "--if-exists"), 1, "--condition cannot be combined")
    ok("delete", store, "orders", "c1", "o1", "--condition", "total > :x", "--values",
       '{":x": 2}')
    assert ok("get", store, "orders", "c1", "o1") == ""


def test_query_and_scan_pages(store: Path) -> None:
    page = lines(ok("query", store, "orders", "c1", "--key", "o BETWEEN :a AND :b",
                    "--filter", "total > :t", "--projection", "o", "--limit", "2", "--page",
                    "--values", '{":a": "o2", ":b": "o5", ":t": 2}'))[0]
    assert page == {"items": [{"o": "o3"}], "last_key": {"c": "c1", "o": "o3"}, "scanned": 2}
    rest = lines(ok("query", store, "orders", "c1", "--start", '{"c": "c1", "o": "o3"}'))[0]
    assert [i["o"] for i in rest["items"]] == ["o4", "o5"] and rest["last_key"] is None
    assert [i["o"] for i in lines(ok("scan", store, "orders", "--filter", "total >= :t",
                                     "--values", '{":t": 4}'))] == ["o4", "o5"]
    page = lines(ok("scan", store, "orders", "--page", "--limit", "3"))[0]
    assert page["scanned"] == 3 and page["last_key"] == {"c": "c1", "o": "o3"}
    assert_error(run("query", store, "orders", "c1", "--key", "o = :a", "--gt", "x",
                     "--values", '{":a": "o1"}'), 1, "--key cannot be combined")
    assert_error(run("scan", store, "orders", "--filter", "total >"), 2, "Syntax error")
