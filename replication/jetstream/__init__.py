"""The fleet transport: replication through NATS JetStream (the ``nats`` extra).

Beside files (:mod:`replication.files`) and sockets (:mod:`replication.net`), over the same
segments and the same exchange logic: each node publishes its committed changes as segments to
one stream per cluster, consumes everyone else's with a durable consumer, keeps its vv and ack
table in a key-value bucket (garbage collection reads them as it reads mailbox state files) and
bootstraps from a snapshot in an object store when it is new or fell behind the stream's
retention. The stream's order carries no meaning (the HLC merge decides), so transports mix.

>>> import engine, tempfile, time
>>> from replication import jetstream
>>> def holds(store, key):
...     return "orders" in store.tables() and store.table("orders").get(key) is not None
>>> with jetstream.LocalServer(tempfile.mkdtemp()) as broker, \\
...      engine.open(tempfile.mkdtemp(), region="eu") as a, \\
...      engine.open(tempfile.mkdtemp(), region="us") as b, \\
...      jetstream.Replicator(a, [broker.url], cluster="doc") as ra, \\
...      jetstream.Replicator(b, [broker.url], cluster="doc") as rb:
...     _ = a.create_table("orders", partition_key="id").put({"id": "o1", "total": 5})
...     for _ in range(1000):  # a few milliseconds, bounded
...         if holds(b, "o1"):
...             break
...         time.sleep(0.01)
...     b.table("orders").get("o1")
{'id': 'o1', 'total': 5}

Modules: :mod:`.names` (what lives where on the broker), :mod:`.publisher`, :mod:`.consumer`,
:mod:`.members` (rows, acks, garbage collection), :mod:`.snapshots`, :mod:`.rows`,
:mod:`.state` (options and counters), :mod:`.broker` (a local ``nats-server`` for tests and
the demo).
"""

from __future__ import annotations

from .broker import LocalServer, NatsServerNotFound, find_nats_server, start_cluster
from .names import Names
from .replicator import Replicator
from .state import DEFAULT_MAX_AGE, FleetOptions, Rejected

__all__ = [
    "DEFAULT_MAX_AGE",
    "FleetOptions",
    "LocalServer",
    "Names",
    "NatsServerNotFound",
    "Rejected",
    "Replicator",
    "find_nats_server",
    "start_cluster",
]
