"""BatchWriteItem, BatchGetItem (limits, duplicates, boto3's batch_writer) and
TransactWriteItems / TransactGetItems (CancellationReasons, idempotency tokens)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from .conftest import error_of, needs


def put(pk: str, **attrs: Any) -> dict[str, Any]:
    return {"PutRequest": {"Item": {"pk": {"S": pk}, **attrs}}}


def test_batch_write_and_get(ddb: Any, make_table: Any) -> None:
    a, b = make_table(), make_table()
    out = ddb.batch_write_item(RequestItems={
        a: [put(f"k{i}", v={"N": str(i)}) for i in range(20)],
        b: [put("x"), put("y")]})
    assert out["UnprocessedItems"] == {}
    ddb.batch_write_item(RequestItems={a: [{"DeleteRequest": {"Key": {"pk": {"S": "k0"}}}}]})
    got = ddb.batch_get_item(RequestItems={
        a: {"Keys": [{"pk": {"S": f"k{i}"}} for i in range(3)]},
        b: {"Keys": [{"pk": {"S": "x"}}, {"pk": {"S": "nope"}}]}})
    assert sorted(i["pk"]["S"] for i in got["Responses"][a]) == ["k1", "k2"]
    assert [i["pk"]["S"] for i in got["Responses"][b]] == ["x"]
    assert got["UnprocessedKeys"] == {}


def test_batch_limits_and_duplicates(ddb: Any, make_table: Any) -> None:
    a = make_table()
    with pytest.raises(ClientError) as e:
        ddb.batch_write_item(RequestItems={a: [put(f"k{i}") for i in range(26)]})
    assert error_of(e) == ("ValidationException",
                           "Too many items requested for the BatchWriteItem call")
    with pytest.raises(ClientError) as e:
        ddb.batch_write_item(RequestItems={a: [put("k"), put("k")]})
    assert error_of(e) == ("ValidationException",
                           "Provided list of item keys contains duplicates")
    with pytest.raises(ClientError) as e:
        ddb.batch_get_item(RequestItems={a: {"Keys": [{"pk": {"S": f"k{i}"}}
                                                      for i in range(101)]}})
    assert error_of(e)[1] == "Too many items requested for the BatchGetItem call"
    with pytest.raises(ClientError) as e:
        ddb.batch_get_item(RequestItems={a: {"Keys": [{"pk": {"S": "k"}}] * 2}})
    assert error_of(e)[1] == "Provided list of item keys contains duplicates"
    assert "Item" not in ddb.get_item(TableName=a, Key={"pk": {"S": "k"}})


def test_batch_with_a_missing_table_writes_nothing(ddb: Any, make_table: Any) -> None:
    a = make_table()
    with pytest.raises(ddb.exceptions.ResourceNotFoundException):
        ddb.batch_write_item(RequestItems={a: [put("k")], "missing-tbl": [put("k")]})
    assert "Item" not in ddb.get_item(TableName=a, Key={"pk": {"S": "k"}})


def test_batch_writer(resource: Any, make_table: Any, ddb: Any) -> None:
    name = make_table()
    t = resource.Table(name)
    with t.batch_writer() as w:
        for i in range(60):
            w.put_item(Item={"pk": f"k{i}", "n": i})
        w.delete_item(Key={"pk": "k0"})
    got = ddb.batch_get_item(RequestItems={name: {"Keys": [{"pk": {"S": f"k{i}"}}
                                                           for i in range(60)]}})
    assert len(got["Responses"][name]) == 59


@needs("transactions")
def test_transact_write_all_or_nothing(ddb: Any, make_table: Any) -> None:
    name = make_table()
    ddb.put_item(TableName=name, Item={"pk": {"S": "stock"}, "n": {"N": "1"}})
    ddb.transact_write_items(TransactItems=[
        {"Update": {"TableName": name, "Key": {"pk": {"S": "stock"}},
                    "UpdateExpression": "SET n = n - :one", "ConditionExpression": "n >= :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}}}},
        {"Put": {"TableName": name, "Item": {"pk": {"S": "order1"}}}},
    ])
    with pytest.raises(ddb.exceptions.TransactionCanceledException) as e:
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": name, "Item": {"pk": {"S": "order2"}}}},
            {"Update": {"TableName": name, "Key": {"pk": {"S": "stock"}},
                        "UpdateExpression": "SET n = n - :one",
                        "ConditionExpression": "n >= :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
            {"ConditionCheck": {"TableName": name, "Key": {"pk": {"S": "order1"}},
                                "ConditionExpression": "attribute_exists(pk)"}},
        ])
    code, msg = error_of(e)
    assert msg == ("Transaction cancelled, please refer cancellation reasons for specific "
                   "reasons [None, ConditionalCheckFailed, None]")
    reasons = e.value.response["CancellationReasons"]
    assert [r["Code"] for r in reasons] == ["None", "ConditionalCheckFailed", "None"]
    assert reasons[1]["Item"]["n"] == {"N": "0"}
    assert "Item" not in ddb.get_item(TableName=name, Key={"pk": {"S": "order2"}})


@needs("transactions")
def test_transact_write_rules_and_idempotency(ddb: Any, make_table: Any) -> None:
    name = make_table()
    with pytest.raises(ClientError) as e:
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": name, "Item": {"pk": {"S": "a"}}}},
            {"Delete": {"TableName": name, "Key": {"pk": {"S": "a"}}}}])
    assert error_of(e)[1] == "Transaction request cannot include multiple operations on one item"
    with pytest.raises(ClientError) as e:
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": name, "Item": {"pk": {"S": f"k{i}"}}}} for i in range(101)])
    assert "Member must have length less than or equal to 100" in error_of(e)[1]
    items = [{"Update": {"TableName": name, "Key": {"pk": {"S": "ctr"}},
                         "UpdateExpression": "ADD n :one",
                         "ExpressionAttributeValues": {":one": {"N": "1"}}}}]
    ddb.transact_write_items(TransactItems=items, ClientRequestToken="tok-1")
    ddb.transact_write_items(TransactItems=items, ClientRequestToken="tok-1")  # a retry
    got = ddb.get_item(TableName=name, Key={"pk": {"S": "ctr"}})["Item"]
    assert got["n"] == {"N": "1"}
    with pytest.raises(ClientError) as e:
        ddb.transact_write_items(TransactItems=items[:0] + [
            {"Put": {"TableName": name, "Item": {"pk": {"S": "other"}}}}],
            ClientRequestToken="tok-1")
    assert error_of(e)[0] == "IdempotentParameterMismatchException"


@needs("transactions")
def test_transact_get(ddb: Any, make_table: Any) -> None:
    name = make_table()
    ddb.put_item(TableName=name, Item={"pk": {"S": "a"}, "x": {"S": "1"}, "y": {"S": "2"}})
    out = ddb.transact_get_items(TransactItems=[
        {"Get": {"TableName": name, "Key": {"pk": {"S": "a"}}}},
        {"Get": {"TableName": name, "Key": {"pk": {"S": "b"}}}},
        {"Get": {"TableName": name, "Key": {"pk": {"S": "c"}}, "ProjectionExpression": "x"}},
    ])
    assert out["Responses"][0]["Item"]["y"] == {"S": "2"}
    assert out["Responses"][1] == {} and out["Responses"][2] == {}
    out = ddb.transact_get_items(TransactItems=[
        {"Get": {"TableName": name, "Key": {"pk": {"S": "a"}}, "ProjectionExpression": "#x",
                 "ExpressionAttributeNames": {"#x": "x"}}}])
    assert out["Responses"][0]["Item"] == {"x": {"S": "1"}}
