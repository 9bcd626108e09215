"""The backends compared, behind one small interface, all storing the same items.

* ``regiondb`` / ``regiondb_nosync`` — the engine (``durable=True`` / ``False``).
* ``raw_lmdb`` / ``raw_lmdb_nosync`` — the floor: plain ``lmdb`` with the same environment flags,
  one write transaction per write holding the item put **and** a log-record put, the item CBOR
  encoded once inside the timed operation. That is the least work regiondb's write path can do.
* ``sqlite_normal`` / ``sqlite_full`` — stdlib ``sqlite3``, WAL, ``synchronous=NORMAL`` / ``FULL``,
  one ``(key BLOB PRIMARY KEY, value BLOB) WITHOUT ROWID`` table per logical table holding the same
  CBOR bytes, and a log-table insert in the same transaction as every write (the same work as the
  floor: what a user would build on SQLite to get a change feed).

Every backend takes Python dicts and returns Python dicts: encoding and decoding are part of every
timed operation, for every backend alike.
"""

from __future__ import annotations

import sqlite3
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import cbor2
import lmdb

__all__ = [
    "ALL_BACKENDS",
    "Backend",
    "MAP_SIZE",
    "RawLmdb",
    "RegionDb",
    "Sqlite",
    "engine_available",
    "make_backend",
]

MAP_SIZE = 8 << 30  # 8 GiB of address space; the file stays sparse on 64-bit Linux
ALL_BACKENDS = [
    "regiondb",
    "regiondb_nosync",
    "raw_lmdb",
    "raw_lmdb_nosync",
    "sqlite_normal",
    "sqlite_full",
]


def engine_available() -> tuple[bool, str]:
    """Whether ``engine.open`` can be imported, and why not if it cannot."""
    try:
        import engine

        if not hasattr(engine, "open"):
            return False, "engine.open is not defined yet"
        return True, ""
    except Exception as exc:  # noqa: BLE001 - any import failure means "not available"
        return False, f"engine not importable: {type(exc).__name__}: {exc}"


def _key(pk: str, sk: str | None) -> bytes:
    """Order-preserving byte key of (pk, sk) for string keys without NUL characters."""
    return pk.encode() + b"\x00" + (sk.encode() if sk is not None else b"")


class Backend(ABC):
    """One storage system under test. Not every method must be fast; all must be correct."""

    name: str = ""
    durable: bool = True
    floor: str | None = None  # the backend whose ratio this one is judged by
    guarantees: str = ""

    def __init__(self) -> None:
        self.schemas: dict[str, tuple[str, str | None]] = {}

    @abstractmethod
    def open(self, root: Path, map_size: int = MAP_SIZE) -> None:
        """Create and open a fresh store in the empty directory ``root``."""

    @abstractmethod
    def close(self) -> None:
        """Close the store; the directory is removed by the caller."""

    @abstractmethod
    def create_table(self, name: str, pk: str, sk: str | None) -> None:
        """Create a table keyed by (``pk``, ``sk``)."""

    @abstractmethod
    def put(self, table: str, item: dict[str, Any]) -> None:
        """Write one item in its own (durable, where the backend is) transaction."""

    @abstractmethod
    def put_batch(self, table: str, items: list[dict[str, Any]]) -> None:
        """Write all items in one transaction."""

    @abstractmethod
    def get(self, table: str, pk: str, sk: str | None) -> dict[str, Any] | None:
        """Read and decode one item."""

    @abstractmethod
    def query(
        self, table: str, pk: str, gte: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Items of one partition in sort-key order, from ``gte`` on, at most ``limit``."""

    @abstractmethod
    def update(self, table: str, pk: str, sk: str | None, changes: dict[str, Any]) -> None:
        """Read-modify-write: set attributes of one item in one transaction (upsert)."""

    @abstractmethod
    def delete(self, table: str, pk: str, sk: str | None) -> None:
        """Delete one item in its own transaction."""

    @abstractmethod
    def scan(self, table: str) -> int:
        """Read and decode every item of the table; return how many."""

    def keys_of(self, table: str, item: dict[str, Any]) -> tuple[str, str | None]:
        """The (pk, sk) of an item of ``table``."""
        pk, sk = self.schemas[table]
        return item[pk], (item[sk] if sk is not None else None)


class RawLmdb(Backend):
    """The floor: plain LMDB, item put plus log-record put per write transaction."""

    floor = None
    guarantees = (
        "LMDB sync on commit (data pages then meta page fsynced); item and log record atomic. "
        "No versions, clock, merge state, validation or schema: the least regiondb must do."
    )

    def __init__(self, durable: bool = True) -> None:
        super().__init__()
        self.durable = durable
        self.name = "raw_lmdb" if durable else "raw_lmdb_nosync"
        if not durable:
            self.guarantees = "LMDB without sync on commit (sync=False): atomic, not durable."
        self.env: Any = None
        self._dbs: dict[str, Any] = {}
        self._log: Any = None
        self._seq = 0

    def open(self, root: Path, map_size: int = MAP_SIZE) -> None:
        # The same environment flags as engine/env.py, so only the work differs.
        self.env = lmdb.open(
            str(root), map_size=map_size, max_dbs=16, subdir=True, sync=self.durable,
            metasync=self.durable, readahead=False, max_readers=512, lock=True,
        )
        self._log = self.env.open_db(b"log")

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None

    def create_table(self, name: str, pk: str, sk: str | None) -> None:
        self.schemas[name] = (pk, sk)
        self._dbs[name] = self.env.open_db(name.encode())

    def _next_seq(self) -> bytes:
        # Called inside the write transaction, which LMDB serialises: no lock needed.
        self._seq += 1
        return self._seq.to_bytes(8, "big")

    def put(self, table: str, item: dict[str, Any]) -> None:
        db = self._dbs[table]
        value = cbor2.dumps(item)
        key = _key(*self.keys_of(table, item))
        with self.env.begin(write=True) as txn:
            txn.put(key, value, db=db)
            txn.put(self._next_seq(), value, db=self._log)

    def put_batch(self, table: str, items: list[dict[str, Any]]) -> None:
        db, log, dumps = self._dbs[table], self._log, cbor2.dumps
        with self.env.begin(write=True) as txn:
            for item in items:
                value = dumps(item)
                txn.put(_key(*self.keys_of(table, item)), value, db=db)
                txn.put(self._next_seq(), value, db=log)

    def get(self, table: str, pk: str, sk: str | None) -> dict[str, Any] | None:
        with self.env.begin(db=self._dbs[table]) as txn:
            raw = txn.get(_key(pk, sk))
        return cbor2.loads(raw) if raw is not None else None

    def query(
        self, table: str, pk: str, gte: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        prefix = _key(pk, None)
        start = prefix + gte.encode() if gte is not None else prefix
        out: list[dict[str, Any]] = []
        loads = cbor2.loads
        with self.env.begin(db=self._dbs[table]) as txn:
            cur = txn.cursor()
            if cur.set_range(start):
                for k, v in cur:
                    if not k.startswith(prefix) or (limit is not None and len(out) >= limit):
                        break
                    out.append(loads(v))
        return out

    def update(self, table: str, pk: str, sk: str | None, changes: dict[str, Any]) -> None:
        db = self._dbs[table]
        key = _key(pk, sk)
        pk_name, sk_name = self.schemas[table]
        with self.env.begin(write=True) as txn:
            raw = txn.get(key, db=db)
            item = cbor2.loads(raw) if raw is not None else {pk_name: pk}
            if raw is None and sk_name is not None:
                item[sk_name] = sk
            item.update(changes)
            txn.put(key, cbor2.dumps(item), db=db)
            txn.put(self._next_seq(), cbor2.dumps(changes), db=self._log)

    def delete(self, table: str, pk: str, sk: str | None) -> None:
        key = _key(pk, sk)
        with self.env.begin(write=True) as txn:
            txn.delete(key, db=self._dbs[table])
            txn.put(self._next_seq(), key, db=self._log)  # the tombstone record

    def scan(self, table: str) -> int:
        n = 0
        loads = cbor2.loads
        with self.env.begin(db=self._dbs[table]) as txn:
            for _k, v in txn.cursor():
                loads(v)
                n += 1
        return n


class Sqlite(Backend):
    """SQLite in WAL mode, one connection per thread, a log insert in every write transaction."""

    floor = None

    def __init__(self, synchronous: str = "NORMAL") -> None:
        super().__init__()
        self.synchronous = synchronous
        self.name = f"sqlite_{synchronous.lower()}"
        self.durable = synchronous == "FULL"
        self.guarantees = (
            "WAL, synchronous=FULL: the WAL is fsynced on every commit; durable on power loss."
            if self.durable
            else "WAL, synchronous=NORMAL: atomic and safe on process crash, but the last "
            "commits can roll back on power loss (the WAL is fsynced only at checkpoints)."
        )
        self.path: Path | None = None
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=120
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def open(self, root: Path, map_size: int = MAP_SIZE) -> None:
        self.path = root / "bench.sqlite"
        self._conn().execute(
            "CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY, key BLOB, value BLOB)"
        )

    def close(self) -> None:
        with self._lock:
            for c in self._all:
                c.close()
            self._all.clear()
        self._local = threading.local()

    def create_table(self, name: str, pk: str, sk: str | None) -> None:
        self.schemas[name] = (pk, sk)
        self._conn().execute(
            f'CREATE TABLE "t_{name}" (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID'
        )

    def _write(self, conn: sqlite3.Connection,
               statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in statements:
                conn.execute(sql, params)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def put(self, table: str, item: dict[str, Any]) -> None:
        value = cbor2.dumps(item)
        key = _key(*self.keys_of(table, item))
        self._write(
            self._conn(),
            [
                (f'INSERT OR REPLACE INTO "t_{table}" VALUES (?, ?)', (key, value)),
                ("INSERT INTO log (key, value) VALUES (?, ?)", (key, value)),
            ],
        )

    def put_batch(self, table: str, items: list[dict[str, Any]]) -> None:
        conn = self._conn()
        rows = [(_key(*self.keys_of(table, i)), cbor2.dumps(i)) for i in items]
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(f'INSERT OR REPLACE INTO "t_{table}" VALUES (?, ?)', rows)
            conn.executemany("INSERT INTO log (key, value) VALUES (?, ?)", rows)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def get(self, table: str, pk: str, sk: str | None) -> dict[str, Any] | None:
        row = (
            self._conn()
            .execute(f'SELECT value FROM "t_{table}" WHERE key = ?', (_key(pk, sk),))
            .fetchone()
        )
        return cbor2.loads(row[0]) if row is not None else None

    def query(
        self, table: str, pk: str, gte: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        prefix = _key(pk, None)
        start = prefix + gte.encode() if gte is not None else prefix
        end = pk.encode() + b"\x01"
        rows = (
            self._conn()
            .execute(
                f'SELECT value FROM "t_{table}" WHERE key >= ? AND key < ? ORDER BY key LIMIT ?',
                (start, end, -1 if limit is None else limit),
            )
            .fetchall()
        )
        loads = cbor2.loads
        return [loads(r[0]) for r in rows]

    def update(self, table: str, pk: str, sk: str | None, changes: dict[str, Any]) -> None:
        conn = self._conn()
        key = _key(pk, sk)
        pk_name, sk_name = self.schemas[table]
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(f'SELECT value FROM "t_{table}" WHERE key = ?', (key,)).fetchone()
            item = cbor2.loads(row[0]) if row is not None else {pk_name: pk}
            if row is None and sk_name is not None:
                item[sk_name] = sk
            item.update(changes)
            conn.execute(
                f'INSERT OR REPLACE INTO "t_{table}" VALUES (?, ?)', (key, cbor2.dumps(item))
            )
            conn.execute("INSERT INTO log (key, value) VALUES (?, ?)", (key, cbor2.dumps(changes)))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def delete(self, table: str, pk: str, sk: str | None) -> None:
        key = _key(pk, sk)
        self._write(
            self._conn(),
            [
                (f'DELETE FROM "t_{table}" WHERE key = ?', (key,)),
                ("INSERT INTO log (key, value) VALUES (?, ?)", (key, b"")),
            ],
        )

    def scan(self, table: str) -> int:
        loads = cbor2.loads
        n = 0
        for (v,) in self._conn().execute(f'SELECT value FROM "t_{table}" ORDER BY key'):
            loads(v)
            n += 1
        return n


class RegionDb(Backend):
    """regiondb through its public API only (``engine.open``, tables, ``store.batch()``)."""

    def __init__(self, durable: bool = True) -> None:
        super().__init__()
        self.durable = durable
        self.name = "regiondb" if durable else "regiondb_nosync"
        self.floor = "raw_lmdb" if durable else "raw_lmdb_nosync"
        self.guarantees = (
            "durable=True: LMDB sync on commit; item, change-log record, clock and sequence in "
            "one transaction; HLC versions and per-attribute merge state; validated input."
            if durable
            else "durable=False: as regiondb but no sync on commit; the last commits can be "
            "lost on power loss (never on a process crash)."
        )
        self.store: Any = None
        self._cm: Any = None
        self._tables: dict[str, Any] = {}

    def open(self, root: Path, map_size: int = MAP_SIZE) -> None:
        import engine

        self._cm = engine.open(str(root / "store"), region="bench", durable=self.durable,
                               map_size=map_size)
        self.store = self._cm.__enter__()

    def close(self) -> None:
        if self._cm is not None:
            self._cm.__exit__(None, None, None)
            self._cm = self.store = None

    def create_table(self, name: str, pk: str, sk: str | None) -> None:
        self.schemas[name] = (pk, sk)
        if sk is None:
            self._tables[name] = self.store.create_table(name, partition_key=pk)
        else:
            self._tables[name] = self.store.create_table(name, partition_key=pk, sort_key=sk)

    def _sk(self, sk: str | None) -> tuple[str, ...]:
        return () if sk is None else (sk,)

    def put(self, table: str, item: dict[str, Any]) -> None:
        self._tables[table].put(item)

    def put_batch(self, table: str, items: list[dict[str, Any]]) -> None:
        with self.store.batch() as b:
            for item in items:
                b.put(table, item)

    def get(self, table: str, pk: str, sk: str | None) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self._tables[table].get(pk, *self._sk(sk))
        return result

    def query(
        self, table: str, pk: str, gte: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        return list(self._tables[table].query(pk, gte=gte, limit=limit))

    def update(self, table: str, pk: str, sk: str | None, changes: dict[str, Any]) -> None:
        self._tables[table].update(pk, *self._sk(sk), set=changes)

    def delete(self, table: str, pk: str, sk: str | None) -> None:
        self._tables[table].delete(pk, *self._sk(sk))

    def scan(self, table: str) -> int:
        return sum(1 for _ in self._tables[table].scan())


def make_backend(name: str) -> Backend:
    """A fresh, unopened backend by name (one of :data:`ALL_BACKENDS`)."""
    factories = {
        "regiondb": lambda: RegionDb(durable=True),
        "regiondb_nosync": lambda: RegionDb(durable=False),
        "raw_lmdb": lambda: RawLmdb(durable=True),
        "raw_lmdb_nosync": lambda: RawLmdb(durable=False),
        "sqlite_normal": lambda: Sqlite("NORMAL"),
        "sqlite_full": lambda: Sqlite("FULL"),
    }
    if name not in factories:
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(ALL_BACKENDS)}")
    return factories[name]()
