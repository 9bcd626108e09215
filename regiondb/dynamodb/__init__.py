"""The DynamoDB-compatible endpoint: boto3 (or any AWS SDK) runs on regiondb unchanged.

Each region runs one endpoint over its local store; the stores replicate as ever. The
endpoint is a thin translation of DynamoDB's JSON protocol onto the native API: expressions,
pages, transactions, indexes, counters and TTL are the engine's, and this package only maps
parameters, typed values and errors.

>>> import boto3, regiondb, regiondb.dynamodb, tempfile          # doctest: +SKIP
>>> store = regiondb.open(tempfile.mkdtemp(), region="us-east-1")  # doctest: +SKIP
>>> with regiondb.dynamodb.serve(store) as server:                 # doctest: +SKIP
...     ddb = boto3.client("dynamodb", endpoint_url=server.url, region_name="us-east-1",
...                        aws_access_key_id="x", aws_secret_access_key="x")
...     ddb.list_tables()["TableNames"]
[]

Layout: :mod:`.server` (HTTP, ASGI on uvicorn), :mod:`.endpoint` (the operations table),
:mod:`.tables` (control plane), :mod:`.items`, :mod:`.reads`, :mod:`.batches` (data plane),
:mod:`.streams` (DynamoDB Streams), :mod:`.exprs` and :mod:`.legacy` (expressions and the
legacy parameters), :mod:`.values` (typed values), :mod:`.keys`, :mod:`.meta`,
:mod:`.params`, :mod:`.errors`, :mod:`.sigv4`. Needs the ``dynamodb`` extra
(``pip install 'regiondb[dynamodb]'``).
"""

from __future__ import annotations

try:
    from .server import DynamoDBServer, serve
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"the DynamoDB endpoint needs the 'dynamodb' extra (pip install 'regiondb[dynamodb]'): "
        f"{exc}") from exc
from .sigv4 import load_credentials

__all__ = ["DynamoDBServer", "load_credentials", "serve"]
