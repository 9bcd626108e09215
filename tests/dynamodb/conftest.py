"""Fixtures for the DynamoDB endpoint tests: a real endpoint on 127.0.0.1 port 0 over a real
store, and boto3 clients pointed at it (no mocks: botocore signs, sends and parses).

Every native piece the endpoint translates onto is in this build: :func:`needs` fails the
test (never skips it) if one goes missing, so a regression cannot hide as a skip.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

import engine
import regiondb.dynamodb

NATIVE = {
    "expr": hasattr(engine.Table, "query_page"),
    "index": hasattr(engine, "Index"),
    "ttl": hasattr(engine.Store, "set_ttl"),
    "expire": hasattr(engine.Store, "expire"),
    "delete_table": hasattr(engine.Store, "delete_table"),
    "transactions": hasattr(engine.Batch, "check"),
}


def needs(*features: str) -> pytest.MarkDecorator:
    """Mark a test as needing native features; it fails if one is missing (see :data:`NATIVE`)."""
    missing = [f for f in features if not NATIVE[f]]
    assert not missing, f"engine lacks {', '.join(missing)}"
    return pytest.mark.needs(*features)


_names = itertools.count()
_CONFIG = Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30)


def client_for(url: str, service: str = "dynamodb", *, key: str = "AKIDTEST",
               secret: str = "secret", region: str = "us-east-1") -> Any:
    """A boto3 client for ``url`` that does not retry (errors surface at once)."""
    return boto3.client(service, endpoint_url=url, region_name=region,  # type: ignore[call-overload]
                        aws_access_key_id=key, aws_secret_access_key=secret, config=_CONFIG)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[regiondb.dynamodb.DynamoDBServer]:
    """One endpoint per test module, over a non-durable store (tests need no fsyncs)."""
    path: Path = tmp_path_factory.mktemp("ddb") / "store"
    with engine.open(path, region="us-east-1", durable=False) as store, \
            regiondb.dynamodb.serve(store) as srv:
        yield srv


@pytest.fixture(scope="module")
def ddb(server: regiondb.dynamodb.DynamoDBServer) -> Any:
    """A boto3 DynamoDB client for the module's endpoint."""
    return client_for(server.url)


@pytest.fixture(scope="module")
def resource(server: regiondb.dynamodb.DynamoDBServer) -> Any:
    """A boto3 DynamoDB resource (``Table``, ``batch_writer``) for the module's endpoint."""
    return boto3.resource("dynamodb", endpoint_url=server.url, region_name="us-east-1",
                          aws_access_key_id="AKIDTEST", aws_secret_access_key="secret",
                          config=_CONFIG)


@pytest.fixture
def make_table(ddb: Any) -> Callable[..., str]:
    """``make_table(pk="pk", sk=None, pk_type="S", sk_type="S", **extra) -> name``: a fresh
    table through CreateTable."""

    def make(pk: str = "pk", sk: str | None = None, pk_type: str = "S", sk_type: str = "S",
             **extra: Any) -> str:
        name = f"t{next(_names):04d}"
        keys = [{"AttributeName": pk, "KeyType": "HASH"}]
        defs = [{"AttributeName": pk, "AttributeType": pk_type}]
        if sk:
            keys.append({"AttributeName": sk, "KeyType": "RANGE"})
            defs.append({"AttributeName": sk, "AttributeType": sk_type})
        defs += extra.pop("extra_defs", [])
        ddb.create_table(TableName=name, KeySchema=keys, AttributeDefinitions=defs,
                         BillingMode="PAY_PER_REQUEST", **extra)
        return name

    return make


def error_of(excinfo: pytest.ExceptionInfo[Any]) -> tuple[str, str]:
    """``(code, message)`` of a botocore ClientError."""
    err = excinfo.value.response["Error"]
    return err["Code"], err["Message"]
