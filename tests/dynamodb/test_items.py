"""Single-item operations through boto3: typed values round-trip, DynamoDB's limits and
validation, conditions, ReturnValues and ReturnValuesOnConditionCheckFailure."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError

from .conftest import error_of, needs


@pytest.fixture
def table(make_table: Any) -> str:
    return str(make_table(pk="pk", sk="sk", sk_type="N"))


def key(pk: str = "a", sk: str = "1") -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"N": sk}}


def test_every_type_round_trips(ddb: Any, table: str) -> None:
    item = {
        **key(), "s": {"S": "héllo"}, "empty": {"S": ""}, "n": {"N": "-12.5"},
        "big": {"N": "12345678901234567890123456789012345678"}, "tiny": {"N": "1E-130"},
        "b": {"B": b"\x00\xff"}, "t": {"BOOL": True}, "f": {"BOOL": False},
        "nul": {"NULL": True}, "ss": {"SS": ["x", "y"]}, "ns": {"NS": ["1", "2.5"]},
        "bs": {"BS": [b"\x01", b"\x02"]},
        "m": {"M": {"inner": {"L": [{"N": "1"}, {"S": "two"}, {"M": {}}, {"L": []}]}}},
    }
    ddb.put_item(TableName=table, Item=item)
    got = ddb.get_item(TableName=table, Key=key())["Item"]
    assert got["s"] == {"S": "héllo"} and got["empty"] == {"S": ""}
    assert got["n"] == {"N": "-12.5"}
    assert got["big"] == {"N": "12345678901234567890123456789012345678"}
    assert Decimal(got["tiny"]["N"]) == Decimal("1E-130")
    assert got["b"] == {"B": b"\x00\xff"}
    assert got["t"] == {"BOOL": True} and got["f"] == {"BOOL": False}
    assert got["nul"] == {"NULL": True}
    assert sorted(got["ss"]["SS"]) == ["x", "y"]
    assert sorted(Decimal(x) for x in got["ns"]["NS"]) == [1, Decimal("2.5")]
    assert sorted(got["bs"]["BS"]) == [b"\x01", b"\x02"]
    assert got["m"] == item["m"]


def test_numbers_are_normalised_like_dynamodb(ddb: Any, table: str) -> None:
    ddb.put_item(TableName=table, Item={**key(), "a": {"N": "1.50"}, "b": {"N": "100"},
                                        "c": {"N": "-0"}, "d": {"N": "1e3"}})
    got = ddb.get_item(TableName=table, Key=key())["Item"]
    assert (got["a"], got["b"], got["c"], got["d"]) == (
        {"N": "1.5"}, {"N": "100"}, {"N": "0"}, {"N": "1000"})


@pytest.mark.parametrize("value, message", [
    ("abc", "A value provided cannot be converted into a number"),
    ("1" * 39, "Attempting to store more than 38 significant digits in a Number"),
    ("1E126", "Number overflow"),
    ("1E-131", "Number underflow"),
])
def test_number_rules(ddb: Any, table: str, value: str, message: str) -> None:
    with pytest.raises(ClientError) as e:
        ddb.put_item(TableName=table, Item={**key(), "n": {"N": value}})
    code, msg = error_of(e)
    assert code == "ValidationException" and message in msg
    assert "Item" not in ddb.get_item(TableName=table, Key=key())


def test_sets_may_not_be_empty_or_hold_duplicates(ddb: Any, table: str) -> None:
    with pytest.raises(ClientError) as e:
        ddb.put_item(TableName=table, Item={**key(), "s": {"SS": []}})
    assert "An string set  may not be empty" in error_of(e)[1]
    with pytest.raises(ClientError) as e:
        ddb.put_item(TableName=table, Item={**key(), "s": {"NS": ["1", "1.0"]}})
    assert "contains duplicates" in error_of(e)[1]


def test_item_size_limit(ddb: Any, table: str) -> None:
    ddb.put_item(TableName=table, Item={**key(), "v": {"S": "x" * (399 * 1024)}})
    with pytest.raises(ClientError) as e:
        ddb.put_item(TableName=table, Item={**key("b"), "v": {"S": "x" * (400 * 1024)}})
    assert error_of(e) == ("ValidationException",
                           "Item size has exceeded the maximum allowed size")


def test_nesting_limit(ddb: Any, table: str) -> None:
    deep: dict[str, Any] = {"S": "leaf"}
    for _ in range(31):
        deep = {"L": [deep]}
    ddb.put_item(TableName=table, Item={**key(), "d": deep})
    with pytest.raises(ClientError) as e:
        ddb.put_item(TableName=table, Item={**key("b"), "d": {"L": [deep]}})
    assert "Nesting Levels have exceeded supported limits" in error_of(e)[1]


@pytest.mark.parametrize("item, message", [
    ({"sk": {"N": "1"}}, "Missing the key pk in the item"),
    ({"pk": {"N": "1"}, "sk": {"N": "1"}}, "Type mismatch for key pk expected: S actual: N"),
    ({"pk": {"S": ""}, "sk": {"N": "1"}},
     "The AttributeValue for a key attribute cannot contain an empty string value. Key: pk"),
    ({"pk": {"S": "x" * 2049}, "sk": {"N": "1"}}, "Size of hashkey has exceeded"),
])
def test_item_key_rules(ddb: Any, table: str, item: Any, message: str) -> None:
    with pytest.raises(ClientError) as e:
        ddb.put_item(TableName=table, Item=item)
    code, msg = error_of(e)
    assert code == "ValidationException" and message in msg


@pytest.mark.parametrize("k", [
    {"pk": {"S": "a"}}, {"pk": {"S": "a"}, "sk": {"S": "1"}},
    {"pk": {"S": "a"}, "sk": {"N": "1"}, "extra": {"S": "x"}},
])
def test_key_must_match_the_schema(ddb: Any, table: str, k: Any) -> None:
    with pytest.raises(ClientError) as e:
        ddb.get_item(TableName=table, Key=k)
    assert error_of(e) == ("ValidationException",
                           "The provided key element does not match the schema")


def test_malformed_attribute_values(ddb: Any, table: str, server: Any) -> None:
    from .test_http import raw, target

    body = {"TableName": table, "Item": {**key(), "x": {"S": "a", "N": "1"}}}
    import json

    status, out = raw(server, json.dumps(body).encode(), target("PutItem"))
    assert status == 400 and isinstance(out, dict)
    assert "more than one datatypes" in out["message"]
    body = {"TableName": table, "Item": {**key(), "x": {}}}
    status, out = raw(server, json.dumps(body).encode(), target("PutItem"))
    assert status == 400 and isinstance(out, dict) and "AttributeValue is empty" in out["message"]


def test_put_get_delete(ddb: Any, table: str) -> None:
    ddb.put_item(TableName=table, Item={**key(), "v": {"S": "one"}})
    assert ddb.get_item(TableName=table, Key=key(), ConsistentRead=True)["Item"]["v"] == {
        "S": "one"}
    ddb.put_item(TableName=table, Item={**key(), "w": {"S": "two"}})  # replaces the whole item
    assert "v" not in ddb.get_item(TableName=table, Key=key())["Item"]
    ddb.delete_item(TableName=table, Key=key())
    assert "Item" not in ddb.get_item(TableName=table, Key=key())
    ddb.delete_item(TableName=table, Key=key())  # deleting a missing item is no error


def test_missing_table(ddb: Any) -> None:
    with pytest.raises(ddb.exceptions.ResourceNotFoundException):
        ddb.put_item(TableName="missing-table", Item={"pk": {"S": "a"}})


def test_consumed_capacity_when_asked(ddb: Any, table: str) -> None:
    out = ddb.put_item(TableName=table, Item=key(), ReturnConsumedCapacity="TOTAL")
    assert out["ConsumedCapacity"]["TableName"] == table


# -- with the native expression language ------------------------------------------------


@needs("expr")
def test_put_with_condition_and_return_values(ddb: Any, table: str) -> None:
    ddb.put_item(TableName=table, Item={**key(), "v": {"N": "1"}},
                 ConditionExpression="attribute_not_exists(pk)")
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException) as e:
        ddb.put_item(TableName=table, Item={**key(), "v": {"N": "2"}},
                     ConditionExpression="attribute_not_exists(pk)",
                     ReturnValuesOnConditionCheckFailure="ALL_OLD")
    assert error_of(e)[1] == "The conditional request failed"
    assert e.value.response["Item"]["v"] == {"N": "1"}
    old = ddb.put_item(TableName=table, Item={**key(), "v": {"N": "3"}},
                       ConditionExpression="#v = :one", ExpressionAttributeNames={"#v": "v"},
                       ExpressionAttributeValues={":one": {"N": "1"}}, ReturnValues="ALL_OLD")
    assert old["Attributes"]["v"] == {"N": "1"}
    with pytest.raises(ClientError) as e:
        ddb.put_item(TableName=table, Item=key(), ReturnValues="ALL_NEW")
    assert error_of(e)[1] == "Return values set to invalid value"


@needs("expr")
def test_update_expression_and_every_return_value(ddb: Any, table: str) -> None:
    out = ddb.update_item(TableName=table, Key=key(),
                          UpdateExpression="SET #s = :s, n = :one, tags = :tags",
                          ExpressionAttributeNames={"#s": "status"},
                          ExpressionAttributeValues={":s": {"S": "NEW"}, ":one": {"N": "1"},
                                                     ":tags": {"SS": ["a"]}},
                          ReturnValues="ALL_NEW")
    assert out["Attributes"]["status"] == {"S": "NEW"} and out["Attributes"]["pk"] == {"S": "a"}
    out = ddb.update_item(TableName=table, Key=key(), UpdateExpression="SET n = n + :d",
                          ExpressionAttributeValues={":d": {"N": "2"}},
                          ReturnValues="UPDATED_OLD")
    assert out["Attributes"] == {"n": {"N": "1"}}
    out = ddb.update_item(TableName=table, Key=key(), UpdateExpression="ADD tags :t REMOVE #s",
                          ExpressionAttributeNames={"#s": "status"},
                          ExpressionAttributeValues={":t": {"SS": ["b"]}},
                          ReturnValues="UPDATED_NEW")
    assert sorted(out["Attributes"]["tags"]["SS"]) == ["a", "b"]
    out = ddb.update_item(TableName=table, Key=key(), UpdateExpression="SET n = :z",
                          ExpressionAttributeValues={":z": {"N": "0"}})
    assert "Attributes" not in out
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException) as e:
        ddb.update_item(TableName=table, Key=key(), UpdateExpression="SET n = :z",
                        ConditionExpression="n > :z",
                        ExpressionAttributeValues={":z": {"N": "0"}},
                        ReturnValuesOnConditionCheckFailure="ALL_OLD")
    assert e.value.response["Item"]["n"] == {"N": "0"}


@needs("expr")
def test_expression_errors_are_validation_exceptions(ddb: Any, table: str) -> None:
    with pytest.raises(ClientError) as e:
        ddb.update_item(TableName=table, Key=key(), UpdateExpression="SET n = :v",
                        ExpressionAttributeValues={":v": {"N": "1"}, ":unused": {"N": "2"}})
    code, msg = error_of(e)
    assert code == "ValidationException" and "unused" in msg
    with pytest.raises(ClientError) as e:
        ddb.update_item(TableName=table, Key=key(), UpdateExpression="SET = oops")
    assert error_of(e)[0] == "ValidationException"
    with pytest.raises(ClientError) as e:
        ddb.update_item(TableName=table, Key=key(), UpdateExpression="SET pk = :v",
                        ExpressionAttributeValues={":v": {"S": "b"}})
    assert error_of(e)[0] == "ValidationException"
    assert "Item" not in ddb.get_item(TableName=table, Key=key())


@needs("expr")
def test_delete_with_condition_and_all_old(ddb: Any, table: str) -> None:
    ddb.put_item(TableName=table, Item={**key(), "v": {"S": "x"}})
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
        ddb.delete_item(TableName=table, Key=key(), ConditionExpression="v = :y",
                        ExpressionAttributeValues={":y": {"S": "y"}})
    out = ddb.delete_item(TableName=table, Key=key(), ReturnValues="ALL_OLD")
    assert out["Attributes"]["v"] == {"S": "x"}


@needs("expr")
def test_get_with_projection(ddb: Any, table: str) -> None:
    ddb.put_item(TableName=table, Item={**key(), "a": {"S": "1"}, "b": {"M": {"c": {"N": "2"},
                                                                             "d": {"N": "3"}}}})
    got = ddb.get_item(TableName=table, Key=key(), ProjectionExpression="a, #b.c",
                       ExpressionAttributeNames={"#b": "b"})["Item"]
    assert got == {"a": {"S": "1"}, "b": {"M": {"c": {"N": "2"}}}}
    got = ddb.get_item(TableName=table, Key=key(), AttributesToGet=["a"])["Item"]
    assert got == {"a": {"S": "1"}}


@needs("expr")
def test_legacy_expected_and_attribute_updates(ddb: Any, table: str) -> None:
    ddb.put_item(TableName=table, Item={**key(), "v": {"N": "1"}},
                 Expected={"pk": {"Exists": False}})
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
        ddb.put_item(TableName=table, Item=key(), Expected={"pk": {"Exists": False}})
    ddb.update_item(TableName=table, Key=key(), AttributeUpdates={
        "v": {"Action": "ADD", "Value": {"N": "4"}},
        "s": {"Action": "PUT", "Value": {"S": "x"}},
        "l": {"Action": "ADD", "Value": {"L": [{"N": "1"}]}},
    }, Expected={"v": {"ComparisonOperator": "EQ", "AttributeValueList": [{"N": "1"}]}})
    got = ddb.get_item(TableName=table, Key=key())["Item"]
    assert got["v"] == {"N": "5"} and got["s"] == {"S": "x"} and got["l"] == {"L": [{"N": "1"}]}
    ddb.update_item(TableName=table, Key=key(), AttributeUpdates={"s": {"Action": "DELETE"}},
                    Expected={"v": {"Value": {"N": "5"}}, "gone": {"Exists": False}},
                    ConditionalOperator="AND")
    assert "s" not in ddb.get_item(TableName=table, Key=key())["Item"]
    with pytest.raises(ClientError) as e:
        ddb.put_item(TableName=table, Item=key(), Expected={"pk": {"Exists": False}},
                     ConditionExpression="attribute_not_exists(pk)")
    assert "Can not use both expression and non-expression parameters" in error_of(e)[1]
