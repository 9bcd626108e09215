"""Per-frame authentication of a socket connection (protocol v2): the session keys and tags.

The handshake (:mod:`replication.protocol`) derives two keys, one per direction, from the
shared secret, both nonces and a hash of the first two handshake messages, with HKDF-SHA256
(RFC 5869, written out with :mod:`hmac`; no new dependency). From then on every frame but
``ERROR`` carries a 32-byte tag::

    tag = HMAC-SHA256(key_of_direction, seq u64 ‖ type u8 ‖ body)

where ``seq`` counts the authenticated frames sent in that direction, from 0, and is never
sent: a frame replayed, reordered, dropped, altered or injected fails the next tag check and
is a :class:`~engine.errors.ProtocolError` that closes the connection. ``docs/protocol.md``
§3–4 is the specification.

Invariants owned here:

- A :class:`Channel` seals frames in the order they are written and opens them in the order
  they are read: callers write each sealed frame at once, on one event loop.
- Tags are compared with :func:`hmac.compare_digest`.
- Without a shared secret the keys come from the nonces alone: tags then catch corruption and
  framing bugs, not an attacker (who can compute them); use a secret or TLS for that.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import Any

from engine.errors import ProtocolError

__all__ = ["TAG_BYTES", "Channel", "derive_keys", "hkdf_sha256", "transcript_hash"]

TAG_BYTES = 32
_SEQ_TYPE = struct.Struct(">QB")
_HEADER = struct.Struct(">IB")  # the frame header of replication.protocol
_KEYS_INFO = b"regiondb-net-v2 keys"
#: The one frame type that is never tagged: it only ever ends a connection (see module doc).
_UNTAGGED = 0x7F


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """HKDF (RFC 5869) with SHA-256: extract, then expand to ``length`` bytes."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    okm, block = b"", b""
    counter = 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


def transcript_hash(hello_body: bytes, welcome_body: bytes) -> bytes:
    """SHA-256 over the HELLO and WELCOME bodies as sent, each with a u32 length prefix."""
    h = hashlib.sha256()
    for body in (hello_body, welcome_body):
        h.update(struct.pack(">I", len(body)))
        h.update(body)
    return h.digest()


def derive_keys(secret: bytes | None, nonce_c: bytes, nonce_s: bytes,
                transcript: bytes) -> tuple[bytes, bytes]:
    """``(client→server key, server→client key)`` of one connection."""
    okm = hkdf_sha256(secret or b"", nonce_c + nonce_s, _KEYS_INFO + transcript, 64)
    return okm[:32], okm[32:]


class Channel:
    """Seals outgoing and opens incoming frames of one connection (one per side)."""

    __slots__ = ("_recv_mac", "_recv_seq", "_send_mac", "_send_seq")

    def __init__(self, send_key: bytes, recv_key: bytes) -> None:
        self._send_mac = hmac.new(send_key, digestmod=hashlib.sha256)
        self._recv_mac = hmac.new(recv_key, digestmod=hashlib.sha256)
        self._send_seq = 0
        self._recv_seq = 0

    @classmethod
    def for_client(cls, keys: tuple[bytes, bytes]) -> Channel:
        return cls(keys[0], keys[1])

    @classmethod
    def for_server(cls, keys: tuple[bytes, bytes]) -> Channel:
        return cls(keys[1], keys[0])

    @staticmethod
    def _tag(base: Any, seq: int, msg_type: int, body: bytes) -> bytes:
        mac = base.copy()
        mac.update(_SEQ_TYPE.pack(seq, msg_type))
        mac.update(body)
        return bytes(mac.digest())

    def seal(self, msg_type: int, body: bytes = b"") -> bytes:
        """The frame of ``body`` with its tag; consumes one send sequence number.

        The caller must write it before sealing the next frame.
        """
        if msg_type == _UNTAGGED:
            return _HEADER.pack(len(body) + 1, msg_type) + body
        tag = self._tag(self._send_mac, self._send_seq, msg_type, body)
        self._send_seq += 1
        return b"".join((_HEADER.pack(len(body) + 1 + TAG_BYTES, msg_type), body, tag))

    def open(self, msg_type: int, payload: bytes) -> bytes:
        """The body of a received frame, once its tag checks out.

        :raises ProtocolError: for a missing or wrong tag (altered, replayed, reordered,
            dropped or injected frame, or a peer keyed differently).
        """
        if msg_type == _UNTAGGED:
            return payload
        if len(payload) < TAG_BYTES:
            raise ProtocolError(f"frame of type 0x{msg_type:02x} too short for its tag")
        body, tag = payload[:-TAG_BYTES], payload[-TAG_BYTES:]
        expected = self._tag(self._recv_mac, self._recv_seq, msg_type, body)
        if not hmac.compare_digest(expected, tag):
            raise ProtocolError(
                f"frame #{self._recv_seq} (type 0x{msg_type:02x}) failed authentication: altered, "
                "replayed, reordered or injected (or a frame before it was dropped)")
        self._recv_seq += 1
        return body
