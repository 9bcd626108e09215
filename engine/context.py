"""Context: what the engine's modules need of an open store, and nothing more.

:class:`engine.Store` is the public face of a replica; the modules that do its work
(:mod:`engine.writepath`, :mod:`engine.apply`, :mod:`engine.changelog`, :mod:`engine.retention`,
:mod:`engine.schema`, :mod:`engine.lineage`, :mod:`engine.table`, …) take a :class:`Context`
instead of the Store: the environment (``StoreClosed`` once closed), the node's identity, the
wall clock and the limits it was opened with, the commit listeners, and the cache of table
definitions. The Store owns one context and passes it; the modules never see the Store, so
imports run one way (``store`` → modules → ``context``) and nothing reaches into the Store's
private state.

Every Store of this process on one directory shares the :class:`~engine.env.Env` (and with it
the node id, :attr:`Env.identity`); each has its own context, listeners and table cache.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from .changes import TableDef, decode_table_def, is_tombstone
from .env import Env, Txn, release
from .errors import StoreClosed, TableNotFound, ValidationError

__all__ = ["Context"]

log = logging.getLogger(__name__)


class Context:
    """An open store's environment, identity, clock, limits, listeners and table cache.

    ``wall`` is the wall clock (milliseconds since the epoch), ``max_offset_ms`` the clock
    offset allowed (:func:`engine.clock.tick_local`), ``max_conflicts`` the bound of the
    conflict log.
    """

    def __init__(self, env: Env, *, node_id: int, region: str, max_offset_ms: int,
                 max_conflicts: int, wall: Callable[[], int]) -> None:
        self._env: Env | None = env
        self.path: Path = env.path
        self.region = region
        self.durable = env.durable
        self.max_offset_ms = max_offset_ms
        self.max_conflicts = max_conflicts
        self.wall = wall
        self._node_id = node_id
        self._tables: dict[str, TableDef] = {}
        self._listeners: list[Callable[[int], None]] = []
        self._lock = threading.Lock()

    # -- the environment and the identity ------------------------------------------------

    @property
    def env(self) -> Env:
        """The LMDB environment. :raises StoreClosed: once the store is closed."""
        env = self._env
        if env is None:
            raise StoreClosed(f"store {self.path} is closed")
        return env

    @property
    def closed(self) -> bool:
        return self._env is None

    def close(self) -> None:
        """Release the environment (once); further use raises ``StoreClosed``."""
        with self._lock:
            env, self._env = self._env, None
        if env is not None:
            release(env)

    @property
    def node_id(self) -> int:
        """This replica's node id (shared by every Store of this process on the directory)."""
        env = self._env
        return env.identity if env is not None else self._node_id

    def adopt_identity(self, node_id: int) -> None:
        """Take a new node id (:func:`engine.lineage.reidentify` wrote it in the store)."""
        self._node_id = node_id
        env = self._env
        if env is not None:
            env.identity = node_id

    # -- commit listeners ----------------------------------------------------------------

    def add_listener(self, callback: Callable[[int], None]) -> None:
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[int], None]) -> None:
        """Remove ``callback`` if it is registered (no error if not)."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(callback)

    def notify(self, position: int) -> None:
        """Tell the listeners that the transaction at ``position`` committed."""
        for cb in list(self._listeners):
            try:
                cb(position)
            except Exception:  # a listener must never fail a committed write
                log.exception("change listener %r failed", cb)

    # -- the table-definition cache ------------------------------------------------------

    def table_def(self, name: str) -> TableDef:
        """The definition of live table ``name`` (cached). :raises TableNotFound: if none."""
        tdef = self._tables.get(name)
        if tdef is None:
            if not isinstance(name, str):
                raise ValidationError(f"table name must be a string, not {name!r}")
            env = self.env
            raw = env.read(lambda txn: txn.get(name.encode(), db=env.tables))
            if raw is None or is_tombstone(raw):
                raise TableNotFound(f"table {name!r} does not exist in {self.path}")
            tdef = self._tables[name] = decode_table_def(name, raw)
        return tdef

    def table_defs(self) -> list[TableDef]:
        """The definitions of all live tables, sorted by name (read, not cached)."""
        env = self.env

        def run(txn: Txn) -> list[TableDef]:
            return [decode_table_def(bytes(k).decode(), bytes(v))
                    for k, v in txn.cursor(db=env.tables) if not is_tombstone(v)]

        return env.read(run)

    def cache_table(self, tdef: TableDef) -> None:
        """Remember ``tdef`` as the definition of its table (after a write made it so)."""
        self._tables[tdef.name] = tdef

    def uncache_tables(self, name: str | None = None) -> None:
        """Forget the cached definition of ``name`` (``None``: of every table), after a change
        that may have altered it."""
        if name is None:
            self._tables.clear()
        else:
            self._tables.pop(name, None)
