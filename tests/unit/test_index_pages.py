"""Index queries with the DynamoDB data API (issue 12 on issue 13): pages whose ``last_key``
holds the index and table keys, key conditions, filters and projections over an index."""

from __future__ import annotations

from typing import Any

import pytest

import engine
from engine import Index, ValidationError


@pytest.fixture
def orders(store: engine.Store) -> engine.Table:
    t = store.create_table("orders", "customer_id", "order_id", indexes=[
        Index("by_status", "status", "placed_at"),
        Index("by_region", "region", projection="KEYS_ONLY")])
    with store.batch() as b:
        for i in range(23):
            b.put(t, {"customer_id": f"c{i % 4}", "order_id": f"o{i:02}",
                      "status": "NEW" if i % 3 else "OLD", "placed_at": i % 5,
                      "region": "eu", "total": i})
    return t


def _all_pages(t: engine.Table, pk: Any, **kw: Any) -> tuple[list[dict[str, Any]], int]:
    items: list[dict[str, Any]] = []
    start, pages = None, 0
    while True:
        page = t.query_page(pk, start=start, **kw)
        pages += 1
        items += page.items
        if page.last_key is None:
            return items, pages
        start = page.last_key


@pytest.mark.parametrize("reverse", [False, True])
def test_pages_of_an_index_resume_from_index_and_table_keys(orders: engine.Table,
                                                            reverse: bool) -> None:
    want = list(orders.query("NEW", index="by_status", reverse=reverse))
    assert len(want) == 15
    got, pages = _all_pages(orders, "NEW", index="by_status", limit=4, reverse=reverse)
    assert got == want and pages == 4
    first = orders.query_page("NEW", index="by_status", limit=4, reverse=reverse)
    # ties on the index sort key are broken by the table key, so last_key needs both
    assert set(first.last_key or {}) == {"status", "placed_at", "customer_id", "order_id"}
    assert first.scanned == 4


def test_key_conditions_filters_and_projections_on_an_index(orders: engine.Table) -> None:
    got = list(orders.query("NEW", index="by_status", key="placed_at BETWEEN :a AND :b",
                            values={":a": 1, ":b": 2, ":n": 10}, filter="#t > :n",
                            names={"#t": "total"}, projection="order_id, #t"))
    want = [{"order_id": o["order_id"], "total": o["total"]}
            for o in orders.query("NEW", index="by_status", between=(1, 2)) if o["total"] > 10]
    assert got == want and got
    page = orders.query_page("NEW", index="by_status", filter="#t > :n", names={"#t": "total"},
                             values={":n": 100}, limit=5)
    assert page.items == [] and page.scanned == 5 and page.last_key is not None
    keys_only, pages = _all_pages(orders, "eu", index="by_region", limit=10)
    assert pages == 3 and all(set(i) == {"customer_id", "order_id", "region"}
                              for i in keys_only)


def test_bad_index_start_keys(orders: engine.Table) -> None:
    with pytest.raises(ValidationError, match="starting key"):
        orders.query_page("NEW", index="by_status", start={"customer_id": "c1",
                                                           "order_id": "o01"})
    with pytest.raises(ValidationError, match="no index"):
        orders.query_page("NEW", index="nope")
