"""The HTTP side of the endpoint: an ASGI application served by uvicorn in a thread of its own.

``POST /`` with ``X-Amz-Target: DynamoDB_20120810.<Operation>`` (or
``DynamoDBStreams_20120810.<Operation>``) and a JSON body is one call of
:meth:`regiondb.dynamodb.endpoint.Endpoint.call`, run in a thread pool so that store calls
(an fsync, a long query) never block the event loop and concurrent clients are served at
once. ``GET /`` answers 200 (a health check, as DynamoDB's). The HTTP layer owns what is about
bytes: a body without ``Content-Length`` (chunked) is refused with 411, one over
:data:`MAX_BODY` with 413, both before it is buffered; a body that is not a JSON object is a
``SerializationException``; SigV4 is checked here when credentials are configured.
Responses carry ``x-amzn-RequestId`` and the ``x-amz-crc32`` botocore verifies.

Any exception that is not a DynamoDB or engine error is a bug: it is logged with its
traceback and answered with a 500 ``InternalServerError``; the server carries on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import uuid
import zlib
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import uvicorn

import engine

from . import sigv4
from .endpoint import Endpoint
from .errors import DynamoDBError, from_engine, serialization
from .values import BODY_SIZE

__all__ = ["MAX_BODY", "DynamoDBServer", "serve"]

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024 * 1024 + 64 * 1024  # DynamoDB's 16 MB request, plus JSON overhead
_CONTENT_TYPE = b"application/x-amz-json-1.0"
_TARGETS = ("DynamoDB_20120810.", "DynamoDBStreams_20120810.")
_EXPIRE_EVERY = 5.0

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class _App:
    """The ASGI application: one :class:`Endpoint`, one thread pool for store calls."""

    def __init__(self, ep: Endpoint, pool: ThreadPoolExecutor,
                 credentials: Mapping[str, str] | None) -> None:
        self.ep = ep
        self.pool = pool
        self.credentials = credentials
        self.health = f"healthy: dynamodb.{ep.region}.amazonaws.com ".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        rid = uuid.uuid4().hex.upper()
        try:
            status, body = await self._handle(scope, receive, rid)
        except DynamoDBError as exc:
            status, body = exc.status, json.dumps(exc.body()).encode()
        except Exception:  # a bug: log it, answer 500, keep serving
            log.exception("internal error serving request %s", rid)
            err = DynamoDBError("InternalServerError", "Internal server error", status=500)
            status, body = 500, json.dumps(err.body()).encode()
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", _CONTENT_TYPE),
            (b"content-length", str(len(body)).encode()),
            (b"x-amzn-requestid", rid.encode()),
            (b"x-amz-crc32", str(zlib.crc32(body)).encode()),
        ]})
        await send({"type": "http.response.body", "body": body})

    async def _handle(self, scope: Scope, receive: Receive, rid: str) -> tuple[int, bytes]:
        method = scope["method"]
        headers: dict[str, str] = {}
        for k, v in scope["headers"]:
            name = k.decode("latin-1").lower()
            value = v.decode("latin-1")
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        if method in ("GET", "HEAD"):
            return 200, self.health
        if method != "POST":
            raise DynamoDBError("UnknownOperationException", "", status=400)
        body = await _read_body(headers, receive)
        target = headers.get("x-amz-target", "")
        prefix = next((p for p in _TARGETS if target.startswith(p)), None)
        if prefix is None:
            raise DynamoDBError("UnknownOperationException", "")
        if self.credentials is not None:
            raw_path = scope.get("raw_path") or scope["path"].encode()
            sigv4.verify(self.credentials, method, raw_path.decode("latin-1"),
                         scope.get("query_string", b"").decode("latin-1"), headers, body)
        op = target[len(prefix):]
        handler = self.ep.handler(op, streams=prefix.startswith("DynamoDBStreams"))
        if handler is None:
            raise DynamoDBError("UnknownOperationException", "")
        req = _parse(body)
        req[BODY_SIZE] = len(body)
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self.pool, _run, handler, req)
        return 200, result


def _run(handler: Callable[[dict[str, Any]], dict[str, Any]], req: dict[str, Any]) -> bytes:
    """Run one operation in a pool thread; engine errors become DynamoDB's."""
    try:
        out = handler(req)
    except engine.Error as exc:
        name = req.get("TableName")
        raise from_engine(exc, name if isinstance(name, str) else None) from exc
    return json.dumps(out, separators=(",", ":")).encode()


async def _read_body(headers: Mapping[str, str], receive: Receive) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower() \
            or "content-length" not in headers:
        raise DynamoDBError("LengthRequiredException",
                            "A Content-Length header is required; chunked bodies are not "
                            "accepted", status=411)
    try:
        length = int(headers["content-length"])
    except ValueError:
        raise serialization("Content-Length is not a number") from None
    if length > MAX_BODY:
        raise DynamoDBError("RequestEntityTooLarge",
                            f"Request size {length} exceeded {MAX_BODY} bytes", status=413)
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise serialization("the client went away before the body was complete")
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise DynamoDBError("RequestEntityTooLarge", f"Request exceeded {MAX_BODY} bytes",
                                status=413)
        chunks.append(chunk)
        more = msg.get("more_body", False)
    return b"".join(chunks)


def _parse(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    try:
        req = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise serialization("Malformed JSON in request body") from None
    if not isinstance(req, dict):
        raise serialization("Start of list found where not expected" if isinstance(req, list)
                            else "Unexpected value in request body: expected a JSON object")
    return req


class DynamoDBServer:
    """A running endpoint: ``.address`` ``(host, port)``, ``.url``, ``.close()``; a context
    manager. Made by :func:`serve`."""

    def __init__(self, store: engine.Store, host: str, port: int,
                 credentials: Mapping[str, str] | None, workers: int) -> None:
        self.store = store
        self.endpoint = Endpoint(store)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dynamodb")
        app = _App(self.endpoint, self._pool, credentials)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
        # and without it every response waits ~40 ms for a delayed ACK (Nagle)
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(1024)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self.address: tuple[str, int] = sock.getsockname()[:2]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                timeout_keep_alive=30, server_header=False)
        self._server = uvicorn.Server(config)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="dynamodb-http", daemon=True)
        self._expirer = threading.Thread(target=self._expire_loop, name="dynamodb-ttl",
                                         daemon=True)
        self._thread.start()
        self._expirer.start()
        for _ in range(1000):
            if self._server.started or not self._thread.is_alive():
                break
            self._stop.wait(0.01)
        if not self._server.started:
            self.close()
            raise OSError(f"the DynamoDB endpoint did not start on {host}:{port}")
        log.info("DynamoDB endpoint on %s for %s", self.url, store)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def _serve(self) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[self._sock]))
        except Exception:
            log.exception("the DynamoDB endpoint's HTTP server failed")

    def _expire_loop(self) -> None:
        """Delete expired TTL items every few seconds (``store.expire``), as DynamoDB does."""
        expire = getattr(self.store, "expire", None)
        if expire is None:
            return
        while not self._stop.wait(_EXPIRE_EVERY):
            try:
                expire()
            except engine.StoreClosed:
                return
            except Exception:
                log.exception("TTL expiry failed; retrying in %s s", _EXPIRE_EVERY)

    def close(self) -> None:
        """Stop serving (in-flight requests finish) and release the port. Idempotent."""
        self._stop.set()
        self._server.should_exit = True
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(10)
        self._pool.shutdown(wait=True)
        self._sock.close()

    def __enter__(self) -> DynamoDBServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<DynamoDBServer {self.url} store={self.store!r}>"


def serve(store: engine.Store, host: str = "127.0.0.1", port: int = 0,
          credentials: Mapping[str, str] | str | None = None, *,
          workers: int = 8) -> DynamoDBServer:
    """Serve DynamoDB's API over ``store`` on ``host:port`` (0 picks a free port).

    :param credentials: access key id -> secret (or a credentials file path): SigV4 signatures
        are then verified; ``None`` accepts any signature, as DynamoDB Local does.
    :param workers: threads running store calls.
    :returns: a running :class:`DynamoDBServer` (returns once listening).
    """
    if isinstance(credentials, str):
        credentials = sigv4.load_credentials(credentials)
    return DynamoDBServer(store, host, port, credentials, workers)
