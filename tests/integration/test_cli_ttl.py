"""``regiondb create-table --ttl-attribute`` and ``regiondb expire``, as subprocesses."""

from __future__ import annotations

from pathlib import Path

import pytest

import engine
from tests.integration.test_cli import assert_error, lines, ok, run

pytestmark = pytest.mark.integration


def test_expire_deletes_what_reads_already_hide(tmp_path: Path) -> None:
    d = tmp_path / "s"
    ok("init", d, "--region", "eu")
    ok("create-table", d, "sessions", "--partition-key", "id", "--ttl-attribute", "expires_at")
    ok("put", d, "sessions", '{"id": "old", "expires_at": 1}')          # 1970: long expired
    ok("put", d, "sessions", '{"id": "new", "expires_at": 99999999999}')
    ok("put", d, "sessions", '{"id": "text", "expires_at": "1"}')      # not a number: never
    assert ok("get", d, "sessions", "old") == ""
    assert sorted(it["id"] for it in lines(ok("scan", d, "sessions", "--json"))) == [
        "new", "text"]
    assert ok("expire", d).strip() == "expired 1 item"
    assert lines(ok("expire", d, "--json")) == [{"expired": 0}]
    with engine.open(d, create=False) as s:
        ttl_deletes = [c for c in s.changes() if c.kind == "delete"]
        assert [(c.key, c.ttl) for c in ttl_deletes] == [({"id": "old"}, True)]


def test_expire_usage_errors(tmp_path: Path) -> None:
    assert_error(run("expire", tmp_path / "missing"), 2, "does not exist")
    d = tmp_path / "s"
    ok("init", d, "--region", "eu")
    assert_error(run("expire", d, "--limit", "0"), 1)
