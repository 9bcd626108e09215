"""regiondb replication: everything between nodes (segments, files, sockets, the CLI).

The fleet transport, through NATS JetStream, is :mod:`replication.jetstream` (the ``nats``
extra; not imported here, so the core needs no NATS client).

Depends on :mod:`engine`, never the reverse. Offline sync through files::

    >>> import engine, replication, tempfile
    >>> tmp = tempfile.mkdtemp()
    >>> with engine.open(f"{tmp}/a", region="ap-south-1") as a, \\
    ...      engine.open(f"{tmp}/b", region="us-east-1") as b:
    ...     _ = a.create_table("orders", partition_key="id").put({"id": "o1", "total": 5})
    ...     _ = replication.sync_dir(a, f"{tmp}/mailbox")
    ...     _ = replication.sync_dir(b, f"{tmp}/mailbox")
    ...     b.table("orders").get("o1")
    {'id': 'o1', 'total': 5}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.errors import AuthError, ClockSkewError, ForgottenNodeError, ProtocolError, SegmentError

from .exchange import (
    ApplyTotals,
    GapError,
    SegmentReport,
    apply_segment,
    collect_garbage,
    local_state,
    record_peer,
    segments_for,
)
from .files import FileOutcome, ImportReport, export_changes, import_changes
from .mailbox import SyncReport, sync_dir
from .net import (
    AsyncServer,
    NetOptions,
    PeerLag,
    Replicator,
    Server,
    SocketSyncReport,
    serve,
    serve_async,
    status,
    sync,
    sync_async,
)
from .vv import update_acks

if TYPE_CHECKING:
    from engine import Store


def forget(store: Store, node_id: int) -> int:
    """Remove a dead node from the membership for good, so garbage collection can proceed.

    Its segments are refused from now on (``ForgottenNodeError``) and the forgotten set travels
    with every segment and state file, so the other nodes forget it too. Returns the *cut*:
    the node's changes up to it (what this store holds of it) still apply and relay
    everywhere, so members that had received different prefixes of its log end equal; its
    later changes are refused. The cut travels too, and the largest one named wins. A
    forgotten node that comes back must rejoin as a new store (fresh directory) from a
    snapshot. Its ack row is dropped here at once.

    :raises ValidationError: for a bad node id, or our own.
    """
    cut = store.forget(node_id)
    update_acks(store, {})
    return cut


__all__ = [
    "ApplyTotals",
    "AsyncServer",
    "AuthError",
    "ClockSkewError",
    "FileOutcome",
    "ForgottenNodeError",
    "GapError",
    "ImportReport",
    "NetOptions",
    "PeerLag",
    "ProtocolError",
    "Replicator",
    "SegmentError",
    "SegmentReport",
    "Server",
    "SocketSyncReport",
    "SyncReport",
    "apply_segment",
    "collect_garbage",
    "export_changes",
    "forget",
    "import_changes",
    "local_state",
    "record_peer",
    "segments_for",
    "serve",
    "serve_async",
    "status",
    "sync",
    "sync_async",
    "sync_dir",
]
