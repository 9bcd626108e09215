"""Control plane through boto3: CreateTable, DescribeTable, ListTables (paginated),
DeleteTable, UpdateTable, TTL — and DynamoDB's validation of names, key schemas and
attribute definitions."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from .conftest import error_of, needs

KEYS = [{"AttributeName": "pk", "KeyType": "HASH"}]
DEFS = [{"AttributeName": "pk", "AttributeType": "S"}]


def test_create_describe_and_waiter(ddb: Any) -> None:
    out = ddb.create_table(
        TableName="orders-create", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "customer", "KeyType": "HASH"},
                   {"AttributeName": "placed", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "customer", "AttributeType": "S"},
                              {"AttributeName": "placed", "AttributeType": "N"}])
    desc = out["TableDescription"]
    assert desc["TableStatus"] == "ACTIVE"
    ddb.get_waiter("table_exists").wait(TableName="orders-create",
                                        WaiterConfig={"Delay": 1, "MaxAttempts": 2})
    t = ddb.describe_table(TableName="orders-create")["Table"]
    assert t["TableName"] == "orders-create"
    assert t["KeySchema"] == [{"AttributeName": "customer", "KeyType": "HASH"},
                              {"AttributeName": "placed", "KeyType": "RANGE"}]
    assert sorted(t["AttributeDefinitions"], key=lambda d: d["AttributeName"]) == [
        {"AttributeName": "customer", "AttributeType": "S"},
        {"AttributeName": "placed", "AttributeType": "N"}]
    assert t["TableArn"] == "arn:aws:dynamodb:us-east-1:000000000000:table/orders-create"
    assert t["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert abs(t["CreationDateTime"] - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)
    assert t["ItemCount"] == 0 and t["TableSizeBytes"] == 0
    assert "StreamSpecification" not in t


def test_item_count_follows_items(ddb: Any, make_table: Any) -> None:
    name = make_table()
    for i in range(3):
        ddb.put_item(TableName=name, Item={"pk": {"S": f"k{i}"}, "v": {"S": "x" * 10}})
    deadline = time.monotonic() + 10
    while ddb.describe_table(TableName=name)["Table"]["ItemCount"] != 3:
        assert time.monotonic() < deadline, "ItemCount never reached 3"
        time.sleep(0.2)
    assert ddb.describe_table(TableName=name)["Table"]["TableSizeBytes"] > 30


def test_provisioned_billing_is_reported(ddb: Any) -> None:
    ddb.create_table(TableName="prov-table", KeySchema=KEYS, AttributeDefinitions=DEFS,
                     ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 7})
    t = ddb.describe_table(TableName="prov-table")["Table"]
    assert t["ProvisionedThroughput"]["ReadCapacityUnits"] == 5
    assert t["ProvisionedThroughput"]["WriteCapacityUnits"] == 7
    assert "BillingModeSummary" not in t


def test_create_existing_table_is_resource_in_use(ddb: Any, make_table: Any) -> None:
    name = make_table()
    with pytest.raises(ddb.exceptions.ResourceInUseException) as e:
        ddb.create_table(TableName=name, KeySchema=KEYS, AttributeDefinitions=DEFS,
                         BillingMode="PAY_PER_REQUEST")
    assert error_of(e)[1] == f"Table already exists: {name}"


def test_describe_missing_table(ddb: Any) -> None:
    with pytest.raises(ddb.exceptions.ResourceNotFoundException) as e:
        ddb.describe_table(TableName="no-such-table")
    assert error_of(e)[1].startswith("Requested resource not found")


@pytest.mark.parametrize("name, rule", [
    ("ab", "Member must have length greater than or equal to 3"),
    ("bad name!", "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"),
    ("x" * 256, "Member must have length less than or equal to 255"),
])
def test_table_name_rules(ddb: Any, name: str, rule: str) -> None:
    with pytest.raises(ClientError) as e:
        ddb.create_table(TableName=name, KeySchema=KEYS, AttributeDefinitions=DEFS,
                         BillingMode="PAY_PER_REQUEST")
    code, msg = error_of(e)
    assert code == "ValidationException" and rule in msg and "tableName" in msg


@pytest.mark.parametrize("keys, defs, expect", [
    ([{"AttributeName": "a", "KeyType": "RANGE"}], [{"AttributeName": "a", "AttributeType": "S"}],
     "Invalid KeySchema: The first KeySchemaElement is not a HASH key type"),
    ([{"AttributeName": "a", "KeyType": "HASH"}, {"AttributeName": "b", "KeyType": "HASH"}],
     [{"AttributeName": "a", "AttributeType": "S"}, {"AttributeName": "b", "AttributeType": "S"}],
     "Invalid KeySchema: The second KeySchemaElement is not a RANGE key type"),
    ([{"AttributeName": "a", "KeyType": "HASH"}], [{"AttributeName": "b", "AttributeType": "S"}],
     "Some index key attributes are not defined in AttributeDefinitions"),
    ([{"AttributeName": "a", "KeyType": "HASH"}],
     [{"AttributeName": "a", "AttributeType": "S"}, {"AttributeName": "b", "AttributeType": "N"}],
     "Number of attributes in KeySchema does not exactly match number of attributes defined"),
])
def test_key_schema_rules(ddb: Any, keys: Any, defs: Any, expect: str) -> None:
    with pytest.raises(ClientError) as e:
        ddb.create_table(TableName="schema-rules", KeySchema=keys, AttributeDefinitions=defs,
                         BillingMode="PAY_PER_REQUEST")
    code, msg = error_of(e)
    assert code == "ValidationException" and expect in msg
    assert "schema-rules" not in ddb.list_tables()["TableNames"]  # nothing was created


def test_billing_rules(ddb: Any) -> None:
    with pytest.raises(ClientError) as e:
        ddb.create_table(TableName="billing-rules", KeySchema=KEYS, AttributeDefinitions=DEFS)
    assert "must both be specified when BillingMode is PROVISIONED" in error_of(e)[1]
    with pytest.raises(ClientError) as e:
        ddb.create_table(TableName="billing-rules", KeySchema=KEYS, AttributeDefinitions=DEFS,
                         BillingMode="PAY_PER_REQUEST",
                         ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1})
    assert "can be specified when BillingMode is PAY_PER_REQUEST" in error_of(e)[1]


def test_list_tables_paginates(ddb: Any, make_table: Any) -> None:
    made = {make_table() for _ in range(5)}
    first = ddb.list_tables(Limit=2)
    assert len(first["TableNames"]) == 2 and "LastEvaluatedTableName" in first
    pages = ddb.get_paginator("list_tables").paginate(PaginationConfig={"PageSize": 2})
    names = [n for page in pages for n in page["TableNames"]]
    assert made <= set(names) and names == sorted(names) and len(names) == len(set(names))
    assert "_d" not in names  # the endpoint's own metadata table is not a DynamoDB table
    with pytest.raises(ClientError) as e:
        ddb.list_tables(Limit=101)
    assert "Member must have value less than or equal to 100" in error_of(e)[1]


def test_stream_specification_is_described(ddb: Any, make_table: Any) -> None:
    name = make_table(StreamSpecification={"StreamEnabled": True,
                                           "StreamViewType": "NEW_AND_OLD_IMAGES"})
    t = ddb.describe_table(TableName=name)["Table"]
    assert t["StreamSpecification"] == {"StreamEnabled": True,
                                        "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert t["LatestStreamArn"] == f"{t['TableArn']}/stream/{t['LatestStreamLabel']}"


def test_update_table_enables_a_stream_and_changes_billing(ddb: Any, make_table: Any) -> None:
    name = make_table()
    out = ddb.update_table(TableName=name, StreamSpecification={
        "StreamEnabled": True, "StreamViewType": "KEYS_ONLY"})["TableDescription"]
    assert out["StreamSpecification"]["StreamViewType"] == "KEYS_ONLY"
    with pytest.raises(ClientError) as e:
        ddb.update_table(TableName=name, StreamSpecification={
            "StreamEnabled": True, "StreamViewType": "KEYS_ONLY"})
    assert "Table already has an enabled stream" in error_of(e)[1]
    out = ddb.update_table(TableName=name, BillingMode="PROVISIONED", ProvisionedThroughput={
        "ReadCapacityUnits": 3, "WriteCapacityUnits": 4})["TableDescription"]
    assert out["ProvisionedThroughput"]["WriteCapacityUnits"] == 4


@needs("delete_table")
def test_delete_table(ddb: Any, make_table: Any) -> None:
    name = make_table()
    ddb.put_item(TableName=name, Item={"pk": {"S": "a"}})
    out = ddb.delete_table(TableName=name)["TableDescription"]
    assert out["TableStatus"] == "DELETING" and out["TableName"] == name
    ddb.get_waiter("table_not_exists").wait(TableName=name,
                                            WaiterConfig={"Delay": 1, "MaxAttempts": 3})
    assert name not in ddb.list_tables()["TableNames"]
    with pytest.raises(ddb.exceptions.ResourceNotFoundException):
        ddb.delete_table(TableName=name)
    # created again, it is a new, empty table
    ddb.create_table(TableName=name, KeySchema=KEYS, AttributeDefinitions=DEFS,
                     BillingMode="PAY_PER_REQUEST")
    assert "Item" not in ddb.get_item(TableName=name, Key={"pk": {"S": "a"}})


@needs("index")
def test_indexes_are_described_and_added_and_dropped(ddb: Any) -> None:
    ddb.create_table(
        TableName="indexed", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "c", "KeyType": "HASH"},
                   {"AttributeName": "o", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"}
                              for n in ("c", "o", "status", "placed")],
        GlobalSecondaryIndexes=[{
            "IndexName": "by_status", "Projection": {"ProjectionType": "ALL"},
            "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"}]}],
        LocalSecondaryIndexes=[{
            "IndexName": "by_placed", "Projection": {"ProjectionType": "KEYS_ONLY"},
            "KeySchema": [{"AttributeName": "c", "KeyType": "HASH"},
                          {"AttributeName": "placed", "KeyType": "RANGE"}]}])
    t = ddb.describe_table(TableName="indexed")["Table"]
    (gsi,) = t["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == "by_status" and gsi["IndexStatus"] == "ACTIVE"
    assert gsi["Projection"] == {"ProjectionType": "ALL"}
    (lsi,) = t["LocalSecondaryIndexes"]
    assert lsi["IndexName"] == "by_placed" and lsi["Projection"]["ProjectionType"] == "KEYS_ONLY"
    ddb.update_table(TableName="indexed", AttributeDefinitions=[
        {"AttributeName": "region", "AttributeType": "S"}], GlobalSecondaryIndexUpdates=[
        {"Create": {"IndexName": "by_region", "Projection": {"ProjectionType": "INCLUDE",
                                                             "NonKeyAttributes": ["total"]},
                    "KeySchema": [{"AttributeName": "region", "KeyType": "HASH"}]}}])
    names = {g["IndexName"] for g in
             ddb.describe_table(TableName="indexed")["Table"]["GlobalSecondaryIndexes"]}
    assert names == {"by_status", "by_region"}
    ddb.update_table(TableName="indexed",
                     GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "by_region"}}])
    names = {g["IndexName"] for g in
             ddb.describe_table(TableName="indexed")["Table"]["GlobalSecondaryIndexes"]}
    assert names == {"by_status"}


@needs("ttl")
def test_time_to_live(ddb: Any, make_table: Any) -> None:
    name = make_table()
    assert ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"] == {
        "TimeToLiveStatus": "DISABLED"}
    spec = {"Enabled": True, "AttributeName": "expires"}
    assert ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=spec)[
        "TimeToLiveSpecification"] == spec
    assert ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"] == {
        "TimeToLiveStatus": "ENABLED", "AttributeName": "expires"}
    with pytest.raises(ClientError) as e:
        ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=spec)
    assert error_of(e) == ("ValidationException", "TimeToLive is already enabled")
    ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={
        "Enabled": False, "AttributeName": "expires"})
    assert ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"][
        "TimeToLiveStatus"] == "DISABLED"


def test_a_table_made_natively_is_described_with_inferred_types(ddb: Any, server: Any) -> None:
    t = server.store.create_table("native-made", partition_key="id", sort_key="at")
    t.put({"id": "a", "at": 5, "x": "y"})
    desc = ddb.describe_table(TableName="native-made")["Table"]
    assert sorted(desc["AttributeDefinitions"], key=lambda d: d["AttributeName"]) == [
        {"AttributeName": "at", "AttributeType": "N"},
        {"AttributeName": "id", "AttributeType": "S"}]
    assert desc["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    got = ddb.get_item(TableName="native-made", Key={"id": {"S": "a"}, "at": {"N": "5"}})
    assert got["Item"]["x"] == {"S": "y"}
    with pytest.raises(ClientError) as e:  # the endpoint's metadata table is out of reach
        ddb.describe_table(TableName="_d")
    assert "Member must have length greater than or equal to 3" in error_of(e)[1]


@needs("ttl", "expire")
def test_expired_items_go_and_their_stream_records_are_service_deletes(
        ddb: Any, server: Any, make_table: Any) -> None:
    from .conftest import client_for

    name = make_table(StreamSpecification={"StreamEnabled": True,
                                           "StreamViewType": "NEW_AND_OLD_IMAGES"})
    ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={
        "Enabled": True, "AttributeName": "expires"})
    past = str(int(time.time()) - 10)
    ddb.put_item(TableName=name, Item={"pk": {"S": "old"}, "expires": {"N": past}})
    ddb.put_item(TableName=name, Item={"pk": {"S": "new"}, "expires": {"N": "99999999999"}})
    streams = client_for(server.url, "dynamodbstreams")
    arn = ddb.describe_table(TableName=name)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard,
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    removes: list[Any] = []
    deadline = time.monotonic() + 20  # the endpoint runs store.expire() every few seconds
    while not removes:
        assert time.monotonic() < deadline, "the expired item was never deleted"
        out = streams.get_records(ShardIterator=it)
        it = out["NextShardIterator"]
        removes = [r for r in out["Records"] if r["eventName"] == "REMOVE"]
        if not removes:
            time.sleep(0.2)
    (rec,) = removes
    assert rec["dynamodb"]["Keys"] == {"pk": {"S": "old"}}
    assert rec["userIdentity"] == {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"}
    assert "Item" not in ddb.get_item(TableName=name, Key={"pk": {"S": "old"}})
    assert "Item" in ddb.get_item(TableName=name, Key={"pk": {"S": "new"}})
