"""Fixtures the unit tests share: tables on the ``store`` fixture (tests/conftest.py)."""

from __future__ import annotations

import pytest

import engine


@pytest.fixture
def orders(store: engine.Store) -> engine.Table:
    """An ``orders`` table keyed (customer_id, order_id); the index tests define their own."""
    return store.create_table("orders", partition_key="customer_id", sort_key="order_id")


@pytest.fixture
def users(store: engine.Store) -> engine.Table:
    """A ``users`` table keyed by ``id`` alone."""
    return store.create_table("users", partition_key="id")
