"""A differential test of FilterExpression semantics: engine.expr against moto's DynamoDB.

Items with a few attributes of mixed types and conditions from a small grammar are filtered
by both. Where moto cannot evaluate an expression (it raises for ``size()`` in filters and for
ordering comparisons across types, which DynamoDB answers with false), the example is skipped,
and booleans are left out (moto takes ``True`` for ``1``): DynamoDB's documentation decides
those, and tests/SPEC.md lists them.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine import ValidationError
from engine.expr import compile_condition

moto = pytest.importorskip("moto")
boto3 = pytest.importorskip("boto3")

pytestmark = pytest.mark.integration

# no booleans: moto compares True equal to 1 (Python's rule); DynamoDB's BOOL is not a number
scalars = st.one_of(st.integers(-3, 3).map(Decimal), st.sampled_from(["x", "xy", "y", "s"]))
values = st.one_of(scalars, st.frozensets(st.sampled_from(["s", "t", "x"]), min_size=1)
                   .map(set), st.lists(st.sampled_from([Decimal(1), "s"]), max_size=2))
rows = st.lists(st.fixed_dictionaries({}, optional={"a": values, "b": scalars}),
                min_size=1, max_size=6)
attr = st.sampled_from(["a", "b"])
comparison = st.one_of(
    st.builds(lambda p, op: f"{p} {op} :v", attr,
              st.sampled_from(["=", "<>", "<", "<=", ">", ">="])),
    st.builds(lambda p: f"{p} BETWEEN :v AND :w", attr),
    st.builds(lambda p: f"{p} IN (:v, :w)", attr),
    st.builds(lambda f, p: f"{f}({p})", st.sampled_from(["attribute_exists",
                                                          "attribute_not_exists"]), attr),
    st.builds(lambda p: f"contains({p}, :v)", attr),
    st.builds(lambda p: f"begins_with({p}, :s)", attr),
)
conditions = st.recursive(comparison, lambda inner: st.one_of(
    st.builds(lambda a, b: f"({a}) AND ({b})", inner, inner),
    st.builds(lambda a, b: f"({a}) OR ({b})", inner, inner),
    st.builds(lambda a: f"NOT ({a})", inner)), max_leaves=4)
_names = itertools.count()


@pytest.fixture(scope="module")
def dynamodb() -> Iterator[Any]:
    env = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with moto.mock_aws():
            yield boto3.resource("dynamodb", region_name="us-east-1")
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                  HealthCheck.filter_too_much])
@given(rows=rows, text=conditions, v=scalars, w=scalars)
def test_filters_agree_with_moto(dynamodb: Any, rows: list[dict[str, Any]], text: str,
                                 v: Any, w: Any) -> None:
    vals = {k: x for k, x in ((":v", v), (":w", w), (":s", "x")) if k in text}
    try:
        ours = compile_condition(text, values=vals or None)
    except ValidationError:  # BETWEEN with its bounds reversed: DynamoDB refuses, moto does not
        assume(False)
    table = dynamodb.create_table(
        TableName=f"t{next(_names)}", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST")
    items = [{"id": i, **row} for i, row in enumerate(rows)]
    for item in items:
        table.put_item(Item=item)
    kwargs: dict[str, Any] = {"FilterExpression": text}
    if vals:
        kwargs["ExpressionAttributeValues"] = vals
    try:
        theirs = sorted(int(i["id"]) for i in table.scan(**kwargs)["Items"])
    except Exception:  # moto cannot evaluate it (see the module docstring)
        assume(False)
    assert sorted(i["id"] for i in items if ours(i)) == theirs
