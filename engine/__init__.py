"""regiondb's local store: one node's replica in LMDB, with HLC versions, per-attribute
last-writer-wins items and a durable change log. Knows nothing of peers, files or sockets.

>>> import engine, tempfile
>>> with engine.open(tempfile.mkdtemp(), region="ap-south-1") as store:
...     orders = store.create_table("orders", partition_key="customer_id", sort_key="order_id")
...     orders.put({"customer_id": "c1", "order_id": "o1", "total": 10})
...     orders.update("c1", "o1", set={"status": "SHIPPED"})["status"]
'SHIPPED'
"""

from __future__ import annotations

# first: decides whether the hot modules load compiled or as pure Python (engine.compiled)
from .compiled import native, native_summary  # isort: skip
from .batch import Batch
from .changes import ApplyReport, Change, Conflict, RawChange
from .clock import ManualClock
from .errors import (
    AuthError,
    ClockSkewError,
    ConditionFailed,
    Error,
    ForgottenNodeError,
    LogTruncated,
    ProtocolError,
    SchemaError,
    SegmentError,
    StorageError,
    StoreClosed,
    TableNotFound,
    TransactionCanceled,
    TransportBrokenError,
    TransportError,
    TransportTimeoutError,
    ValidationError,
)
from .index import Index
from .integrity import IntegrityReport
from .pages import Page
from .store import Snapshot, Store, TableDef, open
from .table import Table

__all__ = [
    "ApplyReport",
    "AuthError",
    "Batch",
    "Change",
    "ClockSkewError",
    "ConditionFailed",
    "Conflict",
    "Error",
    "ForgottenNodeError",
    "Index",
    "IntegrityReport",
    "LogTruncated",
    "ManualClock",
    "Page",
    "ProtocolError",
    "RawChange",
    "SchemaError",
    "SegmentError",
    "Snapshot",
    "StorageError",
    "Store",
    "StoreClosed",
    "Table",
    "TableDef",
    "TableNotFound",
    "TransactionCanceled",
    "TransportBrokenError",
    "TransportError",
    "TransportTimeoutError",
    "ValidationError",
    "native",
    "native_summary",
    "open",
]
