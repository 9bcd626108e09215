"""The socket protocol's bytes: frames, messages and the authenticated handshake.

``docs/protocol.md`` is the specification; this module is its reference implementation. It
owns no sockets of its own: it reads from an :class:`asyncio.StreamReader` and writes to an
:class:`asyncio.StreamWriter`, so :mod:`replication.net` decides about servers, clients and
threads. Layout of a frame (big-endian)::

    length u32 (= 1 + len(body)) | type u8 | body

Invariants owned here:

- A frame's length is checked against the receiver's limit *before* its body is read, so a
  hostile length prefix never allocates; before authentication the limit is
  :data:`HANDSHAKE_MAX_FRAME`. Every frame (header and body) must arrive within a deadline, so
  a slow-loris peer is cut off.
- Control message bodies are CBOR maps decoded with :func:`engine.bounded.loads_bounded` and
  checked field by field; anything else is a :class:`~engine.errors.ProtocolError`.
- Authentication is HMAC-SHA256 challenge–response in both directions over fresh 32-byte
  nonces from :mod:`secrets`; proofs are compared with :func:`hmac.compare_digest`; the secret
  never travels. A side that has a secret refuses a peer that cannot prove it knows it
  (:class:`~engine.errors.AuthError`), and a client with a secret refuses a server without one.
- A peer that breaks the protocol gets one ``ERROR`` frame (best effort) and the connection is
  closed; nothing it sent before authentication reaches the store.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import struct
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import cbor2

from engine.bounded import loads_bounded
from engine.checks import check_vv, is_u64
from engine.errors import (
    AuthError,
    ClockSkewError,
    Error,
    ForgottenNodeError,
    ProtocolError,
    SegmentError,
    ValidationError,
)

from .channel import TAG_BYTES, Channel, derive_keys, transcript_hash

__all__ = [
    "Channel",
    "DEFAULT_MAX_FRAME",
    "HANDSHAKE_MAX_FRAME",
    "PROTOCOL_VERSION",
    "Hello",
    "MsgType",
    "PeerInfo",
    "client_handshake",
    "decode_message",
    "encode_body",
    "encode_frame",
    "encode_message",
    "error_from_message",
    "normalize_secret",
    "read_frame",
    "send_error",
    "server_handshake",
]

PROTOCOL_VERSION = 2
#: Largest frame accepted after authentication (type byte + body): a 16 MiB segment and change.
DEFAULT_MAX_FRAME = 16 * 1024 * 1024 + 1024
#: Largest frame accepted before authentication: handshake messages are small.
HANDSHAKE_MAX_FRAME = 64 * 1024
NONCE_BYTES = 32
_HEADER = struct.Struct(">IB")
_CONTROL_MAX_DEPTH = 4


class MsgType:
    """Frame type codes (the byte after the length prefix)."""

    HELLO = 0x01
    WELCOME = 0x02
    AUTH = 0x03
    READY = 0x04
    SEGMENT = 0x10
    ACK = 0x11
    STATE = 0x12
    DONE = 0x13
    PING = 0x14
    PONG = 0x15
    ERROR = 0x7F

    NAMES = {
        0x01: "HELLO", 0x02: "WELCOME", 0x03: "AUTH", 0x04: "READY", 0x10: "SEGMENT",
        0x11: "ACK", 0x12: "STATE", 0x13: "DONE", 0x14: "PING", 0x15: "PONG", 0x7F: "ERROR",
    }  # fmt: skip


def type_name(t: int) -> str:
    return MsgType.NAMES.get(t, f"0x{t:02x}")


# ------------------------------------------------------------------------------- frames


def encode_frame(msg_type: int, body: bytes = b"") -> bytes:
    """One frame: length prefix, type byte, body."""
    return _HEADER.pack(len(body) + 1, msg_type) + body


async def read_frame(
    reader: asyncio.StreamReader, *, max_frame: int, timeout: float,
    min_rate: float = 256 * 1024,
) -> tuple[int, bytes]:
    """Read one frame within ``timeout`` seconds (plus time for the body at ``min_rate`` B/s).

    :returns: ``(type, body)``.
    :raises ProtocolError: for a length of 0 or over ``max_frame``.
    :raises TimeoutError: when the frame does not arrive in time (slow loris, dead peer).
    :raises asyncio.IncompleteReadError: when the peer closes mid-frame.
    """
    # asyncio.timeout, not wait_for: no task per read (this runs once per frame).
    async with asyncio.timeout(timeout):
        head = await reader.readexactly(_HEADER.size)
    length, msg_type = _HEADER.unpack(head)
    if length == 0:
        raise ProtocolError("frame with a zero length prefix")
    if length > max_frame:
        raise ProtocolError(
            f"{type_name(msg_type)} frame of {length} bytes is over the limit of {max_frame}"
        )
    body = b""
    if length > 1:
        async with asyncio.timeout(timeout + (length - 1) / min_rate):
            body = await reader.readexactly(length - 1)
    return msg_type, body


# ------------------------------------------------------------------------------- messages


def _u64(v: object, what: str) -> int:
    if not is_u64(v):
        raise ProtocolError(f"{what} must be a 64-bit unsigned integer")
    return v


def _vv(v: object, what: str) -> dict[int, int]:
    try:
        return check_vv(v, what)
    except ValidationError as exc:
        raise ProtocolError(str(exc)) from None


def _acks(v: object) -> dict[int, dict[int, int]]:
    if not isinstance(v, dict):
        raise ProtocolError("acks must be a map of node -> version vector")
    return {_u64(k, "acks key"): _vv(s, f"acks[{k}]") for k, s in v.items()}


def _nodes(v: object, what: str) -> frozenset[int]:
    if not isinstance(v, list):
        raise ProtocolError(f"{what} must be an array of node ids")
    return frozenset(_u64(n, what) for n in v)


def _bytes(v: object, what: str, size: int | None = None) -> bytes:
    if type(v) is not bytes or (size is not None and len(v) not in (0, size)):
        raise ProtocolError(f"{what} must be a byte string" + (f" of {size} bytes" if size else ""))
    return v


def _text(v: object, what: str, limit: int = 256) -> str:
    if type(v) is not str or len(v) > limit:
        raise ProtocolError(f"{what} must be a string of at most {limit} characters")
    return v


# Required fields per control message, with their checkers (SEGMENT is a raw segment).
_SCHEMAS: dict[int, dict[str, Any]] = {
    MsgType.HELLO: {"proto": lambda v: _u64(v, "proto"), "node": lambda v: _u64(v, "node"),
                    "region": lambda v: _text(v, "region", 64),
                    "nonce": lambda v: _bytes(v, "nonce", NONCE_BYTES),
                    "max_frame": lambda v: _u64(v, "max_frame"),
                    "mode": lambda v: _text(v, "mode", 16)},
    MsgType.WELCOME: {"proto": lambda v: _u64(v, "proto"), "node": lambda v: _u64(v, "node"),
                      "region": lambda v: _text(v, "region", 64),
                      "nonce": lambda v: _bytes(v, "nonce", NONCE_BYTES),
                      "max_frame": lambda v: _u64(v, "max_frame"),
                      "proof": lambda v: _bytes(v, "proof", 32)},
    MsgType.AUTH: {"proof": lambda v: _bytes(v, "proof", 32)},
    MsgType.READY: {"vv": lambda v: _vv(v, "vv"), "acks": _acks,
                    "forgotten": lambda v: _nodes(v, "forgotten")},
    MsgType.ACK: {"vv": lambda v: _vv(v, "vv"), "lag_us": lambda v: _lags(v),
                  "refused": lambda v: _refused(v)},
    MsgType.STATE: {"vv": lambda v: _vv(v, "vv")},
    MsgType.DONE: {"vv": lambda v: _vv(v, "vv")},
    MsgType.PING: {"t": lambda v: _u64(v, "t")},
    MsgType.PONG: {"t": lambda v: _u64(v, "t")},
    MsgType.ERROR: {"code": lambda v: _text(v, "code", 32),
                    "message": lambda v: _text(v, "message", 4096)},
}  # fmt: skip
# AUTH also carries the client's state (vv, acks, forgotten) like READY does.
_SCHEMAS[MsgType.AUTH].update(_SCHEMAS[MsgType.READY])
# Fields a message may carry or omit (an older build omits them). ``tips``: per origin, the
# HLC of the entry at the sender's vv position (replication.lineage: reused-seq detection).
_OPTIONAL: dict[int, dict[str, Any]] = {
    MsgType.READY: {"tips": lambda v: _vv(v, "tips")},
    MsgType.AUTH: {"tips": lambda v: _vv(v, "tips")},
}
_MAX_LAG_SAMPLES = 256


def _lags(v: object) -> list[int]:
    if not isinstance(v, list) or len(v) > _MAX_LAG_SAMPLES:
        raise ProtocolError(f"lag_us must be an array of at most {_MAX_LAG_SAMPLES} integers")
    return [_u64(x, "lag_us sample") for x in v]


def _refused(v: object) -> dict[int, str]:
    if not isinstance(v, dict):
        raise ProtocolError("refused must be a map of origin -> reason")
    return {_u64(k, "refused key"): _text(r, "refused reason", 1024) for k, r in v.items()}


def encode_body(fields: Mapping[str, Any]) -> bytes:
    """A control message body: canonical CBOR, sets as sorted arrays."""
    body = {k: sorted(v) if isinstance(v, (set, frozenset)) else v for k, v in fields.items()}
    return cbor2.dumps(body, canonical=True)


def encode_message(msg_type: int, fields: Mapping[str, Any]) -> bytes:
    """An untagged control message frame (handshake, ``ERROR``); see :meth:`Channel.seal`."""
    return encode_frame(msg_type, encode_body(fields))


def decode_message(msg_type: int, body: bytes) -> dict[str, Any]:
    """Decode and check a control message body.

    :raises ProtocolError: for an unknown type, malformed CBOR, or a missing, unknown or badly
        typed field.
    """
    schema = _SCHEMAS.get(msg_type)
    if schema is None:
        raise ProtocolError(f"unknown or non-control message type {type_name(msg_type)}")
    try:
        obj = loads_bounded(body, max_depth=_CONTROL_MAX_DEPTH, max_items=1 << 16,
                            max_bytes=len(body))
    except ValidationError as exc:
        raise ProtocolError(f"{type_name(msg_type)} body is not valid CBOR: {exc}") from None
    optional = _OPTIONAL.get(msg_type, {})
    if not isinstance(obj, dict) or not set(schema) <= set(obj) <= set(schema) | set(optional):
        got = sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
        raise ProtocolError(
            f"{type_name(msg_type)} must be a map with fields {sorted(schema)}, got {got}"
        )
    out = {k: check(obj[k]) for k, check in schema.items()}
    out.update((k, check(obj[k])) for k, check in optional.items() if k in obj)
    return out


_ERROR_CODES: dict[str, type[Error]] = {
    "auth": AuthError, "protocol": ProtocolError, "version": ProtocolError,
    "forgotten": ForgottenNodeError, "skew": ClockSkewError, "segment": SegmentError,
}  # fmt: skip


def error_from_message(fields: Mapping[str, Any]) -> Error:
    """The exception an ``ERROR`` message stands for (``AuthError``, ``ProtocolError``, …)."""
    cls = _ERROR_CODES.get(fields["code"], ProtocolError)
    return cls(f"peer refused: {fields['message']}")


def error_code(exc: BaseException) -> str:
    """The ``ERROR`` code that reports ``exc`` to a peer."""
    if isinstance(exc, AuthError):
        return "auth"
    if isinstance(exc, ForgottenNodeError):
        return "forgotten"
    if isinstance(exc, ProtocolError):
        return "protocol"
    if isinstance(exc, SegmentError):
        return "segment"
    if isinstance(exc, ClockSkewError):
        return "skew"
    return "internal"


async def send_error(writer: asyncio.StreamWriter, exc: BaseException) -> None:
    """Best effort: tell the peer why we hang up. Never raises."""
    try:
        writer.write(encode_message(MsgType.ERROR, {"code": error_code(exc),
                                                    "message": str(exc)[:4000]}))
        await asyncio.wait_for(writer.drain(), 1.0)
    except (TimeoutError, OSError, RuntimeError):
        pass


# ------------------------------------------------------------------------------- handshake


def normalize_secret(secret: str | bytes | None) -> bytes | None:
    """``str`` secrets are UTF-8 encoded; an empty secret is refused.

    :raises ValidationError: for a wrong type or an empty secret.
    """
    if secret is None:
        return None
    if isinstance(secret, str):
        secret = secret.encode()
    if not isinstance(secret, (bytes, bytearray)) or not secret:
        raise ValidationError("secret must be a non-empty str or bytes, or None")
    return bytes(secret)


def _proof(secret: bytes, role: bytes, nonce_c: bytes, nonce_s: bytes, node_c: int,
           node_s: int) -> bytes:
    msg = b"regiondb-net-v2 " + role + nonce_c + nonce_s + struct.pack(">QQ", node_c, node_s)
    return hmac.new(secret, msg, hashlib.sha256).digest()


@dataclass(slots=True)
class Hello:
    """What this side says about itself in the handshake."""

    node: int
    region: str
    vv: dict[int, int]
    acks: dict[int, dict[int, int]]
    forgotten: frozenset[int]
    max_frame: int = DEFAULT_MAX_FRAME
    mode: str = "live"
    tips: dict[int, int] = field(default_factory=dict)


@dataclass(slots=True)
class PeerInfo:
    """What the handshake learned about the peer (authenticated when a secret is set)."""

    node: int
    region: str
    vv: dict[int, int]
    acks: dict[int, dict[int, int]] = field(default_factory=dict)
    forgotten: frozenset[int] = frozenset()
    max_frame: int = DEFAULT_MAX_FRAME
    mode: str = "live"
    tips: dict[int, int] = field(default_factory=dict)


async def _expect(reader: asyncio.StreamReader, want: int, timeout: float,
                  channel: Channel | None = None) -> tuple[dict[str, Any], bytes]:
    """The next handshake frame, which must be ``want``: ``(fields, body as sent)``.

    With ``channel`` the frame must carry a valid tag (``ERROR`` never does).
    """
    try:
        body = await _expect_raw(reader, want, timeout)
    except ProtocolError as err:
        if want == MsgType.WELCOME and "speaks protocol" in str(err):
            raise ProtocolError(f"{err} (the server runs a regiondb of another protocol "
                                f"version; this one speaks only protocol {PROTOCOL_VERSION})"
                                ) from None
        raise
    if channel is not None:
        body = channel.open(want, body)
    return decode_message(want, body), body


def _check_peer_node(me: int, node: int, forgotten: frozenset[int]) -> None:
    if node == 0:
        raise ProtocolError("peer node id 0 is not valid")
    if node == me:
        raise ProtocolError(
            f"peer has this node's own id {node:016x}: a copy of this store, or a connection "
            "to itself"
        )
    if node in forgotten:
        raise ForgottenNodeError(
            f"node {node:016x} was forgotten here; it must rejoin as a new node from a snapshot"
        )


def _check_version(proto: int, who: str) -> None:
    if proto == PROTOCOL_VERSION:
        return
    if proto < PROTOCOL_VERSION:
        raise ProtocolError(
            f"{who} speaks protocol {proto}, an older regiondb without per-frame "
            f"authentication; this build speaks only protocol {PROTOCOL_VERSION}: upgrade the "
            f"{who}")
    raise ProtocolError(f"{who} speaks protocol {proto}, this build {PROTOCOL_VERSION}")


async def client_handshake(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, me: Hello,
    secret: bytes | None, *, timeout: float,
) -> tuple[PeerInfo, Channel]:
    """Run the client side: HELLO →, ← WELCOME, AUTH →, ← READY (the last two tagged).

    :returns: what the server said, and the channel that seals and opens every later frame.
    :raises AuthError: wrong or missing secret on either side.
    :raises ProtocolError: bad messages, a bad tag or a version mismatch.
    :raises ForgottenNodeError: the server was forgotten here, or it forgot us.
    """
    nonce_c = secrets.token_bytes(NONCE_BYTES)
    hello = encode_message(MsgType.HELLO, {
        "proto": PROTOCOL_VERSION, "node": me.node, "region": me.region, "nonce": nonce_c,
        "max_frame": me.max_frame, "mode": me.mode})
    writer.write(hello)
    await writer.drain()
    w, welcome = await _expect(reader, MsgType.WELCOME, timeout)
    _check_version(w["proto"], "server")
    if len(w["nonce"]) != NONCE_BYTES:
        raise ProtocolError("server nonce must be 32 bytes")
    _check_peer_node(me.node, w["node"], me.forgotten)
    proof = b""
    if secret is not None:
        expected = _proof(secret, b"server", nonce_c, w["nonce"], me.node, w["node"])
        if not hmac.compare_digest(expected, w["proof"]):
            raise AuthError(
                f"server {w['node']:016x} at {_peername(writer)} failed authentication "
                f"({'no proof: it has no secret' if not w['proof'] else 'wrong secret'})"
            )
        proof = _proof(secret, b"client", nonce_c, w["nonce"], me.node, w["node"])
    channel = Channel.for_client(derive_keys(secret, nonce_c, w["nonce"],
                                             transcript_hash(hello[5:], welcome)))
    writer.write(channel.seal(MsgType.AUTH, encode_body({
        "proof": proof, "vv": me.vv, "acks": me.acks, "forgotten": me.forgotten,
        "tips": me.tips})))
    await writer.drain()
    r, _ = await _expect(reader, MsgType.READY, timeout, channel)
    return PeerInfo(w["node"], w["region"], r["vv"], r["acks"], r["forgotten"],
                    max_frame=w["max_frame"], mode=me.mode, tips=r.get("tips", {})), channel


async def server_handshake(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
    me: Hello | Callable[[], Awaitable[Hello]], secret: bytes | None, *, timeout: float,
) -> tuple[PeerInfo, Channel]:
    """Run the server side: ← HELLO, WELCOME →, ← AUTH, READY → (the last two tagged).

    ``timeout`` bounds the whole handshake (slow loris). ``me`` may be a coroutine function,
    called once a well-formed HELLO arrived: a server then reads its state for clients that
    got that far only, not for every socket that connects.

    :raises AuthError: the client did not prove it knows the secret.
    :raises ProtocolError: bad messages, a bad tag or a version mismatch.
    :raises ForgottenNodeError: the client is a node forgotten here.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout

    def left() -> float:
        return max(0.0, deadline - loop.time())

    h, hello = await _expect(reader, MsgType.HELLO, left())
    _check_version(h["proto"], "client")
    if len(h["nonce"]) != NONCE_BYTES:
        raise ProtocolError("client nonce must be 32 bytes")
    if h["mode"] not in ("sync", "live"):
        raise ProtocolError(f"unknown mode {h['mode']!r}")
    if not isinstance(me, Hello):
        me = await me()
    _check_peer_node(me.node, h["node"], me.forgotten)
    nonce_s = secrets.token_bytes(NONCE_BYTES)
    proof = b"" if secret is None else _proof(
        secret, b"server", h["nonce"], nonce_s, h["node"], me.node)
    welcome = encode_message(MsgType.WELCOME, {
        "proto": PROTOCOL_VERSION, "node": me.node, "region": me.region, "nonce": nonce_s,
        "max_frame": me.max_frame, "proof": proof})
    writer.write(welcome)
    await writer.drain()
    channel = Channel.for_server(derive_keys(secret, h["nonce"], nonce_s,
                                             transcript_hash(hello, welcome[5:])))
    a = await _read_auth(reader, left(), channel, secret, h, nonce_s, me.node, writer)
    writer.write(channel.seal(MsgType.READY, encode_body({
        "vv": me.vv, "acks": me.acks, "forgotten": me.forgotten, "tips": me.tips})))
    await writer.drain()
    return PeerInfo(h["node"], h["region"], a["vv"], a["acks"], a["forgotten"],
                    max_frame=h["max_frame"], mode=h["mode"], tips=a.get("tips", {})), channel


async def _read_auth(reader: asyncio.StreamReader, timeout: float, channel: Channel,
                     secret: bytes | None, h: dict[str, Any], nonce_s: bytes, node_s: int,
                     writer: asyncio.StreamWriter) -> dict[str, Any]:
    """The client's AUTH: its proof is checked first (a wrong secret is an ``AuthError``, not
    a bad tag), then its tag (a right proof with a wrong tag: the handshake was tampered with).
    """
    sealed = await _expect_raw(reader, MsgType.AUTH, timeout)
    if len(sealed) < TAG_BYTES:
        raise ProtocolError("AUTH frame too short for its tag")
    a = decode_message(MsgType.AUTH, sealed[:-TAG_BYTES])
    if secret is not None:
        expected = _proof(secret, b"client", h["nonce"], nonce_s, h["node"], node_s)
        if not hmac.compare_digest(expected, a["proof"]):
            raise AuthError(
                f"client {h['node']:016x} at {_peername(writer)} failed authentication "
                f"({'no proof: it has no secret' if not a['proof'] else 'wrong secret'})"
            )
    channel.open(MsgType.AUTH, sealed)
    return a


async def _expect_raw(reader: asyncio.StreamReader, want: int, timeout: float) -> bytes:
    """Like :func:`_expect`, but the frame's payload undecoded (its tag not yet checked)."""
    try:
        msg_type, body = await read_frame(reader, max_frame=HANDSHAKE_MAX_FRAME, timeout=timeout)
    except asyncio.IncompleteReadError as exc:
        raise ConnectionError(
            f"peer closed the connection during the handshake, waiting for {type_name(want)} "
            f"({len(exc.partial)} bytes of a frame received)") from None
    if msg_type == MsgType.ERROR:
        raise error_from_message(decode_message(msg_type, body))
    if msg_type != want:
        raise ProtocolError(
            f"expected {type_name(want)} during the handshake, got {type_name(msg_type)}")
    return body


def _peername(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "?"
