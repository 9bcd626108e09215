"""Frames, control messages and the HMAC handshake, over in-memory asyncio streams."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import struct
from typing import Any

import cbor2
import pytest

from engine.errors import AuthError, ForgottenNodeError, ProtocolError, ValidationError
from replication.protocol import (
    HANDSHAKE_MAX_FRAME,
    Hello,
    MsgType,
    client_handshake,
    decode_message,
    encode_frame,
    encode_message,
    error_from_message,
    normalize_secret,
    read_frame,
    server_handshake,
)


def reader_with(data: bytes, eof: bool = True) -> asyncio.StreamReader:
    r = asyncio.StreamReader()
    r.feed_data(data)
    if eof:
        r.feed_eof()
    return r


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def read(data: bytes, *, eof: bool = True, max_frame: int, timeout: float) -> tuple[int, bytes]:
    async def go() -> tuple[int, bytes]:
        return await read_frame(reader_with(data, eof), max_frame=max_frame, timeout=timeout)

    return run(go())


def test_frame_round_trip() -> None:
    frame = encode_frame(MsgType.PING, b"abc")
    assert frame == struct.pack(">IB", 4, MsgType.PING) + b"abc"
    assert read(frame, max_frame=100, timeout=1) == (MsgType.PING, b"abc")


def test_empty_body_frame() -> None:
    assert read(encode_frame(0x13), max_frame=10, timeout=1) == (0x13, b"")


@pytest.mark.parametrize("length", [0, 101, 2**32 - 1])
def test_frame_length_checked_before_reading_body(length: int) -> None:
    # No body follows: the limit is enforced on the prefix alone, before any allocation.
    with pytest.raises(ProtocolError):
        read(struct.pack(">IB", length, 1), eof=False, max_frame=100, timeout=1)


def test_truncated_frame_is_incomplete_read() -> None:
    with pytest.raises(asyncio.IncompleteReadError):
        read(encode_frame(1, b"x" * 10)[:-3], max_frame=100, timeout=1)


def test_slow_frame_times_out() -> None:
    async def go() -> None:
        r = asyncio.StreamReader()
        r.feed_data(b"\x00\x00")  # half a header, then nothing
        await read_frame(r, max_frame=100, timeout=0.05)

    with pytest.raises(asyncio.TimeoutError):
        run(go())


def test_message_round_trip_and_sets() -> None:
    frame = encode_message(MsgType.READY, {"vv": {1: 2}, "acks": {1: {1: 2}},
                                           "forgotten": {5, 3}})
    t, body = read(frame, max_frame=1000, timeout=1)
    msg = decode_message(t, body)
    assert msg == {"vv": {1: 2}, "acks": {1: {1: 2}}, "forgotten": frozenset({3, 5})}


@pytest.mark.parametrize("msg_type,body", [
    (MsgType.PING, b"\xff"),  # not CBOR
    (MsgType.PING, b"\xa0"),  # missing field
    (MsgType.PING, encode_message(MsgType.PING, {"t": 1, "x": 2})[5:]),  # unknown field
    (MsgType.PING, encode_message(MsgType.PING, {"t": -1})[5:]),  # wrong type
    (MsgType.STATE, encode_message(MsgType.STATE, {"vv": {"a": 1}})[5:]),
    (MsgType.ACK, encode_message(MsgType.ACK, {"vv": {}, "lag_us": list(range(300)),
                                               "refused": {}})[5:]),  # too many samples
    (0x55, b"\xa0"),  # unknown type
    (MsgType.SEGMENT, b"\xa0"),  # not a control message
])
def test_bad_messages(msg_type: int, body: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_message(msg_type, body)


def test_error_messages_map_to_exceptions() -> None:
    assert isinstance(error_from_message({"code": "auth", "message": "x"}), AuthError)
    assert isinstance(error_from_message({"code": "forgotten", "message": "x"}),
                      ForgottenNodeError)
    assert isinstance(error_from_message({"code": "whatever", "message": "x"}), ProtocolError)


def test_normalize_secret() -> None:
    assert normalize_secret("pw") == b"pw" and normalize_secret(None) is None
    for bad in ("", b"", 5):
        with pytest.raises(ValidationError):
            normalize_secret(bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- handshake


class Wire:
    """Two in-memory duplex pipes: what one side writes, the other reads."""

    class _Writer:
        def __init__(self, peer: asyncio.StreamReader) -> None:
            self.peer = peer
            self.sent = bytearray()

        def write(self, data: bytes) -> None:
            self.sent += data
            self.peer.feed_data(data)

        async def drain(self) -> None:
            await asyncio.sleep(0)

        def get_extra_info(self, name: str) -> Any:
            return ("127.0.0.1", 1) if name == "peername" else None

    def __init__(self) -> None:
        self.c_reader, self.s_reader = asyncio.StreamReader(), asyncio.StreamReader()
        self.c_writer = self._Writer(self.s_reader)
        self.s_writer = self._Writer(self.c_reader)


def hello(node: int, **kw: Any) -> Hello:
    return Hello(node, f"r{node}", {node: 3}, {node: {node: 3}}, frozenset(), **kw)


async def handshake(c_secret: bytes | None, s_secret: bytes | None,
                    c: Hello | None = None, s: Hello | None = None) -> tuple[Any, Any]:
    w = Wire()
    client = asyncio.ensure_future(client_handshake(
        w.c_reader, w.c_writer, c or hello(1), c_secret, timeout=1))  # type: ignore[arg-type]
    server = asyncio.ensure_future(server_handshake(
        w.s_reader, w.s_writer, s or hello(2), s_secret, timeout=1))  # type: ignore[arg-type]
    done, pending = await asyncio.wait([client, server], return_when=asyncio.FIRST_EXCEPTION,
                                       timeout=2)
    for t in pending:
        t.cancel()
    for t in done:
        if t.exception():
            raise t.exception()  # type: ignore[misc]
    assert w.c_writer.sent and b"s3cret" not in w.c_writer.sent + w.s_writer.sent
    return client.result()[0], server.result()[0]


@pytest.mark.parametrize("secret", [None, b"s3cret"])
def test_handshake_exchanges_identity_and_state(secret: bytes | None) -> None:
    at_client, at_server = run(handshake(secret, secret))
    assert (at_client.node, at_client.region, at_client.vv) == (2, "r2", {2: 3})
    assert (at_server.node, at_server.region, at_server.vv) == (1, "r1", {1: 3})
    assert at_server.acks == {1: {1: 3}} and at_server.mode == "live"


@pytest.mark.parametrize("c_secret,s_secret", [
    (b"wrong", b"s3cret"), (None, b"s3cret"), (b"s3cret", None),
])
def test_handshake_refuses_a_wrong_or_missing_secret(c_secret: bytes | None,
                                                     s_secret: bytes | None) -> None:
    with pytest.raises(AuthError):
        run(handshake(c_secret, s_secret))


def test_proofs_are_role_bound() -> None:
    # The server proof of one handshake is not a valid client proof of the same nonces
    # (reflection): the role label is part of the MAC input.
    key, nc, ns = b"k", b"c" * 32, b"s" * 32
    ids = struct.pack(">QQ", 1, 2)
    server = hmac.new(key, b"regiondb-net-v2 server" + nc + ns + ids, hashlib.sha256).digest()
    client = hmac.new(key, b"regiondb-net-v2 client" + nc + ns + ids, hashlib.sha256).digest()
    assert server != client


def test_handshake_refuses_own_node_id_and_forgotten_nodes() -> None:
    with pytest.raises(ProtocolError):
        run(handshake(None, None, hello(7), hello(7)))
    forgetful = Hello(2, "r2", {}, {}, frozenset({1}))
    with pytest.raises(ForgottenNodeError):
        run(handshake(None, None, hello(1), forgetful))


def test_handshake_refuses_version_mismatch() -> None:
    async def go() -> None:
        r = reader_with(encode_message(MsgType.HELLO, {
            "proto": 99, "node": 1, "region": "x", "nonce": b"n" * 32,
            "max_frame": 1 << 20, "mode": "live"}))
        await server_handshake(r, Wire._Writer(asyncio.StreamReader()), hello(2), None,  # type: ignore[arg-type]
                               timeout=1)

    with pytest.raises(ProtocolError, match="protocol 99"):
        run(go())


def test_handshake_frames_are_small() -> None:
    async def go() -> None:
        r = reader_with(struct.pack(">IB", HANDSHAKE_MAX_FRAME + 1, MsgType.HELLO), eof=False)
        await server_handshake(r, Wire._Writer(asyncio.StreamReader()), hello(2), None,  # type: ignore[arg-type]
                               timeout=1)

    with pytest.raises(ProtocolError, match="over the limit"):
        run(go())


def test_v1_client_is_refused_with_a_clear_message() -> None:
    async def go() -> None:
        r = reader_with(encode_message(MsgType.HELLO, {
            "proto": 1, "node": 1, "region": "x", "nonce": b"n" * 32,
            "max_frame": 1 << 20, "mode": "live"}))
        await server_handshake(r, Wire._Writer(asyncio.StreamReader()), hello(2), None,  # type: ignore[arg-type]
                               timeout=1)

    with pytest.raises(ProtocolError, match="protocol 1, an older regiondb .* upgrade the client"):
        run(go())


def test_client_hears_why_an_old_server_refuses() -> None:
    # What a v1 server answers to a v2 HELLO; the client adds what it means.
    async def go() -> None:
        refusal = encode_message(MsgType.ERROR, {
            "code": "protocol", "message": "client speaks protocol 2, this build 1"})
        await client_handshake(reader_with(refusal), Wire._Writer(asyncio.StreamReader()),  # type: ignore[arg-type]
                               hello(1), None, timeout=1)

    with pytest.raises(ProtocolError, match="another protocol version"):
        run(go())


def test_tampered_hello_fails_the_first_tag() -> None:
    # A man in the middle rewrites the client's max_frame in HELLO: proofs still verify (they
    # cover nonces and ids), but the keys hash the transcript, so AUTH's tag does not.
    async def go() -> None:
        w = Wire()
        orig = w.c_writer.write

        def rewrite(data: bytes) -> None:
            if data[4] == MsgType.HELLO:
                fields = cbor2.loads(data[5:])
                fields["max_frame"] = 1 << 30
                data = encode_message(MsgType.HELLO, fields)
            orig(data)

        w.c_writer.write = rewrite  # type: ignore[method-assign]
        client = asyncio.ensure_future(client_handshake(
            w.c_reader, w.c_writer, hello(1), b"k", timeout=1))  # type: ignore[arg-type]
        server = asyncio.ensure_future(server_handshake(
            w.s_reader, w.s_writer, hello(2), b"k", timeout=1))  # type: ignore[arg-type]
        with pytest.raises(ProtocolError, match="failed authentication"):
            await server
        client.cancel()
        with contextlib.suppress(BaseException):
            await client

    run(go())
