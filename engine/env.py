"""The LMDB environment: opening once per process, transactions, and invisible map growth.

This is the only module that imports ``lmdb``. It owns three LMDB rules:

* One process must not open the same environment twice: ``acquire`` shares one handle per
  real path (reference counted) and a forked child never reuses its parent's handle.
* The map size is fixed per open. A write that hits ``MapFullError`` is aborted, the map is
  doubled while no transaction of this process is active (the *gate*), and the write re-runs.
  Another process that then sees ``MapResizedError`` adopts the new size and retries.
* A write transaction belongs to the thread that began it and a leaked one blocks every
  writer, so write transactions exist only inside :meth:`Env.write`, never returned to callers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from threading import get_ident
from typing import Any, TypeVar

import lmdb

from .errors import StorageError, StoreClosed, ValidationError
from .layout import DB_NAMES

__all__ = ["DEFAULT_MAP_SIZE", "Env", "acquire", "release"]

log = logging.getLogger(__name__)

DEFAULT_MAP_SIZE = 1 << 30
T = TypeVar("T")

Txn = Any  # lmdb.Transaction; typed loosely because lmdb ships no stubs for every version


class _Gate:
    """Shared/exclusive gate: transactions are shared, a map resize is exclusive.

    The shared side is the hot path of every read, so it takes no lock: a thread *announces*
    itself in ``_active`` (a set of thread idents) and then checks ``_wanted``; an exclusive
    section first raises ``_wanted`` and then waits for ``_active`` to drain. Under CPython's
    global interpreter lock these set and attribute operations are atomic and sequentially
    consistent, so (as in Dekker's algorithm) either the thread sees ``_wanted`` and backs off,
    or the exclusive side sees it active and waits: never both inside. The lock and condition
    are used only on the slow paths (a resize pending or in progress).

    Our transactions never nest within one thread (reads inside a write are refused), so a
    waiting resize can hold back new transactions without any risk of deadlock; a nested
    entry is tolerated all the same (it stays registered until the outer one leaves).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._active: set[int] = set()
        self._wanted = 0
        self._exclusive = threading.Lock()  # one exclusive section at a time

    def enter(self, me: int) -> bool:
        """Register thread ``me``; ``False`` if it was already inside (a nested entry)."""
        active = self._active
        if me in active:
            return False
        while True:
            active.add(me)
            if not self._wanted:
                return True
            active.discard(me)
            with self._cond:
                self._cond.notify_all()  # an exclusive section may be waiting on us
                while self._wanted:
                    self._cond.wait()

    def leave(self, me: int, registered: bool = True) -> None:
        if registered:
            self._active.discard(me)
            if self._wanted:
                with self._cond:
                    self._cond.notify_all()

    @contextmanager
    def held_back(self) -> Iterator[None]:
        """Keep new transactions from starting, without waiting for running ones to end."""
        with self._cond:
            self._wanted += 1
        try:
            yield
        finally:
            with self._cond:
                self._wanted -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold back new transactions and wait until the running ones have ended."""
        with self._exclusive, self.held_back():
            with self._cond:
                while self._active:
                    self._cond.wait(0.05)  # leavers notify; the timeout is a safety net
            yield


class _Undo(Exception):
    """Internal: the single writer of a group failed; abort its transaction."""


_UNSET = object()


class _Slot:
    """One queued writer of a group commit: its function, wake-up, result or exception."""

    __slots__ = ("exc", "fn", "promoted", "result", "wake")

    def __init__(self, fn: Callable[[Txn], Any]) -> None:
        self.fn = fn
        self.wake = threading.Event()
        self.promoted = False  # woken to lead the next group, not with an outcome
        self.result: Any = _UNSET
        self.exc: BaseException | None = None

    def reset(self) -> None:
        self.result, self.exc = _UNSET, None

    def succeed(self, result: Any) -> None:
        self.result, self.exc = result, None

    def fail(self, exc: BaseException) -> None:
        self.result, self.exc = _UNSET, exc

    def outcome(self) -> Any:
        if self.exc is not None:
            raise self.exc
        if self.result is _UNSET:
            raise StorageError("a group commit ended without an outcome for this write")
        return self.result


class Env:
    """One open LMDB environment with its named databases."""

    def __init__(self, path: Path, *, map_size: int, durable: bool) -> None:
        self.path = path
        self.durable = durable
        self.pid = os.getpid()
        self.refs = 0
        self._gate = _Gate()
        self.closed = False
        self._writer = 0  # thread ident inside a write transaction of this env, else 0
        self.identity = 0  # the store's node id, shared by every Store of this process on it
        self._queue_lock = threading.Lock()
        self._queued = threading.Condition(self._queue_lock)  # a writer joined the queue
        self._queue: list[_Slot] = []  # writers waiting for the next group commit
        self._leading = False  # a writer is committing a group (or about to)
        self._last_group = 1  # writers in the last group commit
        self._last_commit_s = 0.0  # how long its commit took
        # table name -> how often it was deleted since open: a Table object made before a
        # deletion refuses writes (engine.schema)
        self.drops: dict[str, int] = {}
        try:
            self.lmdb = lmdb.open(
                str(path), map_size=map_size, max_dbs=len(DB_NAMES) + 2, subdir=True,
                sync=durable, metasync=durable, readahead=False, max_readers=512, lock=True,
            )
        except lmdb.Error as exc:
            raise StorageError(f"cannot open LMDB environment at {path}: {exc}") from exc
        dbs = self._open_dbs(path)
        # env.items, env.log, …: plain attributes (a __getattr__ costs a failed lookup first)
        self.meta = dbs["meta"]
        self.items = dbs["items"]
        self.log = dbs["log"]
        self.index = dbs["index"]
        self.vv = dbs["vv"]
        self.floors = dbs["floors"]
        self.tables = dbs["tables"]
        self.conflicts = dbs["conflicts"]
        self.idxdefs = dbs["idxdefs"]  # secondary index definitions (engine.index)
        self.idx = dbs["idx"]          # secondary index entries

    def _open_dbs(self, path: Path) -> dict[str, Any]:
        """Open the named databases, adopting a map another process grew since ``lmdb.open``.

        Opening a database begins a transaction, which fails with ``MapResizedError`` when
        another process grew the map in between; no transaction of ours is active yet, so the
        new size is adopted at once and the open retried. Any other LMDB failure is a
        ``StorageError`` (and the environment is closed again).
        """
        try:
            for _ in range(100):  # each retry adopts a larger size; a bound against a livelock
                try:
                    return {name: self.lmdb.open_db(name.encode()) for name in DB_NAMES}
                except lmdb.MapResizedError:
                    self.lmdb.set_mapsize(0)
            raise StorageError(f"cannot open the databases of {path}: the map keeps growing")
        except lmdb.Error as exc:
            self.lmdb.close()
            raise StorageError(f"cannot open the databases of {path}: {exc}") from exc
        except BaseException:
            self.lmdb.close()
            raise

    def _refuse_nesting(self) -> None:
        raise ValidationError(
            "the store cannot be used from inside a write condition or a batch commit"
        )

    def get(self, key: bytes, db: Any) -> bytes | None:
        """One value by key in its own read transaction (the point-read fast path)."""
        me = get_ident()
        if self._writer == me:
            self._refuse_nesting()
        gate = self._gate
        while True:
            registered = gate.enter(me)
            try:
                if self.closed:
                    raise StoreClosed(f"store {self.path} is closed")
                try:
                    txn = self.lmdb.begin()
                except lmdb.MapResizedError:
                    pass
                else:
                    try:
                        return txn.get(key, db=db)
                    finally:
                        txn.abort()
            except lmdb.Error as exc:
                raise StorageError(f"LMDB read failed in {self.path}: {exc}") from exc
            finally:
                gate.leave(me, registered)
            self._adopt_resize()

    def map_size(self) -> int:
        return int(self.lmdb.info()["map_size"])

    def _adopt_resize(self) -> None:
        with self._gate.exclusive():
            self.lmdb.set_mapsize(0)

    def _grow(self) -> None:
        with self._gate.exclusive():
            new = self.map_size() * 2
            log.info("growing LMDB map of %s to %d MiB", self.path, new >> 20)
            self.lmdb.set_mapsize(new)

    def _begin(self, write: bool) -> Txn:
        try:
            return self.lmdb.begin(write=write)
        except lmdb.MapResizedError:
            return None

    def read(self, fn: Callable[[Txn], T]) -> T:
        """Run ``fn`` in a read transaction; the transaction does not outlive the call."""
        me = get_ident()
        if self._writer == me:
            self._refuse_nesting()
        while True:
            registered = self._gate.enter(me)
            try:
                if self.closed:
                    raise StoreClosed(f"store {self.path} is closed")
                txn = self._begin(False)
                if txn is not None:
                    try:
                        return fn(txn)
                    finally:
                        txn.abort()
            except lmdb.Error as exc:
                raise StorageError(f"LMDB read failed in {self.path}: {exc}") from exc
            finally:
                self._gate.leave(me, registered)
            self._adopt_resize()

    def write(self, fn: Callable[[Txn], T]) -> T:
        """Run ``fn`` in a write transaction and commit; re-run it after growing a full map.

        Group commit: writers of this process that arrive while a commit is under way queue
        up, and the next leader runs all of them in one transaction (each in a nested
        transaction of its own, so one that raises — a failed condition — is undone alone)
        and one durable commit, then wakes them with their own result or exception. No write
        waits for a commit it is not in for longer than one commit: a leader commits one
        group and hands over (a leader may first wait for the writers of the last group, at
        most a quarter of its commit: :meth:`_gather`). ``fn`` may therefore run in another
        writer's thread, and must be safe to run again from the start: it is, for the store's
        write paths, because everything they read comes from the transaction.
        """
        if self._writer == get_ident():
            self._refuse_nesting()
        slot = _Slot(fn)
        with self._queue_lock:
            self._queue.append(slot)
            lead = not self._leading
            self._leading = True
            self._queued.notify()
        if not lead:
            slot.wake.wait()
            if not slot.promoted:
                return slot.outcome()  # type: ignore[no-any-return]
        group = self._gather()
        started = time.monotonic()
        try:
            self._commit_group(group)
        finally:
            self._last_group, self._last_commit_s = len(group), time.monotonic() - started
            with self._queue_lock:
                if self._queue:  # the next leader commits the writers that came meanwhile
                    self._queue[0].promoted = True
                    self._queue[0].wake.set()
                else:
                    self._leading = False
            for other in group:
                if other is not slot:
                    other.wake.set()
        return slot.outcome()  # type: ignore[no-any-return]

    def _gather(self) -> list[_Slot]:
        """Take the queued writers as the next group. When the last group had more writers
        than are queued now, those writers are likely between two writes: wait for them a
        little (at most a quarter of the last commit, and 2 ms), as PostgreSQL's
        ``commit_delay`` does, so that they share this commit instead of waiting for the
        next one. A lone writer never waits."""
        with self._queue_lock:
            want = self._last_group
            if len(self._queue) < want:
                deadline = time.monotonic() + min(self._last_commit_s / 4, 0.002)
                while len(self._queue) < want:
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._queued.wait(left):
                        break
            group, self._queue = self._queue, []
        return group

    def _commit_group(self, group: list[_Slot]) -> None:
        """Run every slot's ``fn`` in one write transaction, commit it once, and give each
        slot its result or exception; grow the map (and re-run the group) when it is full."""
        me = get_ident()
        while True:
            grow = resized = False
            registered = self._gate.enter(me)
            try:
                if self.closed:
                    raise StoreClosed(f"store {self.path} is closed")
                txn = self._begin(True)
                if txn is None:
                    resized = True
                else:
                    self._writer = me
                    try:
                        self._run_group(txn, group)
                        txn.commit()
                        return
                    except _Undo:  # the group's one writer failed: commit nothing
                        self._abort(txn)
                        return
                    except lmdb.MapFullError:
                        self._abort(txn)
                        grow = True
                    except BaseException:
                        self._abort(txn)
                        raise
                    finally:
                        self._writer = 0
            except lmdb.MapResizedError:
                resized = True
            except lmdb.Error as exc:
                failure = StorageError(f"LMDB write failed in {self.path}: {exc}",
                                       hint="check free disk space and file permissions")
                failure.__cause__ = exc
                for slot in group:
                    slot.fail(failure)
                return
            except BaseException as exc:
                for slot in group:
                    slot.fail(exc)
                return
            finally:
                self._gate.leave(me, registered)
            if grow:
                self._grow()
            elif resized:
                self._adopt_resize()

    def _run_group(self, txn: Txn, group: list[_Slot]) -> None:
        if len(group) == 1:  # nobody to isolate from: no nested transaction
            slot = group[0]
            slot.reset()
            try:
                slot.succeed(slot.fn(txn))
            except lmdb.Error:
                raise
            except BaseException as exc:
                slot.fail(exc)
                raise _Undo from None
            return
        for slot in group:
            slot.reset()
            child = self.lmdb.begin(write=True, parent=txn)
            try:
                result = slot.fn(child)
                child.commit()
            except lmdb.Error:
                _abort_quietly(child)
                raise  # the whole group: a full map grows and re-runs it
            except BaseException as exc:
                _abort_quietly(child)  # this writer's changes alone are undone
                slot.fail(exc)
            else:
                slot.succeed(result)

    def _abort(self, txn: Txn) -> None:
        # py-lmdb 3.0 makes a write transaction's abort wait until no operation of any other
        # thread is in flight on the environment; under a steady stream of reads that wait
        # lasted seconds (while holding LMDB's writer lock). Holding back new transactions
        # lets the running ones drain, so the abort proceeds at once.
        with self._gate.held_back():
            _abort_quietly(txn)

    def close(self) -> None:
        with self._gate.exclusive():
            # a store iterator (or another thread) still holding this Env gets StoreClosed,
            # not an lmdb error about a closed object
            self.closed = True
            self.lmdb.close()


def _abort_quietly(txn: Txn) -> None:
    with contextlib.suppress(lmdb.Error):  # already finished by a failed commit
        txn.abort()


_registry: dict[str, Env] = {}
_registry_lock = threading.Lock()


def acquire(path: Path, *, map_size: int, durable: bool) -> Env:
    """Open (or share) the environment at ``path`` for this process."""
    key = os.path.realpath(path)
    with _registry_lock:
        env = _registry.get(key)
        if env is not None and env.pid != os.getpid():
            env = None  # inherited through fork: LMDB forbids using it in the child
        if env is None:
            env = Env(Path(key), map_size=map_size, durable=durable)
            _registry[key] = env
        elif env.durable != durable:
            raise ValidationError(
                f"{path} is already open in this process with durable={env.durable}"
            )
        env.refs += 1
        return env


def release(env: Env) -> None:
    """Drop one reference; the environment closes with its last user."""
    with _registry_lock:
        env.refs -= 1
        if env.refs > 0:
            return
        if _registry.get(str(env.path)) is env:
            del _registry[str(env.path)]
    env.close()
