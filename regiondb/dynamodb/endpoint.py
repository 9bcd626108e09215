"""The endpoint's state over one store and its table of operations.

:class:`Endpoint` is what every operation handler receives: the store, the table metadata
(:class:`regiondb.dynamodb.meta.Tables`, with a one-second cache of table descriptions so a
hot PutItem loop does not re-read the schema each time), and the transaction tokens. It has no
HTTP in it: :mod:`regiondb.dynamodb.server` calls :meth:`Endpoint.handler`'s result in a
worker thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import engine

from . import batches, items, reads, streams, tables
from .meta import TableInfo, Tables

__all__ = ["OPERATIONS", "STREAM_OPERATIONS", "Endpoint"]

_INFO_TTL = 1.0

OPERATIONS: dict[str, Any] = {**items.OPERATIONS, **reads.OPERATIONS, **batches.OPERATIONS}
TABLE_OPERATIONS: dict[str, Any] = dict(tables.OPERATIONS)
STREAM_OPERATIONS: dict[str, Any] = dict(streams.OPERATIONS)


class Endpoint:
    """DynamoDB's API over one store (no HTTP): ``handler(op)(request dict) -> response``."""

    def __init__(self, store: engine.Store) -> None:
        self.store = store
        self.region = store.region
        self.tables = Tables(store)
        self.tokens = batches.Tokens()
        self.images = streams.Images()
        self._infos: dict[str, tuple[float, TableInfo]] = {}
        self._lock = threading.Lock()

    def info(self, name: str) -> TableInfo:
        """The table's description, cached for a second (control-plane calls refresh it).

        :raises engine.TableNotFound: if there is no such table.
        """
        now = time.monotonic()
        with self._lock:
            hit = self._infos.get(name)
        if hit is not None and now - hit[0] < _INFO_TTL:
            return hit[1]
        info = self.tables.get(name)
        with self._lock:
            self._infos[name] = (now, info)
        return info

    def forget(self, name: str | None = None) -> None:
        """Drop cached descriptions (all, or one table's)."""
        with self._lock:
            if name is None:
                self._infos.clear()
            else:
                self._infos.pop(name, None)

    def _control(self, fn: Callable[[Tables, dict[str, Any]], dict[str, Any]],
                 req: dict[str, Any]) -> dict[str, Any]:
        name = req.get("TableName")
        try:
            return fn(self.tables, req)
        finally:
            self.forget(name if isinstance(name, str) else None)

    def handler(self, op: str, *, streams: bool = False
                ) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
        """The function serving operation ``op`` (``None`` if there is none)."""
        if streams:
            fn = STREAM_OPERATIONS.get(op)
            return None if fn is None else partial(fn, self)
        control = TABLE_OPERATIONS.get(op)
        if control is not None:
            return partial(self._control, control)
        fn = OPERATIONS.get(op)
        return None if fn is None else partial(fn, self)
