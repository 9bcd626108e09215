"""The data every backend stores: e-commerce order items (~200 B CBOR) and YCSB 1 KB records.

Generated deterministically from a seed so every backend gets byte-identical items.
"""

from __future__ import annotations

import random
from typing import Any

import cbor2

__all__ = [
    "ORDERS",
    "ORDERS_PK",
    "ORDERS_SK",
    "USERTABLE",
    "YCSB_FIELDS",
    "YCSB_PK",
    "YCSB_PARTITION",
    "YCSB_SK",
    "customer_id",
    "mean_cbor_size",
    "order_id",
    "order_item",
    "ycsb_record",
    "ycsb_value",
]

ORDERS = "orders"
ORDERS_PK = "customer_id"
ORDERS_SK = "order_id"

# YCSB records live in one partition with the YCSB key as sort key, so that workload E's
# "scan N records from a start key" is one ordered range read in every backend.
USERTABLE = "usertable"
YCSB_PK = "table"
YCSB_SK = "ycsb_key"
YCSB_PARTITION = "usertable"
YCSB_FIELDS = [f"field{i}" for i in range(10)]

_STATUSES = ["PLACED", "PAID", "PACKED", "SHIPPED", "DELIVERED"]
_CITIES = ["Mumbai", "Ashburn", "Dublin", "Pune", "Frankfurt", "Oregon"]


def customer_id(n: int) -> str:
    """Partition key of customer ``n``."""
    return f"cust-{n:07d}"


def order_id(n: int) -> str:
    """Sort key of order ``n`` (zero-padded so string order is numeric order)."""
    return f"ord-{n:010d}"


def order_item(cust: int, order: int) -> dict[str, Any]:
    """An order line of about 200 bytes once CBOR-encoded; deterministic in its arguments."""
    rnd = random.Random(cust * 1_000_003 + order)
    return {
        ORDERS_PK: customer_id(cust),
        ORDERS_SK: order_id(order),
        "status": _STATUSES[rnd.randrange(len(_STATUSES))],
        "sku": f"SKU-{rnd.randrange(10**8):08d}",
        "title": "Steel water bottle, 750 ml, blue",
        "qty": rnd.randint(1, 5),
        "price_cents": rnd.randint(199, 99_999),
        "currency": "EUR",
        "ship_to": {"city": _CITIES[rnd.randrange(len(_CITIES))],
                    "zip": f"{rnd.randrange(10**5):05d}"},
        "created_at": 1_700_000_000_000 + cust * 7919 + order,
        "gift": bool(rnd.getrandbits(1)),
    }


def ycsb_value(rnd: random.Random) -> str:
    """One YCSB field value: 100 printable characters."""
    return rnd.randbytes(50).hex()


def ycsb_record(key: str, rnd: random.Random) -> dict[str, Any]:
    """A YCSB record: key attributes plus ``field0``..``field9`` of 100 characters (~1 KB)."""
    item: dict[str, Any] = {YCSB_PK: YCSB_PARTITION, YCSB_SK: key}
    for f in YCSB_FIELDS:
        item[f] = ycsb_value(rnd)
    return item


def mean_cbor_size(items: list[dict[str, Any]]) -> float:
    """Mean CBOR-encoded size of the items, in bytes."""
    return sum(len(cbor2.dumps(i)) for i in items) / max(1, len(items))
