"""Per-frame tags of protocol v2: key schedule, sealing, and every way a frame can be wrong."""

from __future__ import annotations

import hashlib
import hmac
import struct

import pytest

from engine.errors import ProtocolError
from replication.channel import TAG_BYTES, Channel, derive_keys, hkdf_sha256, transcript_hash
from replication.protocol import MsgType


def pair(secret: bytes | None = b"k") -> tuple[Channel, Channel]:
    keys = derive_keys(secret, b"c" * 32, b"s" * 32, transcript_hash(b"hello", b"welcome"))
    return Channel.for_client(keys), Channel.for_server(keys)


def payload(frame: bytes) -> tuple[int, bytes]:
    length, t = struct.unpack_from(">IB", frame)
    assert length == len(frame) - 4
    return t, frame[5:]


def test_hkdf_matches_rfc5869_test_case_1() -> None:
    ikm = bytes.fromhex("0b" * 22)
    salt = bytes.fromhex("000102030405060708090a0b0c")
    info = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9")
    okm = hkdf_sha256(ikm, salt, info, 42)
    assert okm.hex() == ("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
                         "34007208d5b887185865")


def test_round_trip_both_directions() -> None:
    c, s = pair()
    for i in range(3):
        assert s.open(*payload(c.seal(MsgType.SEGMENT, b"seg%d" % i))) == b"seg%d" % i
        assert c.open(*payload(s.seal(MsgType.ACK, b"ack%d" % i))) == b"ack%d" % i


def test_tag_is_hmac_of_seq_type_body() -> None:
    keys = derive_keys(b"k", b"c" * 32, b"s" * 32, b"t" * 32)
    frame = Channel.for_client(keys).seal(MsgType.PING, b"x")
    want = hmac.new(keys[0], struct.pack(">QB", 0, MsgType.PING) + b"x", hashlib.sha256)
    assert frame == struct.pack(">IB", 2 + TAG_BYTES, MsgType.PING) + b"x" + want.digest()


def test_directions_have_different_keys() -> None:
    c, _ = pair()
    c2, _ = pair()
    with pytest.raises(ProtocolError, match="failed authentication"):
        c2.open(*payload(c.seal(MsgType.PING, b"x")))  # reflected back at its sender


@pytest.mark.parametrize("attack", ["flip", "replay", "reorder", "drop", "retype", "short",
                                    "other-secret", "other-transcript"])
def test_bad_frames_are_protocol_errors(attack: str) -> None:
    c, s = pair()
    f1, f2 = c.seal(MsgType.SEGMENT, b"one"), c.seal(MsgType.SEGMENT, b"two")
    if attack == "flip":
        t, p = payload(f1)
        bad = [(t, bytes([p[0] ^ 1]) + p[1:])]
    elif attack == "replay":
        s.open(*payload(f1))
        bad = [payload(f1)]
    elif attack == "reorder":
        bad = [payload(f2)]
    elif attack == "drop":
        bad = [payload(f2)]  # f1 never arrives
    elif attack == "retype":
        bad = [(MsgType.STATE, payload(f1)[1])]
    elif attack == "short":
        bad = [(MsgType.SEGMENT, b"x" * (TAG_BYTES - 1))]
    elif attack == "other-secret":
        bad = [payload(pair(b"other")[0].seal(MsgType.SEGMENT, b"one"))]
    else:
        keys = derive_keys(b"k", b"c" * 32, b"s" * 32, transcript_hash(b"hello", b"welcomE"))
        bad = [payload(Channel.for_client(keys).seal(MsgType.SEGMENT, b"one"))]
    with pytest.raises(ProtocolError, match="failed authentication|too short"):
        for t, p in bad:
            s.open(t, p)


def test_error_frames_are_untagged() -> None:
    c, s = pair()
    frame = c.seal(MsgType.ERROR, b"why")
    assert frame == struct.pack(">IB", 4, MsgType.ERROR) + b"why"
    assert s.open(*payload(frame)) == b"why"
    # and they consume no sequence number
    assert s.open(*payload(c.seal(MsgType.PING, b""))) == b""


def test_without_a_secret_tags_still_catch_corruption() -> None:
    c, s = pair(None)
    t, p = payload(c.seal(MsgType.SEGMENT, b"data"))
    with pytest.raises(ProtocolError):
        s.open(t, p[:-1] + bytes([p[-1] ^ 0x80]))
