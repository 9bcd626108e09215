"""engine.expr alone: parsing, printing, binding, evaluation, update planning, projection."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from engine import ValidationError
from engine.expr import (
    Expressions,
    check_number,
    compile_condition,
    key_parts,
    parse,
    plan_update,
    project,
    to_text,
)
from engine.expr.numbers import add, subtract

ITEM: dict[str, Any] = {
    "id": "o1", "status": "NEW", "total": 10, "price": Decimal("2.5"), "f": 0.1,
    "tags": {"a", "b"}, "nums": {1, 2}, "bin": b"\x01\x02", "ok": True, "none": None,
    "lines": [{"sku": "x", "qty": 1}, {"sku": "y", "qty": 2}],
    "address": {"city": "Pune", "zip": "411001"},
}


def cond(text: str, item: dict[str, Any] | None = ITEM, **values: Any) -> bool:
    return compile_condition(text, values={f":{k}": v for k, v in values.items()} or None)(item)


# -- comparisons and the type rules ------------------------------------------------------------


@pytest.mark.parametrize("text,values,want", [
    ("status = :v", {"v": "NEW"}, True),
    ("status <> :v", {"v": "NEW"}, False),
    ("total = :v", {"v": Decimal("10.0")}, True),  # numbers compare as decimals
    ("f = :v", {"v": Decimal("0.1")}, True),
    ("total < :v", {"v": 11}, True),
    ("total >= :v", {"v": 10.0}, True),
    ("status < :v", {"v": "OLD"}, True),
    ("bin > :v", {"v": b"\x01"}, True),
    ("total = :v", {"v": "10"}, False),  # different types: false, not an error
    ("total <> :v", {"v": "10"}, True),
    ("missing = :v", {"v": 1}, False),
    ("missing <> :v", {"v": 1}, True),   # DynamoDB: a missing attribute is not equal
    ("missing < :v", {"v": 1}, False),
    ("ok = :v", {"v": True}, True),
    ("ok = :v", {"v": 1}, False),        # BOOL is not N
    ("none = :v", {"v": None}, True),
    ("tags = :v", {"v": {"b", "a"}}, True),   # sets are unordered
    ("nums = :v", {"v": {1.0, Decimal(2)}}, True),
    ("address = :v", {"v": {"zip": "411001", "city": "Pune"}}, True),
    ("lines[1].qty = :v", {"v": 2}, True),
    ("lines[5].qty = :v", {"v": 2}, False),
    ("address.city = :v", {"v": "Pune"}, True),
    ("total BETWEEN :a AND :b", {"a": 1, "b": 10}, True),
    ("total BETWEEN :a AND :b", {"a": 11, "b": 20}, False),
    ("status IN (:a, :b)", {"a": "OLD", "b": "NEW"}, True),
    ("status IN (:a)", {"a": "OLD"}, False),
    ("missing IN (:a)", {"a": "OLD"}, False),
])
def test_comparisons(text: str, values: dict[str, Any], want: bool) -> None:
    assert cond(text, **values) is want


def test_paths_compare_with_paths() -> None:
    assert cond("total > address.zip") is False  # N vs S
    assert cond("lines[0].qty < lines[1].qty") is True


@pytest.mark.parametrize("text,want", [
    ("attribute_exists(status)", True),
    ("attribute_exists(address.city)", True),
    ("attribute_exists(lines[2])", False),
    ("attribute_not_exists(nope)", True),
    ("attribute_type(total, :n)", True),
    ("attribute_type(tags, :ss)", True),
    ("attribute_type(nums, :ns)", True),
    ("attribute_type(ok, :b)", True),
    ("begins_with(status, :ne)", True),
    ("begins_with(address.zip, :ne)", False),
    ("contains(status, :e)", True),
    ("contains(tags, :a)", True),
    ("contains(nums, :one)", True),
    ("contains(tags, :one)", False),
    ("size(lines) = :two", True),
    ("size(status) = :three", True),
    ("size(total) = :two", False),   # size of a number: no value, so false
    ("size(bin) = :two", True),
    ("size(address) > :one", True),
])
def test_functions(text: str, want: bool) -> None:
    values = {":n": "N", ":ss": "SS", ":ns": "NS", ":b": "BOOL", ":ne": "NE", ":e": "E",
              ":a": "a", ":one": 1, ":two": 2, ":three": 3}
    used = {k: v for k, v in values.items() if re.search(re.escape(k) + r"\b", text)}
    assert compile_condition(text, values=used)(ITEM) is want


def test_contains_on_lists() -> None:
    f = compile_condition("contains(l, :v)", values={":v": {"a": 1}})
    assert f({"l": [1, {"a": 1}]}) and not f({"l": [{"a": True}]})


def test_precedence_not_and_or() -> None:
    # NOT binds tighter than AND, AND tighter than OR
    t = parse("ConditionExpression", "NOT a = :x AND b = :y OR c = :z")
    assert to_text(t) == "NOT a = :x AND b = :y OR c = :z"
    assert type(t).__name__ == "Or" and type(t.left).__name__ == "And"  # type: ignore[union-attr]
    values = {":x": 1, ":y": 2, ":z": 3}
    f = compile_condition("NOT a = :x AND b = :y OR c = :z", values=values)
    assert f({"a": 2, "b": 2}) and f({"c": 3}) and not f({"a": 1, "b": 2})
    g = compile_condition("NOT (a = :x AND b = :y OR c = :z)", values=values)
    assert not g({"c": 3}) and g({})


def test_keywords_are_case_insensitive() -> None:
    assert cond("status = :v and not total between :a AND :b", v="NEW", a=0, b=1)


def test_missing_item_is_empty() -> None:
    assert cond("attribute_not_exists(id)", None)
    assert not cond("attribute_exists(id)", None)


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text,match", [
    ("status = ", 'Syntax error; token: "<EOF>"'),
    ("status == :v", 'Syntax error; token: "="'),
    ("status = :v AND", 'Syntax error; token: "<EOF>"'),
    ("(status = :v", 'Syntax error; token: "<EOF>"'),
    ("status = :v)", r'Syntax error; token: "\)"'),
    ("status ! :v", 'Syntax error; token: "!"'),
    ("a[x] = :v", 'Syntax error; token: "x"'),
    ("nosuch(a)", "Invalid function name; function: nosuch"),
    ("attribute_exists(a, b)", "Incorrect number of operands"),
    ("size(:v) = :v", "size"),
    ("if_not_exists(a, :v) = :v", "not allowed"),
    ("", "can not be empty"),
])
def test_syntax_errors(text: str, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        compile_condition(text, values={":v": 1})


def test_expression_size_limit() -> None:
    text = " OR ".join(["a = :v"] * 700)
    with pytest.raises(ValidationError, match="Expression size has exceeded the maximum"):
        compile_condition(text, values={":v": 1})


def test_placeholder_errors() -> None:
    with pytest.raises(ValidationError, match="attribute value used in expression is not "
                                              "defined; attribute value: :x"):
        compile_condition("a = :x")
    with pytest.raises(ValidationError, match="attribute name used in the document path is "
                                              "not defined; attribute name: #n"):
        compile_condition("#n = :x", values={":x": 1})
    with pytest.raises(ValidationError, match=r"ExpressionAttributeValues unused in "
                                              r"expressions: keys: \{:y\}"):
        compile_condition("a = :x", values={":x": 1, ":y": 2})
    with pytest.raises(ValidationError, match=r"ExpressionAttributeNames unused in "
                                              r"expressions: keys: \{#a, #b\}"):
        compile_condition("a = :x", names={"#b": "b", "#a": "a"}, values={":x": 1})
    with pytest.raises(ValidationError, match="invalid key"):
        compile_condition("a = :x", values={"x": 1})
    with pytest.raises(ValidationError, match="invalid key"):
        compile_condition("a = :x", names={"n": "a"}, values={":x": 1})


def test_unused_rule_spans_one_call() -> None:
    ex = Expressions({"#s": "status"}, {":a": 1, ":b": 2})
    ex.bind_condition("#s = :a")
    ex.bind_update("SET total = :b")
    ex.finish()  # every placeholder used by one of the two


@pytest.mark.parametrize("text,values,match", [
    ("begins_with(a, :n)", {":n": 1}, "operator or function: begins_with, operand type: N"),
    ("attribute_type(a, :t)", {":t": "X"}, "Invalid attribute type name found; type: X"),
    ("a < :m", {":m": {"x": 1}}, "operator or function: <, operand type: M"),
    ("a BETWEEN :hi AND :lo", {":hi": 5, ":lo": 1}, "BETWEEN operator requires upper bound"),
    ("attribute_exists(:v)", {":v": 1}, "requires a document path"),
])
def test_operand_type_errors(text: str, values: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        compile_condition(text, values=values)


# -- printing --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,text", [
    ("ConditionExpression", "a.b[2].#c = :v OR NOT (x <> :w AND size(l) >= :n)"),
    ("ConditionExpression", "a IN (:a, :b, :c) AND b BETWEEN :lo AND :hi"),
    ("ConditionExpression", "(a = :a OR b = :b) AND c = :c"),
    ("UpdateExpression", "SET a = a + :n, b = if_not_exists(b, :z), c = list_append(c, :l) "
                         "REMOVE d[1], e ADD f :one DELETE g :s"),
    ("ProjectionExpression", "a, b.c, #d[3]"),
])
def test_print_reparse(kind: str, text: str) -> None:
    tree = parse(kind, text)
    assert parse(kind, to_text(tree)) == tree


def test_parse_is_cached() -> None:
    assert parse("ConditionExpression", "q = :v") is parse("ConditionExpression", "q = :v")


# -- numbers ---------------------------------------------------------------------------------


def test_number_rules() -> None:
    assert add(1, 2) == 3 and type(add(1, 2)) is int
    assert add(0.1, 0.2) == 0.3 and type(add(0.1, 0.2)) is float
    assert add(Decimal("0.1"), 1) == Decimal("1.1")
    assert subtract(10, Decimal("0.5")) == Decimal("9.5")
    check_number(Decimal("9.9999999999999999999999999999999999999E+125"))
    check_number(Decimal("1E-130"))
    with pytest.raises(ValidationError, match="Number overflow"):
        add(Decimal("9.9999999999999999999999999999999999999E+125"), Decimal("1E+125"))
    with pytest.raises(ValidationError, match="Number underflow"):
        check_number(Decimal("1E-131"))
    with pytest.raises(ValidationError, match="38 significant digits"):
        add(10**37, Decimal("0.1"))
    with pytest.raises(ValidationError, match="38 significant digits"):
        add(10**38, 1)


# -- update planning -------------------------------------------------------------------------


def plan(text: str, item: dict[str, Any] | None = ITEM, names: dict[str, str] | None = None,
         **values: Any) -> Any:
    ex = Expressions(names, {f":{k}": v for k, v in values.items()})
    bound = ex.bind_update(text, ("id",))
    ex.finish()
    return plan_update(bound, item)


def test_plan_top_level_actions() -> None:
    a = plan("SET total = total + :n, #s = :s REMOVE none ADD views :n, tags :t DELETE nums :d",
             names={"#s": "status"}, n=5, s="PAID", t={"c"}, d={1})
    assert a.set == {"total": 15, "status": "PAID"}
    assert a.remove == {"none"}
    assert a.add == {"views": 5, "tags": {"c"}}
    assert a.delete == {"nums": {1}}


def test_plan_nested_edits_become_top_level_sets() -> None:
    a = plan("SET address.city = :c, lines[0].qty = lines[0].qty + :one, lines[9] = :new "
             "REMOVE address.zip, lines[1] ADD address.n :one",
             c="Mumbai", one=1, new={"sku": "z"})
    assert a.set["address"] == {"city": "Mumbai", "n": 1}
    assert a.set["lines"] == [{"sku": "x", "qty": 2}, {"sku": "z"}]
    assert not a.add and not a.remove
    assert ITEM["address"] == {"city": "Pune", "zip": "411001"}  # the old item is untouched


def test_plan_right_hand_sides_read_the_old_item() -> None:
    a = plan("SET a = b, b = a", {"id": 1, "a": 1, "b": 2})
    assert a.set == {"a": 2, "b": 1}


def test_plan_remove_list_positions_are_the_old_ones() -> None:
    a = plan("REMOVE l[0], l[2]", {"id": 1, "l": [0, 1, 2, 3]})
    assert a.set == {"l": [1, 3]}


def test_plan_functions() -> None:
    a = plan("SET a = if_not_exists(a, :z), b = if_not_exists(total, :z), "
             "c = list_append(:l, lines)", z=0, l=[0])
    assert a.set["a"] == 0 and a.set["b"] == 10 and a.set["c"][0] == 0


@pytest.mark.parametrize("text,values,match", [
    ("SET a = :v, a = :w", {"v": 1, "w": 2}, "Two document paths overlap"),
    ("SET address.city = :v REMOVE address", {"v": 1}, "Two document paths overlap"),
    ("SET l[0] = :v, l.x = :w", {"v": 1, "w": 2}, "Two document paths conflict"),
    ("SET id = :v", {"v": 1}, "Cannot update attribute id. This attribute is part of the key"),
    ("REMOVE id", {}, "part of the key"),
    ("SET a = :v SET b = :v", {"v": 1}, 'The "SET" section can only be used once'),
    ("SET a = :s + :n", {"s": "x", "n": 1}, "operator or function: \\+, operand type: S"),
    ("ADD a :s", {"s": "x"}, "operator or function: ADD, operand type: S"),
    ("DELETE a :n", {"n": 1}, "operator or function: DELETE, operand type: N"),
    ("SET a = list_append(:n, :n)", {"n": 1}, "list_append, operand type: N"),
    ("SET a = size(b)", {}, "not allowed in an update"),
    ("SET a :v", {"v": 1}, 'Syntax error; token: ":v"'),
])
def test_update_static_errors(text: str, values: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        plan(text, **values)


@pytest.mark.parametrize("text,values,match", [
    ("SET total = status + :n", {"n": 1}, "incorrect data type"),
    ("SET nope2 = nope + :n", {"n": 1}, "refers to an attribute that does not exist"),
    ("SET nope.x = :n", {"n": 1}, "document path provided in the update expression is invalid"),
    ("SET status.x = :n", {"n": 1}, "document path provided in the update expression is "
                                    "invalid"),
    ("SET address[0] = :n", {"n": 1}, "invalid for update"),
    ("SET x = list_append(status, :l)", {"l": [1]}, "incorrect data type"),
    ("ADD address.city :n", {"n": 1}, "incorrect data type"),
    ("SET total = :big + :big", {"big": Decimal("9E+125")}, "Number overflow"),
    ("SET total = total + :big", {"big": Decimal("9E+125")}, "38 significant digits"),
])
def test_update_runtime_errors(text: str, values: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        plan(text, **values)


# -- projection and key conditions -----------------------------------------------------------


def test_projection() -> None:
    ex = Expressions({"#a": "address"})
    paths = ex.bind_projection("id, #a.city, lines[1].sku, lines[0], nope, tags")
    ex.finish()
    assert project(ITEM, paths) == {
        "id": "o1", "address": {"city": "Pune"}, "lines": [{"sku": "x", "qty": 1}, {"sku": "y"}],
        "tags": {"a", "b"}}
    with pytest.raises(ValidationError, match="overlap"):
        Expressions().bind_projection("a, a.b")


def test_key_conditions() -> None:
    ex = Expressions(None, {":p": "c1", ":a": 1, ":b": 5})
    kc = key_parts(ex.bind_condition("pk = :p AND sk BETWEEN :a AND :b", "KeyConditionExpression"))
    assert [(p.attribute, p.op, p.values) for p in kc.parts] == [
        ("pk", "=", ("c1",)), ("sk", "BETWEEN", (1, 5))]
    for bad, match in [("pk = :p OR sk = :a", "Invalid operator"),
                       ("pk <> :p", "Invalid operator"),
                       ("pk = :p AND pk = :a", "one condition per key"),
                       ("pk.x = :p", "key attribute name")]:
        ex = Expressions(None, {":p": "c1", ":a": 1})
        with pytest.raises(ValidationError, match=match):
            key_parts(ex.bind_condition(bad, "KeyConditionExpression"))
