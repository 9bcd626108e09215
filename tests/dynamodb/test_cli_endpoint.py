"""``regiondb dynamodb DIR --listen HOST:PORT``: a real process, creating its store, serving
boto3, verifying SigV4 with ``--credentials``, stopping cleanly on SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from .conftest import client_for, error_of

pytestmark = pytest.mark.integration


def _start(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "regiondb", "dynamodb", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    m = re.search(r"DynamoDB endpoint for \S+ on (http://\S+)", line)
    if m is None:
        proc.kill()
        raise AssertionError((line, proc.stderr.read() if proc.stderr else ""))
    return proc, m.group(1)


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0


def test_dynamodb_command_creates_the_store_and_serves(tmp_path: Path) -> None:
    store = tmp_path / "virginia"
    keys = tmp_path / "keys.txt"
    keys.write_text("AKIDCLI cli-secret\n")
    proc, url = _start(str(store), "--listen", "127.0.0.1:0", "--region", "us-east-1",
                       "--credentials", str(keys))
    try:
        ddb = client_for(url, key="AKIDCLI", secret="cli-secret")
        ddb.create_table(TableName="orders", BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}])
        ddb.put_item(TableName="orders", Item={"id": {"S": "o1"}})
        with pytest.raises(ClientError) as e:
            client_for(url, key="AKIDCLI", secret="wrong").list_tables()
        assert error_of(e)[0] == "InvalidSignatureException"
    finally:
        _stop(proc)
    import engine

    with engine.open(store, create=False) as s:
        assert s.region == "us-east-1" and s.table("orders").get("o1") == {"id": "o1"}


def test_dynamodb_command_needs_a_region_for_a_new_store(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "regiondb", "dynamodb", str(tmp_path / "new"),
                        "--listen", "127.0.0.1:0"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "give --region to create it" in p.stderr
    bad = tmp_path / "bad.txt"
    bad.write_text("no-secret-here\n")
    p = subprocess.run([sys.executable, "-m", "regiondb", "dynamodb", str(tmp_path / "new"),
                        "--listen", "127.0.0.1:0", "--region", "r", "--credentials", str(bad)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "expected 'ACCESS_KEY_ID SECRET'" in p.stderr
