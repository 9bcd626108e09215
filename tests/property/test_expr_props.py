"""Laws of the expression language and of pages (hypothesis).

- printing a parsed expression and parsing the text again gives the same tree;
- a filter on a query yields exactly the unfiltered query filtered in Python;
- paging with any limit yields exactly the unpaged result, in order;
- the segments of a parallel scan partition the table.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import engine
from engine.expr import compare, parse, to_text

names = st.sampled_from(["a", "b", "c", "#n", "#m"])
paths = st.builds(
    lambda head, rest: head + "".join(rest), names,
    st.lists(st.one_of(st.builds(lambda n: "." + n, names),
                       st.builds(lambda i: f"[{i}]", st.integers(0, 20))), max_size=3))
values = st.sampled_from([":v", ":w", ":x"])
operands = st.one_of(paths, values, st.builds(lambda p: f"size({p})", paths))
comparisons = st.one_of(
    st.builds(lambda a, op, b: f"{a} {op} {b}", operands,
              st.sampled_from(["=", "<>", "<", "<=", ">", ">="]), operands),
    st.builds(lambda a, lo, hi: f"{a} BETWEEN {lo} AND {hi}", operands, operands, operands),
    st.builds(lambda a, opts: f"{a} IN ({', '.join(opts)})", operands,
              st.lists(operands, min_size=1, max_size=4)),
    st.builds(lambda f, p: f"{f}({p})", st.sampled_from(["attribute_exists",
                                                          "attribute_not_exists"]), paths),
    st.builds(lambda f, p, v: f"{f}({p}, {v})",
              st.sampled_from(["begins_with", "contains", "attribute_type"]), paths, operands),
)
conditions = st.recursive(
    comparisons,
    lambda inner: st.one_of(
        st.builds(lambda a, b: f"{a} AND {b}", inner, inner),
        st.builds(lambda a, b: f"{a} OR {b}", inner, inner),
        st.builds(lambda a: f"NOT {a}", inner),
        st.builds(lambda a: f"({a})", inner),
    ), max_leaves=8)
plain = st.one_of(paths, values)  # update operands: no size()
set_values = st.one_of(plain, st.builds(lambda a, op, b: f"{a} {op} {b}", plain,
                                        st.sampled_from("+-"), plain),
                       st.builds(lambda p, v: f"if_not_exists({p}, {v})", paths, plain),
                       st.builds(lambda a, b: f"list_append({a}, {b})", plain, plain))
updates = st.builds(
    lambda s, r, a, d: " ".join(x for x in (s, r, a, d) if x),
    st.one_of(st.just(""), st.builds(lambda xs: "SET " + ", ".join(xs), st.lists(
        st.builds(lambda p, v: f"{p} = {v}", paths, set_values), min_size=1, max_size=3))),
    st.one_of(st.just(""), st.builds(lambda xs: "REMOVE " + ", ".join(xs),
                                     st.lists(paths, min_size=1, max_size=3))),
    st.one_of(st.just(""), st.builds(lambda xs: "ADD " + ", ".join(xs), st.lists(
        st.builds(lambda p, v: f"{p} {v}", paths, values), min_size=1, max_size=2))),
    st.one_of(st.just(""), st.builds(lambda xs: "DELETE " + ", ".join(xs), st.lists(
        st.builds(lambda p, v: f"{p} {v}", paths, values), min_size=1, max_size=2))),
).filter(bool)


@given(conditions)
def test_condition_print_reparse(text: str) -> None:
    tree = parse("ConditionExpression", text)
    printed = to_text(tree)
    assert parse("ConditionExpression", printed) == tree
    assert to_text(parse("ConditionExpression", printed)) == printed


@given(updates)
def test_update_print_reparse(text: str) -> None:
    tree = parse("UpdateExpression", text)
    assert parse("UpdateExpression", to_text(tree)) == tree


@given(st.lists(paths, min_size=1, max_size=5))
def test_projection_print_reparse(ps: list[str]) -> None:
    tree = parse("ProjectionExpression", ", ".join(ps))
    assert parse("ProjectionExpression", to_text(tree)) == tree


# -- against a store -------------------------------------------------------------------------

scalars = st.one_of(st.integers(-5, 5), st.sampled_from(["x", "y", "xy"]), st.booleans())
items = st.lists(st.fixed_dictionaries({"s": st.integers(0, 40)},
                                       optional={"a": scalars, "b": scalars}),
                 max_size=40, unique_by=lambda i: i["s"])


@contextmanager
def table(rows: list[dict[str, Any]], deleted: tuple[int, ...] | list[int] = ()
          ) -> Iterator[engine.Table]:
    with tempfile.TemporaryDirectory() as d, \
            engine.open(d, region="r", durable=False) as store:
        t = store.create_table("t", partition_key="p", sort_key="s")
        with store.batch() as b:
            for row in rows:
                b.put(t, {"p": "k", **row})
        for s in deleted:
            t.delete("k", s)  # tombstones inside the range
        yield t


filters = st.sampled_from([
    ("a = :v", {":v": 1}), ("a <> :v", {":v": "x"}), ("a < :v", {":v": 2}),
    ("attribute_exists(b) AND NOT b = :v", {":v": True}),
    ("begins_with(a, :v) OR b >= :w", {":v": "x", ":w": 0}),
    ("a IN (:v, :w)", {":v": 1, ":w": "y"}), ("size(a) = :v", {":v": 2}),
])


def _python_filter(text: str, vals: dict[str, Any], item: dict[str, Any]) -> bool:
    a, b = item.get("a"), item.get("b")
    has_a = "a" in item

    def eq(x: Any, y: Any) -> bool:
        return has_a and compare("=", x, y)

    if text == "a = :v":
        return eq(a, 1)
    if text == "a <> :v":
        return not eq(a, "x")
    if text == "a < :v":
        return has_a and compare("<", a, 2)
    if text.startswith("attribute_exists"):
        return "b" in item and not compare("=", b, True)
    if text.startswith("begins_with"):
        return (isinstance(a, str) and a.startswith("x")) or ("b" in item and
                                                                compare(">=", b, 0))
    if text.startswith("a IN"):
        return eq(a, 1) or eq(a, "y")
    return isinstance(a, str) and len(a) == 2


@settings(max_examples=40)
@given(items, filters, st.booleans())
def test_filter_equals_python_filter(rows: list[dict[str, Any]], f: Any, reverse: bool) -> None:
    text, vals = f
    with table(rows) as t:
        everything = list(t.query("k", reverse=reverse))
        filtered = list(t.query("k", filter=text, values=vals, reverse=reverse))
        assert filtered == [i for i in everything if _python_filter(text, vals, i)]


@settings(max_examples=40)
@given(items, st.lists(st.integers(0, 40), max_size=5), st.integers(1, 12), st.booleans(),
       st.one_of(st.none(), filters))
def test_paging_equals_unpaged(rows: list[dict[str, Any]], deleted: list[int], limit: int,
                               reverse: bool, f: Any) -> None:
    kw: dict[str, Any] = {} if f is None else {"filter": f[0], "values": f[1]}
    with table(rows, deleted) as t:
        whole = list(t.query("k", reverse=reverse, **kw))
        paged: list[dict[str, Any]] = []
        start = None
        for _ in range(100):
            page = t.query_page("k", limit=limit, reverse=reverse, start=start, **kw)
            assert page.scanned <= limit and len(page.items) <= page.scanned
            paged += page.items
            start = page.last_key
            if start is None:
                break
        assert paged == whole


@settings(max_examples=30)
@given(items, st.integers(1, 6), st.integers(1, 10))
def test_segments_partition_the_table(rows: list[dict[str, Any]], n: int, limit: int) -> None:
    with table(rows) as t:
        whole = sorted(i["s"] for i in t.scan())
        seen: list[int] = []
        for seg in range(n):
            start = None
            while True:
                page = t.scan_page(limit=limit, segment=seg, total_segments=n, start=start)
                seen += [i["s"] for i in page.items]
                start = page.last_key
                if start is None:
                    break
        assert sorted(seen) == whole
