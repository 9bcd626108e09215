"""DynamoDB Streams over the change feed, through boto3's ``dynamodbstreams`` client."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from .conftest import client_for, error_of


@pytest.fixture(scope="module")
def streams(server: Any) -> Any:
    return client_for(server.url, "dynamodbstreams")


def stream_of(ddb: Any, streams: Any, make_table: Any, view: str) -> tuple[str, str, str]:
    name = make_table(StreamSpecification={"StreamEnabled": True, "StreamViewType": view})
    arn = ddb.describe_table(TableName=name)["Table"]["LatestStreamArn"]
    (shard,) = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    return name, arn, shard["ShardId"]


def records(streams: Any, iterator: str) -> tuple[list[dict[str, Any]], str]:
    out = streams.get_records(ShardIterator=iterator)
    return out["Records"], out["NextShardIterator"]


def test_list_and_describe(ddb: Any, streams: Any, make_table: Any) -> None:
    name, arn, shard = stream_of(ddb, streams, make_table, "NEW_IMAGE")
    listed = streams.list_streams(TableName=name)["Streams"]
    assert [s["StreamArn"] for s in listed] == [arn]
    desc = streams.describe_stream(StreamArn=arn)["StreamDescription"]
    assert desc["StreamStatus"] == "ENABLED" and desc["StreamViewType"] == "NEW_IMAGE"
    assert desc["TableName"] == name
    assert desc["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    plain = make_table()
    assert all(s["TableName"] != plain for s in streams.list_streams()["Streams"])
    with pytest.raises(ClientError) as e:
        streams.describe_stream(StreamArn=arn.replace(name, plain))
    assert error_of(e)[0] == "ResourceNotFoundException"


def test_records_with_new_and_old_images(ddb: Any, streams: Any, make_table: Any) -> None:
    name, arn, shard = stream_of(ddb, streams, make_table, "NEW_AND_OLD_IMAGES")
    it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard,
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    ddb.put_item(TableName=name, Item={"pk": {"S": "o1"}, "status": {"S": "NEW"}})
    ddb.put_item(TableName=name, Item={"pk": {"S": "o1"}, "status": {"S": "PAID"}})
    ddb.delete_item(TableName=name, Key={"pk": {"S": "o1"}})
    recs, it = records(streams, it)
    assert [r["eventName"] for r in recs] == ["INSERT", "MODIFY", "REMOVE"]
    assert all(r["eventSource"] == "aws:dynamodb" and r["awsRegion"] == "us-east-1"
               for r in recs)
    ins, mod, rem = (r["dynamodb"] for r in recs)
    assert ins["Keys"] == {"pk": {"S": "o1"}} and "OldImage" not in ins
    assert ins["NewImage"]["status"] == {"S": "NEW"}
    assert mod["OldImage"]["status"] == {"S": "NEW"} and mod["NewImage"]["status"] == {"S": "PAID"}
    assert rem["OldImage"]["status"] == {"S": "PAID"} and "NewImage" not in rem
    seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in recs]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert records(streams, it)[0] == []  # nothing new yet
    ddb.put_item(TableName=name, Item={"pk": {"S": "o2"}})
    recs2, _ = records(streams, it)
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in recs2] == ["o2"]
    # AT_ / AFTER_SEQUENCE_NUMBER resume exactly
    at = streams.get_shard_iterator(StreamArn=arn, ShardId=shard,
                                    ShardIteratorType="AT_SEQUENCE_NUMBER",
                                    SequenceNumber=recs[1]["dynamodb"]["SequenceNumber"])["ShardIterator"]
    assert [r["eventName"] for r in records(streams, at)[0]][:2] == ["MODIFY", "REMOVE"]
    after = streams.get_shard_iterator(StreamArn=arn, ShardId=shard,
                                       ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                                       SequenceNumber=recs[1]["dynamodb"]["SequenceNumber"])["ShardIterator"]
    assert [r["eventName"] for r in records(streams, after)[0]][:1] == ["REMOVE"]


def test_latest_and_keys_only(ddb: Any, streams: Any, make_table: Any) -> None:
    name, arn, shard = stream_of(ddb, streams, make_table, "KEYS_ONLY")
    ddb.put_item(TableName=name, Item={"pk": {"S": "before"}})
    it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard,
                                    ShardIteratorType="LATEST")["ShardIterator"]
    ddb.put_item(TableName=name, Item={"pk": {"S": "after"}, "v": {"S": "x"}})
    (rec,), _ = records(streams, it)
    assert rec["dynamodb"]["Keys"] == {"pk": {"S": "after"}}
    assert "NewImage" not in rec["dynamodb"] and "OldImage" not in rec["dynamodb"]
    assert rec["dynamodb"]["StreamViewType"] == "KEYS_ONLY"


def test_limit_and_bad_iterators(ddb: Any, streams: Any, make_table: Any) -> None:
    name, arn, shard = stream_of(ddb, streams, make_table, "NEW_IMAGE")
    for i in range(5):
        ddb.put_item(TableName=name, Item={"pk": {"S": f"k{i}"}})
    it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard,
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    got: list[str] = []
    for _ in range(5):
        out = streams.get_records(ShardIterator=it, Limit=2)
        assert len(out["Records"]) <= 2
        got += [r["dynamodb"]["Keys"]["pk"]["S"] for r in out["Records"]]
        it = out["NextShardIterator"]
    assert got == [f"k{i}" for i in range(5)]
    with pytest.raises(ClientError) as e:
        streams.get_records(ShardIterator="garbage!")
    assert error_of(e)[0] == "ValidationException"
    with pytest.raises(ClientError) as e:
        streams.get_shard_iterator(StreamArn=arn, ShardId="shardId-00000000000000000000-deadbeef",
                                   ShardIteratorType="LATEST")
    assert error_of(e)[0] == "ResourceNotFoundException"
