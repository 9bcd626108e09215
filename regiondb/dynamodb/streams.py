"""DynamoDB Streams over the store's change feed (``store.changes()``).

A table with a stream enabled has one stream and one open shard: the store's change feed,
filtered to that table's item changes, in local apply order (remote changes included — every
region's stream shows every region's writes, as Global Tables' streams do). A record's
sequence number is its feed position times 10**6 plus its index within its transaction, so
sequence numbers grow and ``AT_``/``AFTER_SEQUENCE_NUMBER`` iterators resume exactly.

Images: ``NewImage`` is the change's ``new_image``. ``OldImage`` (and telling ``INSERT`` from
``MODIFY``) comes from the previous change of the same item still in the feed — the feed
keeps new images only — so it is missing when that change was truncated from the log
(:class:`Images` keeps those last images per table, moved forward as consumers read). A TTL
delete (``Change.ttl``) carries DynamoDB's service ``userIdentity``.

Shard iterators are opaque strings holding the stream ARN and the feed position to read after.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import engine

from .errors import not_found, validation
from .meta import TableInfo
from .params import enum_param, int_param, str_param
from .values import item_size, marshal_item

if TYPE_CHECKING:
    from .endpoint import Endpoint

__all__ = ["OPERATIONS", "Images"]

_SEQ = 1_000_000
_ITER_TYPES = ("TRIM_HORIZON", "LATEST", "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER")
_KINDS = {"put", "update", "delete"}


def _shard_id(ep: Endpoint, info: TableInfo) -> str:
    return f"shardId-{int(info.created * 1000):020d}-{ep.store.node_id & 0xFFFFFFFF:08x}"


def _table_of_arn(ep: Endpoint, arn: object) -> TableInfo:
    if not isinstance(arn, str) or "/stream/" not in arn or ":table/" not in arn:
        raise validation(f"Invalid StreamArn: {arn}")
    name = arn.split(":table/", 1)[1].split("/stream/", 1)[0]
    try:
        info = ep.info(name)
    except engine.TableNotFound:
        raise not_found(f"Requested resource not found: Stream: {arn} not found") from None
    if not info.stream.get("enabled") or ep.tables.stream_arn(info) != arn:
        raise not_found(f"Requested resource not found: Stream: {arn} not found")
    return info


def list_streams(ep: Endpoint, req: dict[str, Any]) -> dict[str, Any]:
    """ListStreams: every enabled stream, or the one of ``TableName``."""
    only = str_param(req, "TableName")
    limit = int_param(req, "Limit", low=1, high=100) or 100
    start = str_param(req, "ExclusiveStartStreamArn")
    streams = []
    for name in ep.tables.names():
        if only is not None and name != only:
            continue
        info = ep.info(name)
        if info.stream.get("enabled"):
            arn = ep.tables.stream_arn(info)
            if start is None or arn > start:
                streams.append({"StreamArn": arn, "TableName": name,
                                "StreamLabel": ep.tables.stream_label(info)})
    out: dict[str, Any] = {"Streams": streams[:limit]}
    if len(streams) > limit:
        out["LastEvaluatedStreamArn"] = streams[limit - 1]["StreamArn"]
    return out


def describe_stream(ep: Endpoint, req: dict[str, Any]) -> dict[str, Any]:
    """DescribeStream: one open shard."""
    arn = str_param(req, "StreamArn", required=True)
    info = _table_of_arn(ep, arn)
    keys = [{"AttributeName": info.partition_key, "KeyType": "HASH"}]
    if info.sort_key:
        keys.append({"AttributeName": info.sort_key, "KeyType": "RANGE"})
    return {"StreamDescription": {
        "StreamArn": arn, "StreamLabel": ep.tables.stream_label(info), "StreamStatus": "ENABLED",
        "StreamViewType": info.stream.get("view"), "CreationRequestDateTime": info.created,
        "TableName": info.name, "KeySchema": keys,
        "Shards": [{"ShardId": _shard_id(ep, info),
                    "SequenceNumberRange": {"StartingSequenceNumber": _seq_text(_SEQ)}}],
    }}


def _seq_text(seq: int) -> str:
    """A sequence number as DynamoDB writes them: digits, at least 21 (boto3 checks)."""
    return f"{seq:024d}"


def _iterator(arn: str, after: int) -> str:
    raw = json.dumps([arn, after]).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _read_iterator(text: object) -> tuple[str, int]:
    try:
        assert isinstance(text, str)
        arn, after = json.loads(base64.urlsafe_b64decode(text.encode("ascii")))
        assert isinstance(arn, str) and isinstance(after, int)
        return arn, after
    except (AssertionError, ValueError, binascii.Error, TypeError, UnicodeError):
        raise validation("Invalid ShardIterator") from None


def get_shard_iterator(ep: Endpoint, req: dict[str, Any]) -> dict[str, Any]:
    """GetShardIterator: TRIM_HORIZON, LATEST, AT_ and AFTER_SEQUENCE_NUMBER."""
    arn = str_param(req, "StreamArn", required=True)
    assert arn is not None
    info = _table_of_arn(ep, arn)
    shard = str_param(req, "ShardId", required=True)
    if shard != _shard_id(ep, info):
        raise not_found(f"Requested resource not found: Shard does not exist: {shard}")
    kind = enum_param(req, "ShardIteratorType", _ITER_TYPES)
    if kind is None:
        raise validation("1 validation error detected: Value null at 'shardIteratorType' failed "
                         "to satisfy constraint: Member must not be null")
    seq_text = str_param(req, "SequenceNumber")
    if kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
        if seq_text is None or not seq_text.isdigit():
            raise validation("Invalid SequenceNumber for ShardIteratorType: " + kind)
        seq = int(seq_text)
        after = seq - 1 if kind == "AT_SEQUENCE_NUMBER" else seq
    elif seq_text is not None:
        raise validation("Invalid SequenceNumber: must be absent for ShardIteratorType " + kind)
    elif kind == "LATEST":
        after = (ep.store.position() + 1) * _SEQ - 1
    else:
        after = 0
    return {"ShardIterator": _iterator(arn, after)}


def _changes(store: engine.Store, since: int) -> Iterator[tuple[int, engine.Change]]:
    """Feed entries after position ``since`` with their index within their transaction."""
    last, idx = -1, 0
    for ch in store.changes(since=since):
        idx = idx + 1 if ch.position == last else 0
        last = ch.position
        yield idx, ch


def _key_tuple(key: dict[str, Any]) -> str:
    return json.dumps(marshal_item(key), sort_keys=True)


class Images:
    """The last image of every item of a table as of a feed position, advanced incrementally.

    GetRecords needs each record's ``OldImage`` (and INSERT vs MODIFY): the image after the
    item's previous change. Consumers read forward, so the map is kept per table and moved
    forward from where the last call left it; a read from further back rebuilds it from the
    start of the log. It holds one image per item changed in the retained log.
    """

    def __init__(self) -> None:
        self._maps: dict[str, tuple[int, dict[str, dict[str, Any] | None]]] = {}
        self._lock = threading.Lock()

    def before(self, store: engine.Store, table: str, upto: int,
               keys: set[str]) -> dict[str, dict[str, Any] | None]:
        """The images of ``keys`` as of just before feed position ``upto``."""
        with self._lock:
            pos, images = self._maps.get(table, (0, {}))
            if pos >= upto:
                pos, images = 0, {}
            for ch in store.changes(since=pos):
                if ch.position >= upto:
                    break
                pos = ch.position
                if ch.table == table and ch.kind in _KINDS:
                    images[_key_tuple(ch.key)] = ch.new_image if ch.kind != "delete" else None
            # resume from the last position fully consumed (every op of it applied above)
            self._maps[table] = (max(0, min(pos, upto - 1)), images)
            return {k: images.get(k) for k in keys}


def _record(ep: Endpoint, info: TableInfo, ch: engine.Change, idx: int,
            old: dict[str, Any] | None) -> dict[str, Any]:
    view = info.stream.get("view") or "NEW_AND_OLD_IMAGES"
    new = ch.new_image if ch.kind != "delete" else None
    name = "REMOVE" if ch.kind == "delete" else ("MODIFY" if old else "INSERT")
    body: dict[str, Any] = {
        "ApproximateCreationDateTime": (ch.version[0] >> 16) / 1000.0,
        "Keys": marshal_item(ch.key),
        "SequenceNumber": _seq_text(ch.position * _SEQ + idx),
        "SizeBytes": item_size(ch.key) + item_size(new or {}) + item_size(old or {}),
        "StreamViewType": view,
    }
    if view in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES") and new is not None:
        body["NewImage"] = marshal_item(new)
    if view in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES") and old is not None:
        body["OldImage"] = marshal_item(old)
    rec: dict[str, Any] = {
        "eventID": f"{ch.origin:016x}{ch.seq:012x}{idx:04x}", "eventName": name,
        "eventVersion": "1.1", "eventSource": "aws:dynamodb", "awsRegion": ep.store.region,
        "dynamodb": body,
    }
    if getattr(ch, "ttl", False):
        # the GetRecords wire shape (botocore's Identity: PrincipalId, Type); Lambda events
        # spell the same fields in lower camel case
        rec["userIdentity"] = {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"}
    return rec


def get_records(ep: Endpoint, req: dict[str, Any]) -> dict[str, Any]:
    """GetRecords: up to ``Limit`` (1000) records after the iterator's position."""
    if req.get("ShardIterator") is None:
        raise validation("1 validation error detected: Value null at 'shardIterator' failed to "
                         "satisfy constraint: Member must not be null")
    arn, after = _read_iterator(req.get("ShardIterator"))
    limit = int_param(req, "Limit", low=1, high=1000) or 1000
    info = _table_of_arn(ep, arn)
    position, skip = divmod(after + 1, _SEQ)
    picked: list[tuple[int, engine.Change]] = []
    last_seq = after
    for idx, ch in _changes(ep.store, max(0, position - 1)):
        if ch.position == position and idx < skip:
            continue
        last_seq = ch.position * _SEQ + idx
        if ch.table == info.name and ch.kind in _KINDS:
            picked.append((idx, ch))
            if len(picked) >= limit:
                break
    records = []
    if picked:
        olds = ep.images.before(ep.store, info.name, picked[0][1].position,
                                {_key_tuple(ch.key) for _, ch in picked})
        for idx, ch in picked:
            k = _key_tuple(ch.key)
            records.append(_record(ep, info, ch, idx, olds.get(k)))
            olds[k] = ch.new_image if ch.kind != "delete" else None
    return {"Records": records, "NextShardIterator": _iterator(arn, last_seq)}


OPERATIONS: dict[str, Any] = {
    "ListStreams": list_streams,
    "DescribeStream": describe_stream,
    "GetShardIterator": get_shard_iterator,
    "GetRecords": get_records,
}
