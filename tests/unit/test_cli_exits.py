"""The CLI's exit codes for bugs (70, traceback logged) and ``status``'s trust in a serve file."""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import engine
import regiondb.cli.parser as parser_mod
from regiondb.cli import EXIT_INTERNAL, main
from regiondb.cli.live import process_started
from regiondb.cli.output import SERVE_STATUS


def test_an_unexpected_exception_exits_70_with_its_traceback(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    def buggy(args: argparse.Namespace) -> int:
        raise ZeroDivisionError("a bug in the command")

    monkeypatch.setattr(parser_mod, "cmd_init", buggy)
    with caplog.at_level(logging.ERROR):
        code = main(["init", str(tmp_path / "s"), "--region", "r"])
    err = capsys.readouterr().err
    assert code == EXIT_INTERNAL == 70
    logged = [r for r in caplog.records if r.exc_info]
    assert logged and "Traceback" in caplog.text and "ZeroDivisionError" in caplog.text
    assert "internal error: ZeroDivisionError: a bug in the command" in err.splitlines()[-1]


def test_a_user_error_still_exits_2_without_a_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["get", str(tmp_path / "missing"), "t", "k"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1


def test_process_started_tells_processes_apart() -> None:
    if process_started(os.getpid()) is None:
        pytest.skip("no /proc here")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        started = process_started(child.pid)
        assert started is not None and started >= process_started(os.getpid())  # type: ignore[operator]
    finally:
        child.kill()
        child.wait()
    assert process_started(child.pid) is None


def _status_server(store_dir: Path, capsys: pytest.CaptureFixture[str]) -> object:
    assert main(["status", str(store_dir), "--json"]) == 0
    return json.loads(capsys.readouterr().out.splitlines()[-1])["server"]


def test_status_does_not_trust_a_reused_pid(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    if process_started(os.getpid()) is None:
        pytest.skip("no /proc here")
    store_dir = tmp_path / "s"
    engine.open(store_dir, region="r").close()
    live = {"pid": os.getpid(), "pid_started": process_started(os.getpid()),
            "address": ["127.0.0.1", 1], "peers_configured": [], "updated": time.time(),
            "peers": [], "vv": {}}
    (store_dir / SERVE_STATUS).write_text(json.dumps(live))
    assert _status_server(store_dir, capsys) is not None  # the writer is alive: trusted
    # The same pid, but the process holding it now started at another time: a dead server's
    # file whose pid was handed to someone else.
    live["pid_started"] = int(live["pid_started"]) - 1  # type: ignore[call-overload]
    (store_dir / SERVE_STATUS).write_text(json.dumps(live))
    assert _status_server(store_dir, capsys) is None
