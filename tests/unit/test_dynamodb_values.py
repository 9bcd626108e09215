"""The endpoint's pure parts: typed values and DynamoDB's number rules, the legacy-parameter
translation into expressions, and SigV4 verification of botocore-signed requests."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regiondb.dynamodb import legacy, sigv4
from regiondb.dynamodb.errors import DynamoDBError
from regiondb.dynamodb.values import item_size, marshal, number, unmarshal


@pytest.mark.parametrize("text, value", [
    ("1", 1), ("-0", 0), ("1.50", Decimal("1.5")), ("1e3", 1000), ("1E-130", Decimal("1E-130")),
    ("9.9999999999999999999999999999999999999E+125",
     Decimal("9.9999999999999999999999999999999999999E+125")),
])
def test_numbers(text: str, value: Any) -> None:
    got = number(text)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("text, message", [
    ("x", "cannot be converted into a number"), ("", "cannot be converted into a number"),
    ("NaN", "cannot be converted into a number"), ("Infinity", "cannot be converted"),
    ("1" * 39, "more than 38 significant digits"), ("1E126", "Number overflow"),
    ("1E-131", "Number underflow"),
])
def test_bad_numbers(text: str, message: str) -> None:
    with pytest.raises(DynamoDBError) as e:
        number(text)
    assert e.value.code == "ValidationException" and message in e.value.message


values = st.recursive(
    st.none() | st.booleans() | st.text() | st.binary()
    | st.integers(-10**20, 10**20)
    | st.decimals(allow_nan=False, allow_infinity=False, places=5, min_value=-10**9,
                  max_value=10**9)
    | st.frozensets(st.text(), min_size=1) | st.frozensets(st.binary(), min_size=1)
    | st.frozensets(st.integers(-1000, 1000), min_size=1),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12)


def _norm(v: Any) -> Any:
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else v.normalize()
    if isinstance(v, list):
        return [_norm(x) for x in v]
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    return v


@given(values)
def test_marshal_round_trips(v: Any) -> None:
    assert unmarshal(marshal(v)) == _norm(v)


def test_malformed_values() -> None:
    for av, message in [({}, "AttributeValue is empty"),
                        ({"S": "a", "N": "1"}, "more than one datatypes"),
                        ({"SS": []}, "may not be empty"), ({"NS": ["1", "1.0"]}, "duplicates"),
                        ({"NULL": False}, "Null attribute value types must have the value of true"),
                        ({"Q": "x"}, "unknown datatype")]:
        with pytest.raises(DynamoDBError) as e:
            unmarshal(av)
        assert message in e.value.message, av
    with pytest.raises(DynamoDBError) as e:
        unmarshal({"B": "not base64!"})
    assert e.value.code == "SerializationException"
    deep: dict[str, Any] = {"S": "x"}
    for _ in range(32):
        deep = {"L": [deep]}
    with pytest.raises(DynamoDBError) as e:
        unmarshal(deep)
    assert "Nesting Levels" in e.value.message


def test_item_size() -> None:
    assert item_size({"ab": "xyz"}) == 5
    assert item_size({"n": 12345}) == 1 + 4
    assert item_size({"m": {"k": True}}) == 1 + 3 + 1 + 1 + 1


def test_legacy_conditions_become_expressions() -> None:
    b = legacy.Builder()
    text = legacy.conditions(b, {
        "a": {"Exists": False},
        "b": {"Value": {"S": "x"}},
        "c": {"ComparisonOperator": "BETWEEN", "AttributeValueList": [{"N": "1"}, {"N": "2"}]},
        "d": {"ComparisonOperator": "IN", "AttributeValueList": [{"S": "p"}, {"S": "q"}]},
        "e": {"ComparisonOperator": "NOT_CONTAINS", "AttributeValueList": [{"S": "z"}]},
    }, "OR", expected=True)
    assert text == ("(attribute_not_exists(#l0)) OR (#l1 = :l0) OR (#l2 BETWEEN :l1 AND :l2) "
                    "OR (#l3 IN (:l3, :l4)) OR (NOT contains(#l4, :l5))")
    assert b.names == {"#l0": "a", "#l1": "b", "#l2": "c", "#l3": "d", "#l4": "e"}
    assert b.values == {":l0": "x", ":l1": 1, ":l2": 2, ":l3": "p", ":l4": "q", ":l5": "z"}
    with pytest.raises(DynamoDBError) as e:
        legacy.conditions(b, {"a": {"ComparisonOperator": "EQ"}}, None, expected=False)
    assert "Invalid number of argument(s) for the EQ ComparisonOperator" in e.value.message


def test_legacy_attribute_updates_become_an_update_expression() -> None:
    b = legacy.Builder()
    text = legacy.attribute_updates(b, {
        "a": {"Action": "PUT", "Value": {"S": "x"}}, "b": {"Action": "DELETE"},
        "c": {"Action": "ADD", "Value": {"N": "1"}}, "d": {"Action": "DELETE",
                                                          "Value": {"SS": ["t"]}}})
    assert text == "SET #l0 = :l0 REMOVE #l1 ADD #l2 :l1 DELETE #l3 :l2"
    assert legacy.attributes_to_get(b, ["a", "z"]) == "#l0, #l4"


def test_sigv4_verifies_botocore_signatures() -> None:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest(method="POST", url="http://127.0.0.1:8000/", data=b'{"Limit": 1}',
                     headers={"X-Amz-Target": "DynamoDB_20120810.ListTables",
                              "Content-Type": "application/x-amz-json-1.0"})
    SigV4Auth(Credentials("AKID", "sekrit"), "dynamodb", "ap-south-1").add_auth(req)
    req.headers["Host"] = "127.0.0.1:8000"
    headers = {k.lower(): v for k, v in req.headers.items()}
    creds = {"AKID": "sekrit"}
    assert sigv4.verify(creds, "POST", "/", "", headers, b'{"Limit": 1}') == "AKID"
    with pytest.raises(DynamoDBError) as e:
        sigv4.verify({"AKID": "other"}, "POST", "/", "", headers, b'{"Limit": 1}')
    assert e.value.code == "InvalidSignatureException"
    with pytest.raises(DynamoDBError) as e:
        sigv4.verify(creds, "POST", "/", "", {**headers, "x-amz-target": "x"},
                     b'{"Limit": 1}')
    assert e.value.code == "InvalidSignatureException"
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20)
    with pytest.raises(DynamoDBError) as e:
        sigv4.verify(creds, "POST", "/", "", headers, b'{"Limit": 1}', now=later)
    assert "Signature expired" in e.value.message


def test_credentials_files(tmp_path: Any) -> None:
    plain = tmp_path / "keys.txt"
    plain.write_text("# comment\nAKID1 s1\nAKID2:s2\n")
    assert sigv4.load_credentials(plain) == {"AKID1": "s1", "AKID2": "s2"}
    ini = tmp_path / "credentials"
    ini.write_text("[default]\naws_access_key_id = AK\naws_secret_access_key = SK\n")
    assert sigv4.load_credentials(ini) == {"AK": "SK"}
    bad = tmp_path / "bad.txt"
    bad.write_text("justonefield\n")
    with pytest.raises(ValueError, match="expected 'ACCESS_KEY_ID SECRET'"):
        sigv4.load_credentials(bad)
