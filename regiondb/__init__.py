"""regiondb: an embedded, multi-region, active-active storage engine — the one front door.

Re-exports the public API of :mod:`engine` (the local store) and :mod:`replication` (between
nodes), so an application needs one import; the ``regiondb`` command (:mod:`regiondb.cli`) and
the ShopEase demo live here too. Nothing in ``engine`` or ``replication`` imports this package.

>>> import regiondb, tempfile
>>> with regiondb.open(tempfile.mkdtemp(), region="ap-south-1") as store:
...     orders = store.create_table("orders", partition_key="id")
...     orders.put({"id": "o1", "total": 5})
...     orders.get("o1")
{'id': 'o1', 'total': 5}
"""

from __future__ import annotations

from engine import (
    ApplyReport,
    AuthError,
    Batch,
    Change,
    ClockSkewError,
    ConditionFailed,
    Conflict,
    Error,
    ForgottenNodeError,
    Index,
    IntegrityReport,
    LogTruncated,
    ManualClock,
    Page,
    ProtocolError,
    RawChange,
    SchemaError,
    SegmentError,
    Snapshot,
    StorageError,
    Store,
    StoreClosed,
    Table,
    TableDef,
    TableNotFound,
    TransactionCanceled,
    TransportBrokenError,
    TransportError,
    TransportTimeoutError,
    ValidationError,
    open,
)
from replication import (
    NetOptions,
    PeerLag,
    Replicator,
    Server,
    collect_garbage,
    export_changes,
    forget,
    import_changes,
    serve,
    status,
    sync,
    sync_dir,
)

__version__ = "0.2.0"

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
    "NetOptions",
    "Page",
    "PeerLag",
    "ProtocolError",
    "RawChange",
    "Replicator",
    "SchemaError",
    "SegmentError",
    "Server",
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
    "__version__",
    "collect_garbage",
    "export_changes",
    "forget",
    "import_changes",
    "open",
    "serve",
    "status",
    "sync",
    "sync_dir",
]
