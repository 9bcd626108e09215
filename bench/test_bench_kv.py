"""pytest-benchmark versions of the local rows, one test per operation, parametrized by backend.

Run: ``pytest bench --benchmark-only --benchmark-json=bench/results/pytest-bench.json``. State-
changing operations use ``benchmark.pedantic`` with ``iterations=1`` so every round is exactly one
operation (its time is a per-operation latency); ``raw_lmdb`` is the baseline (``extra_info``).
``python -m bench`` is the reference report; these exist for ``--benchmark-compare`` regression
checks.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from .backends import Backend
from .conftest import PER_CUSTOMER, PREPOP_CUSTOMERS, describe
from .data import ORDERS, ORDERS_PK, ORDERS_SK, customer_id, order_id

ROUNDS = 200


def _existing(rnd: random.Random) -> tuple[str, str]:
    return customer_id(rnd.randrange(PREPOP_CUSTOMERS)), order_id(rnd.randrange(PER_CUSTOMER))


@pytest.mark.benchmark(group="put-1-per-txn")
def test_put_single(benchmark: Any, backend: Backend, fresh_items: Any) -> None:
    describe(benchmark, backend, item="order ~210 B CBOR")
    benchmark.pedantic(backend.put, setup=lambda: ((ORDERS, next(fresh_items)), {}),
                       rounds=ROUNDS, iterations=1)


@pytest.mark.benchmark(group="put-batch-1000")
def test_put_batch(benchmark: Any, backend: Backend, fresh_items: Any) -> None:
    describe(benchmark, backend, batch=1000)
    benchmark.pedantic(backend.put_batch,
                       setup=lambda: ((ORDERS, [next(fresh_items) for _ in range(1000)]), {}),
                       rounds=10, iterations=1)


@pytest.mark.benchmark(group="get-hit")
def test_get_hit(benchmark: Any, backend: Backend) -> None:
    describe(benchmark, backend)
    rnd = random.Random(1)
    benchmark.pedantic(backend.get, setup=lambda: ((ORDERS, *_existing(rnd)), {}),
                       rounds=5000, iterations=1)


@pytest.mark.benchmark(group="get-miss")
def test_get_miss(benchmark: Any, backend: Backend) -> None:
    describe(benchmark, backend)
    result = benchmark(backend.get, ORDERS, "no-such-customer", "no-such-order")
    assert result is None


@pytest.mark.benchmark(group="query-100")
def test_query_100(benchmark: Any, backend: Backend) -> None:
    describe(benchmark, backend, items_per_query=100)
    rnd = random.Random(2)
    benchmark.pedantic(lambda pk: backend.query(ORDERS, pk, limit=100),
                       setup=lambda: ((customer_id(rnd.randrange(PREPOP_CUSTOMERS)),), {}),
                       rounds=300, iterations=1)


@pytest.mark.benchmark(group="update-rmw")
def test_update(benchmark: Any, backend: Backend) -> None:
    describe(benchmark, backend)
    rnd = random.Random(3)
    benchmark.pedantic(backend.update,
                       setup=lambda: ((ORDERS, *_existing(rnd), {"status": "SHIPPED"}), {}),
                       rounds=ROUNDS, iterations=1)


@pytest.mark.benchmark(group="delete")
def test_delete(benchmark: Any, backend: Backend, fresh_items: Any) -> None:
    describe(benchmark, backend)

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        item: dict[str, Any] = next(fresh_items)
        backend.put(ORDERS, item)  # untimed: the item to delete
        return (ORDERS, item[ORDERS_PK], item[ORDERS_SK]), {}

    benchmark.pedantic(backend.delete, setup=setup, rounds=ROUNDS, iterations=1)


@pytest.mark.benchmark(group="scan-1000")
def test_scan(benchmark: Any, backend: Backend) -> None:
    describe(benchmark, backend, items=PREPOP_CUSTOMERS * PER_CUSTOMER)
    count = benchmark.pedantic(backend.scan, args=(ORDERS,), rounds=20, iterations=1)
    assert count == PREPOP_CUSTOMERS * PER_CUSTOMER
