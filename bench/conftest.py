"""pytest-benchmark fixtures: every backend of the suite on a fresh, prepopulated store.

``pytest bench --benchmark-only`` runs ``test_bench_*.py``; the default ``pytest`` run never
collects ``bench/`` (``testpaths = ["tests"]``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from .backends import Backend, engine_available
from .data import ORDERS, ORDERS_PK, ORDERS_SK, order_item
from .harness import opened

BENCH_BACKENDS = ["regiondb", "raw_lmdb", "sqlite_normal", "sqlite_full"]
PREPOP_CUSTOMERS = 10
PER_CUSTOMER = 100


@pytest.fixture(params=BENCH_BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """An opened backend with ``orders`` holding 10 partitions x 100 order items."""
    if request.param == "regiondb":
        ok, why = engine_available()
        if not ok:
            pytest.skip(why)
    with opened(request.param) as b:
        b.create_table(ORDERS, ORDERS_PK, ORDERS_SK)
        b.put_batch(ORDERS, [order_item(c, o) for c in range(PREPOP_CUSTOMERS)
                             for o in range(PER_CUSTOMER)])
        yield b


@pytest.fixture
def fresh_items() -> Iterator[dict[str, Any]]:
    """An endless supply of order items no test has written yet."""
    return (order_item(1_000 + n // 1000, n % 1000) for n in itertools.count())


def describe(benchmark: Any, backend: Backend, **extra: Any) -> None:
    """Record durability and sizes in the benchmark's ``extra_info``."""
    benchmark.extra_info.update({
        "backend": backend.name, "durable": backend.durable,
        "baseline": backend.name == "raw_lmdb", "guarantees": backend.guarantees, **extra,
    })
