"""The HTTP layer: health check, targets, malformed, chunked and oversize bodies, bugs as 500s,
concurrent clients, SigV4 verification. Raw requests go through http.client to a real server."""

from __future__ import annotations

import http.client
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

import engine
import regiondb.dynamodb
from regiondb.dynamodb import endpoint as endpoint_mod
from regiondb.dynamodb.server import MAX_BODY

from .conftest import client_for, error_of


def raw(server: Any, body: bytes | None, headers: dict[str, str] | None = None,
        method: str = "POST") -> tuple[int, dict[str, Any] | bytes]:
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request(method, "/", body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(data)
    except ValueError:
        return resp.status, data


def target(op: str) -> dict[str, str]:
    return {"X-Amz-Target": f"DynamoDB_20120810.{op}",
            "Content-Type": "application/x-amz-json-1.0"}


def test_get_root_is_a_health_check(server: Any) -> None:
    status, body = raw(server, None, method="GET")
    assert status == 200
    assert isinstance(body, bytes) and body.startswith(b"healthy: dynamodb.us-east-1")


def test_url_and_address(server: Any) -> None:
    host, port = server.address
    assert host == "127.0.0.1" and port > 0
    assert server.url == f"http://127.0.0.1:{port}"


def test_unknown_operation(server: Any) -> None:
    status, body = raw(server, b"{}", target("FlyToTheMoon"))
    assert status == 400
    assert isinstance(body, dict) and body["__type"].endswith("#UnknownOperationException")


def test_missing_target_is_unknown_operation(server: Any) -> None:
    status, body = raw(server, b"{}", {"Content-Type": "application/x-amz-json-1.0"})
    assert status == 400 and isinstance(body, dict)
    assert body["__type"] == "com.amazon.coral.service#UnknownOperationException"


@pytest.mark.parametrize("payload", [b"{not json", b"[1, 2]", b"\xff\xfe", b"42"])
def test_malformed_body_is_serialization_exception(server: Any, payload: bytes) -> None:
    status, body = raw(server, payload, target("ListTables"))
    assert status == 400 and isinstance(body, dict)
    assert body["__type"] == "com.amazon.coral.service#SerializationException"
    assert body["message"]


def test_wrong_parameter_type_is_serialization_exception(server: Any) -> None:
    status, body = raw(server, json.dumps({"TableName": 5}).encode(), target("DescribeTable"))
    assert status == 400 and isinstance(body, dict)
    assert body["__type"].endswith("#SerializationException")


def test_chunked_body_is_refused(server: Any) -> None:
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.putrequest("POST", "/")
        for k, v in target("ListTables").items():
            conn.putheader(k, v)
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        conn.send(b"2\r\n{}\r\n0\r\n\r\n")
        resp = conn.getresponse()
        body = json.loads(resp.read())
    finally:
        conn.close()
    assert resp.status == 411
    assert "Content-Length" in body["message"]


def test_oversize_body_is_refused_before_it_is_read(server: Any) -> None:
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.putrequest("POST", "/")
        for k, v in target("ListTables").items():
            conn.putheader(k, v)
        conn.putheader("Content-Length", str(MAX_BODY + 1))
        conn.endheaders()
        resp = conn.getresponse()
        body = json.loads(resp.read())
    finally:
        conn.close()
    assert resp.status == 413
    assert str(MAX_BODY) in body["message"]


def test_a_bug_is_a_500_and_the_server_lives_on(server: Any, ddb: Any,
                                               monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    def broken(ep: Any, req: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("deliberate bug for the test")

    monkeypatch.setitem(endpoint_mod.OPERATIONS, "GetItem", broken)
    with caplog.at_level("ERROR", logger="regiondb.dynamodb.server"):
        status, body = raw(server, b"{}", target("GetItem"))
    assert status == 500 and isinstance(body, dict)
    assert body["__type"].endswith("#InternalServerError")
    assert "deliberate bug for the test" in caplog.text  # the traceback is logged
    assert "TableNames" in ddb.list_tables()  # still serving


def test_concurrent_clients(server: Any, make_table: Any) -> None:
    name = make_table()
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            c = client_for(server.url)
            for i in range(20):
                c.put_item(TableName=name, Item={"pk": {"S": f"w{n}-{i}"}})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    c = client_for(server.url)
    got = c.batch_get_item(RequestItems={name: {"Keys": [{"pk": {"S": f"w{n}-19"}}
                                                        for n in range(6)]}})
    assert len(got["Responses"][name]) == 6


@pytest.fixture
def signed_server(tmp_path: Path) -> Any:
    creds = tmp_path / "keys.txt"
    creds.write_text("# access keys\nAKIDGOOD  s3cr3t/with+chars\n")
    with engine.open(tmp_path / "s", region="eu-west-1", durable=False) as store, \
            regiondb.dynamodb.serve(store, credentials=str(creds)) as srv:
        yield srv


def test_sigv4_good_signature_passes(signed_server: Any) -> None:
    c = client_for(signed_server.url, key="AKIDGOOD", secret="s3cr3t/with+chars",
                   region="eu-west-1")
    assert c.list_tables()["TableNames"] == []


def test_sigv4_wrong_secret_is_refused(signed_server: Any) -> None:
    c = client_for(signed_server.url, key="AKIDGOOD", secret="wrong")
    with pytest.raises(ClientError) as e:
        c.list_tables()
    code, msg = error_of(e)
    assert code == "InvalidSignatureException"
    assert msg.startswith("The request signature we calculated does not match")


def test_sigv4_unknown_key_is_refused(signed_server: Any) -> None:
    c = client_for(signed_server.url, key="AKIDNOPE", secret="s3cr3t/with+chars")
    with pytest.raises(ClientError) as e:
        c.list_tables()
    assert error_of(e) == ("UnrecognizedClientException",
                           "The security token included in the request is invalid.")


def test_sigv4_unsigned_request_is_refused(signed_server: Any) -> None:
    status, body = raw(signed_server, b"{}", target("ListTables"))
    assert status == 400 and isinstance(body, dict)
    assert body["__type"].endswith("#MissingAuthenticationTokenException")


def test_sigv4_tampered_body_is_refused(signed_server: Any) -> None:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest(method="POST", url=signed_server.url + "/", data=b"{}",
                     headers=target("ListTables"))
    SigV4Auth(Credentials("AKIDGOOD", "s3cr3t/with+chars"), "dynamodb", "eu-west-1").add_auth(req)
    headers = dict(req.headers.items())
    status, _ = raw(signed_server, b"{}", headers)
    assert status == 200
    status, body = raw(signed_server, b'{"Limit": 1}', headers)
    assert status == 400 and isinstance(body, dict)
    assert body["__type"].endswith("#InvalidSignatureException")
