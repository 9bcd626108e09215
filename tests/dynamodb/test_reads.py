"""Query and Scan through boto3: key conditions, filters, projections, Select/COUNT, Limit and
ExclusiveStartKey, boto3's paginators, parallel scan segments and the legacy parameters."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from .conftest import error_of, needs

pytestmark = needs("expr")


@pytest.fixture(scope="module")
def orders(ddb: Any) -> str:
    name = "reads-orders"
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "c", "KeyType": "HASH"},
                   {"AttributeName": "n", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "c", "AttributeType": "S"},
                              {"AttributeName": "n", "AttributeType": "N"}])
    requests = [{"PutRequest": {"Item": {
        "c": {"S": f"c{c}"}, "n": {"N": str(n)}, "total": {"N": str(n * 10)},
        "status": {"S": "SHIPPED" if n % 2 else "NEW"}}}} for c in range(3) for n in range(20)]
    for i in range(0, len(requests), 25):
        ddb.batch_write_item(RequestItems={name: requests[i:i + 25]})
    return name


def ns(items: list[dict[str, Any]]) -> list[int]:
    return [int(i["n"]["N"]) for i in items]


def test_query_key_condition(ddb: Any, orders: str) -> None:
    out = ddb.query(TableName=orders, KeyConditionExpression="c = :c AND n BETWEEN :a AND :b",
                    ExpressionAttributeValues={":c": {"S": "c1"}, ":a": {"N": "3"},
                                               ":b": {"N": "6"}})
    assert ns(out["Items"]) == [3, 4, 5, 6] and out["Count"] == 4 and out["ScannedCount"] == 4
    assert "LastEvaluatedKey" not in out
    out = ddb.query(TableName=orders, KeyConditionExpression="#c = :c AND #n < :x",
                    ExpressionAttributeNames={"#c": "c", "#n": "n"},
                    ExpressionAttributeValues={":c": {"S": "c2"}, ":x": {"N": "3"}},
                    ScanIndexForward=False)
    assert ns(out["Items"]) == [2, 1, 0]


def test_query_filter_limit_and_pages(ddb: Any, orders: str) -> None:
    out = ddb.query(TableName=orders, KeyConditionExpression="c = :c",
                    FilterExpression="#s = :s", Limit=5,
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":c": {"S": "c0"}, ":s": {"S": "SHIPPED"}})
    # Limit counts items read before the filter, as in DynamoDB
    assert out["ScannedCount"] == 5 and ns(out["Items"]) == [1, 3]
    assert out["LastEvaluatedKey"] == {"c": {"S": "c0"}, "n": {"N": "4"}}
    nxt = ddb.query(TableName=orders, KeyConditionExpression="c = :c", Limit=5,
                    ExclusiveStartKey=out["LastEvaluatedKey"],
                    ExpressionAttributeValues={":c": {"S": "c0"}})
    assert ns(nxt["Items"]) == [5, 6, 7, 8, 9]


def test_query_paginator_yields_exactly_the_partition(ddb: Any, orders: str) -> None:
    pages = ddb.get_paginator("query").paginate(
        TableName=orders, KeyConditionExpression="c = :c",
        ExpressionAttributeValues={":c": {"S": "c1"}}, PaginationConfig={"PageSize": 3})
    assert [n for p in pages for n in ns(p["Items"])] == list(range(20))


def test_query_select_count_and_projection(ddb: Any, orders: str) -> None:
    out = ddb.query(TableName=orders, KeyConditionExpression="c = :c", Select="COUNT",
                    ExpressionAttributeValues={":c": {"S": "c1"}})
    assert out["Count"] == 20 and "Items" not in out
    out = ddb.query(TableName=orders, KeyConditionExpression="c = :c AND n = :n",
                    ProjectionExpression="total",
                    ExpressionAttributeValues={":c": {"S": "c1"}, ":n": {"N": "2"}})
    assert out["Items"] == [{"total": {"N": "20"}}]
    with pytest.raises(ClientError) as e:
        ddb.query(TableName=orders, KeyConditionExpression="c = :c", Select="COUNT",
                  ProjectionExpression="total", ExpressionAttributeValues={":c": {"S": "c1"}})
    assert "Cannot specify the ProjectionExpression when choosing to get COUNT" in error_of(e)[1]
    with pytest.raises(ClientError) as e:
        ddb.query(TableName=orders, KeyConditionExpression="c = :c",
                  Select="SPECIFIC_ATTRIBUTES", ExpressionAttributeValues={":c": {"S": "c1"}})
    assert "Must specify the AttributesToGet or ProjectionExpression" in error_of(e)[1]


def test_query_errors(ddb: Any, orders: str) -> None:
    with pytest.raises(ClientError) as e:
        ddb.query(TableName=orders, KeyConditionExpression="n = :n",
                  ExpressionAttributeValues={":n": {"N": "1"}})
    assert error_of(e) == ("ValidationException",
                           "Query condition missed key schema element: c")
    with pytest.raises(ClientError) as e:
        ddb.query(TableName=orders, KeyConditionExpression="c = :c",
                  ExpressionAttributeValues={":c": {"S": "c1"}, ":x": {"S": "unused"}})
    assert "unused" in error_of(e)[1]
    with pytest.raises(ClientError) as e:
        ddb.query(TableName=orders)
    assert "KeyConditionExpression" in error_of(e)[1]


def test_query_legacy_key_conditions_and_filter(ddb: Any, orders: str) -> None:
    out = ddb.query(TableName=orders, KeyConditions={
        "c": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "c2"}]},
        "n": {"ComparisonOperator": "GE", "AttributeValueList": [{"N": "15"}]}},
        QueryFilter={"status": {"ComparisonOperator": "EQ",
                                "AttributeValueList": [{"S": "NEW"}]}},
        AttributesToGet=["n"])
    assert out["Items"] == [{"n": {"N": "16"}}, {"n": {"N": "18"}}]
    assert out["ScannedCount"] == 5


def test_scan_filter_and_paginator(ddb: Any, orders: str) -> None:
    pages = ddb.get_paginator("scan").paginate(
        TableName=orders, FilterExpression="total >= :t",
        ExpressionAttributeValues={":t": {"N": "150"}}, PaginationConfig={"PageSize": 7})
    got = sorted((i["c"]["S"], int(i["n"]["N"])) for p in pages for i in p["Items"])
    assert got == [(f"c{c}", n) for c in range(3) for n in range(15, 20)]
    out = ddb.scan(TableName=orders, Select="COUNT")
    assert out["Count"] == 60
    out = ddb.scan(TableName=orders, ScanFilter={"status": {
        "ComparisonOperator": "BEGINS_WITH", "AttributeValueList": [{"S": "SHIP"}]}})
    assert out["Count"] == 30


def test_parallel_scan_segments_partition_the_table(ddb: Any, orders: str) -> None:
    seen: list[tuple[str, int]] = []
    for seg in range(4):
        for page in ddb.get_paginator("scan").paginate(TableName=orders, Segment=seg,
                                                       TotalSegments=4):
            seen += [(i["c"]["S"], int(i["n"]["N"])) for i in page["Items"]]
    assert sorted(seen) == [(f"c{c}", n) for c in range(3) for n in range(20)]
    with pytest.raises(ClientError) as e:
        ddb.scan(TableName=orders, Segment=4, TotalSegments=4)
    assert "The Segment parameter is zero-based and must be less than parameter TotalSegments" \
        in error_of(e)[1]
    with pytest.raises(ClientError) as e:
        ddb.scan(TableName=orders, Segment=1)
    assert "TotalSegments parameter is required" in error_of(e)[1]


def test_resource_table_query(resource: Any, orders: str) -> None:
    from boto3.dynamodb.conditions import Attr, Key

    t = resource.Table(orders)
    out = t.query(KeyConditionExpression=Key("c").eq("c0") & Key("n").gt(16),
                  FilterExpression=Attr("status").eq("SHIPPED"))
    assert [int(i["n"]) for i in out["Items"]] == [17, 19]


@needs("index")
def test_query_a_global_secondary_index_with_pages(ddb: Any) -> None:
    ddb.create_table(
        TableName="reads-indexed", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "c", "KeyType": "HASH"},
                   {"AttributeName": "n", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "c", "AttributeType": "S"},
                              {"AttributeName": "n", "AttributeType": "N"},
                              {"AttributeName": "status", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{
            "IndexName": "by_status", "Projection": {"ProjectionType": "KEYS_ONLY"},
            "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"},
                          {"AttributeName": "n", "KeyType": "RANGE"}]}])
    for n in range(10):
        item = {"c": {"S": f"c{n % 2}"}, "n": {"N": str(n)}, "total": {"N": "1"}}
        if n % 3:
            item["status"] = {"S": "OPEN"}  # sparse: the others are not in the index
        ddb.put_item(TableName="reads-indexed", Item=item)
    pages = ddb.get_paginator("query").paginate(
        TableName="reads-indexed", IndexName="by_status",
        KeyConditionExpression="#s = :s AND n > :lo", ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "OPEN"}, ":lo": {"N": "1"}},
        PaginationConfig={"PageSize": 2})
    items = [i for p in pages for i in p["Items"]]
    assert ns(items) == [2, 4, 5, 7, 8]
    assert all("total" not in i and set(i) == {"c", "n", "status"} for i in items)
    with pytest.raises(ClientError) as e:
        ddb.query(TableName="reads-indexed", IndexName="nope",
                  KeyConditionExpression="c = :c", ExpressionAttributeValues={":c": {"S": "x"}})
    assert "does not have the specified index: nope" in error_of(e)[1]
    with pytest.raises(ClientError) as e:
        ddb.query(TableName="reads-indexed", IndexName="by_status", ConsistentRead=True,
                  KeyConditionExpression="#s = :s", ExpressionAttributeNames={"#s": "status"},
                  ExpressionAttributeValues={":s": {"S": "OPEN"}})
    assert "Consistent reads are not supported on global secondary indexes" in error_of(e)[1]
