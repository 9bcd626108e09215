"""cr-sqlite, the closest embedded peer, side by side with regiondb in the same run.

cr-sqlite is a CRDT extension for SQLite (per-column last-writer-wins with causal lengths, its
changes read from and merged through the ``crsql_changes`` virtual table). The npm registry's
``@vlcn.io/crsqlite`` 0.6.1 ships its pure-C sources; :func:`prepare` fetches them with
``npm pack``, builds the loadable extension with ``gcc`` and loads it through ``apsw`` (the
machine's stdlib ``sqlite3`` may be built without extension loading). When any of the three is
missing the rows say so and are skipped — never a silent gap.

Rows (group ``crsqlite``), each against regiondb doing the same work in the same run:

- ``write_single``: durable single-item transactions (cr-sqlite: WAL, ``synchronous=FULL``).
- ``write_batch``: ``batch_size`` items per transaction.
- ``merge``: merging ``repl_changes`` remote changes (one order item each) into an empty
  durable replica — cr-sqlite's ``INSERT INTO crsql_changes`` of another database's rows,
  regiondb's ``import_changes`` of the other store's exported segments.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import statistics
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .data import ORDERS, ORDERS_PK, ORDERS_SK, order_item
from .harness import scratch_dir
from .sizes import Sizes

__all__ = ["CRSQLITE_VERSION", "prepare", "run_crsqlite"]

log = logging.getLogger(__name__)
Progress = Callable[[str], None]

CRSQLITE_VERSION = "0.6.1"
_PACKAGE = f"@vlcn.io/crsqlite@{CRSQLITE_VERSION}"
_SOURCES = ["crsqlite.c", "util.c", "tableinfo.c", "triggers.c", "changes-vtab.c",
            "changes-vtab-read.c", "changes-vtab-common.c", "changes-vtab-write.c",
            "ext-data.c", "get-table.c"]
_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "regiondb-bench"
_COLUMNS = ["status", "sku", "title", "qty", "price_cents", "currency", "ship_to",
            "created_at", "gift"]
ROWS = {
    "write_single": ("durable single-item transactions", "writes/s"),
    "write_batch": ("durable batches (items per second)", "items/s"),
    "merge": ("merge remote changes (one order item each) into a durable replica", "items/s"),
}


def prepare(cache: Path = _CACHE) -> tuple[Path | None, str]:
    """Build (once, cached) cr-sqlite's loadable extension; return ``(path, "")`` or
    ``(None, why it was skipped)``."""
    try:
        import apsw  # noqa: F401
    except ImportError:
        return None, "apsw is not installed (pip install apsw: SQLite with extension loading)"
    target = cache / f"crsqlite-{CRSQLITE_VERSION}" / "crsqlite.so"
    if target.exists():
        return target, ""
    for tool in ("npm", "gcc"):
        if shutil.which(tool) is None:
            return None, f"{tool} is not on PATH (needed to fetch and build {_PACKAGE})"
    with tempfile.TemporaryDirectory(prefix="regiondb-crsqlite-") as tmp:
        try:
            subprocess.run(["npm", "pack", "--silent", _PACKAGE], cwd=tmp, check=True,
                           capture_output=True, timeout=300)
            (tgz,) = Path(tmp).glob("*.tgz")
            with tarfile.open(tgz) as tar:
                tar.extractall(tmp, filter="data")
            src = Path(tmp) / "package" / "src"
            target.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["gcc", "-O2", "-fPIC", "-shared", "-std=c99", "-DNDEBUG",
                            f"-I{src}", f"-I{src / 'sqlite'}",
                            *[str(src / f) for f in _SOURCES], "-o", str(target) + ".tmp"],
                           check=True, capture_output=True, timeout=600)
        except (subprocess.SubprocessError, OSError, ValueError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            return None, f"building {_PACKAGE} failed: {exc} {detail[-300:]!r}"
        os.replace(str(target) + ".tmp", target)
    return target, ""


class _Crsql:
    """One cr-sqlite database: the orders table as a CRR, WAL, ``synchronous=FULL``."""

    def __init__(self, ext: Path, path: Path) -> None:
        import apsw

        self.db = apsw.Connection(str(path))
        self.db.enable_load_extension(True)
        self.db.load_extension(str(ext))
        self.cur = self.db.cursor()
        self.cur.execute("PRAGMA journal_mode=WAL")
        self.cur.execute("PRAGMA synchronous=FULL")
        cols = ", ".join(_COLUMNS)
        self.cur.execute(f"CREATE TABLE IF NOT EXISTS {ORDERS} ({ORDERS_PK}, "
                         f"{ORDERS_SK}, {cols}, PRIMARY KEY ({ORDERS_PK}, {ORDERS_SK}))")
        self.cur.execute(f"SELECT crsql_as_crr('{ORDERS}')")
        marks = ", ".join("?" for _ in range(len(_COLUMNS) + 2))
        self.insert = f"INSERT OR REPLACE INTO {ORDERS} VALUES ({marks})"

    @staticmethod
    def row(item: dict[str, Any]) -> tuple[Any, ...]:
        return (item[ORDERS_PK], item[ORDERS_SK],
                *[json.dumps(v) if isinstance(v, dict) else v
                  for v in (item[c] for c in _COLUMNS)])

    def put(self, item: dict[str, Any]) -> None:
        with self.db:
            self.cur.execute(self.insert, self.row(item))

    def put_batch(self, items: list[dict[str, Any]]) -> None:
        with self.db:
            self.cur.executemany(self.insert, [self.row(i) for i in items])

    def changes(self) -> list[tuple[Any, ...]]:
        return list(self.cur.execute("SELECT * FROM crsql_changes"))

    def merge(self, changes: list[tuple[Any, ...]], chunk: int) -> None:
        marks = ", ".join("?" for _ in range(len(changes[0]))) if changes else ""
        for i in range(0, len(changes), chunk):
            with self.db:
                self.cur.executemany(f"INSERT INTO crsql_changes VALUES ({marks})",
                                     changes[i:i + chunk])

    def count(self) -> int:
        return int(next(iter(self.cur.execute(f"SELECT count(*) FROM {ORDERS}")))[0])

    def close(self) -> None:
        self.cur.execute("SELECT crsql_finalize()")
        self.db.close()


def _items(n: int, base: int) -> list[dict[str, Any]]:
    return [order_item(base + i // 100, i % 100) for i in range(n)]


def _rate(fn: Callable[[], None], units: int) -> float:
    t0 = time.perf_counter()
    fn()
    return units / (time.perf_counter() - t0)


def _single(kind: str, ext: Path, root: Path, items: list[dict[str, Any]]) -> float:
    if kind == "crsqlite":
        db = _Crsql(ext, root / "c.db")
        try:
            return _rate(lambda: [db.put(i) for i in items] and None, len(items))
        finally:
            db.close()
    import engine

    with engine.open(root / "r", region="bench") as store:
        t = store.create_table(ORDERS, partition_key=ORDERS_PK, sort_key=ORDERS_SK)
        return _rate(lambda: [t.put(i) for i in items] and None, len(items))


def _batch(kind: str, ext: Path, root: Path, items: list[dict[str, Any]], size: int) -> float:
    chunks = [items[i:i + size] for i in range(0, len(items), size)]
    if kind == "crsqlite":
        db = _Crsql(ext, root / "c.db")
        try:
            return _rate(lambda: [db.put_batch(c) for c in chunks] and None, len(items))
        finally:
            db.close()
    import engine

    with engine.open(root / "r", region="bench") as store:
        store.create_table(ORDERS, partition_key=ORDERS_PK, sort_key=ORDERS_SK)

        def run() -> None:
            for c in chunks:
                with store.batch() as b:
                    for item in c:
                        b.put(ORDERS, item)

        return _rate(run, len(items))


def _merge_crsqlite(ext: Path, root: Path, items: list[dict[str, Any]], chunk: int) -> float:
    src = _Crsql(ext, root / "src.db")
    try:
        for i in range(0, len(items), chunk):
            src.put_batch(items[i:i + chunk])
        changes = src.changes()
    finally:
        src.close()
    dst = _Crsql(ext, root / "dst.db")
    try:
        rate = _rate(lambda: dst.merge(changes, chunk), len(items))
        if dst.count() != len(items):
            raise RuntimeError(f"cr-sqlite merged {dst.count()} of {len(items)} items")
        return rate
    finally:
        dst.close()


def _merge_regiondb(root: Path, items: list[dict[str, Any]], chunk: int) -> float:
    import engine
    import replication

    with engine.open(root / "src", region="src", durable=False) as src:
        src.create_table(ORDERS, partition_key=ORDERS_PK, sort_key=ORDERS_SK)
        for i in range(0, len(items), chunk):
            with src.batch() as b:
                for item in items[i:i + chunk]:
                    b.put(ORDERS, item)
        # one change per item, as cr-sqlite's rows are one per column of one item
        replication.export_changes(src, root / "segs")
    with engine.open(root / "dst", region="dst") as dst:
        t0 = time.perf_counter()
        replication.import_changes(dst, root / "segs")
        elapsed = time.perf_counter() - t0
        got = sum(1 for _ in dst.table(ORDERS).scan())
    if got != len(items):
        raise RuntimeError(f"regiondb merged {got} of {len(items)} items")
    return len(items) / elapsed


def _row(row: str, backend: str, value: float | None, **extra: Any) -> dict[str, Any]:
    title, unit = ROWS[row]
    return {"group": "crsqlite", "row": row, "title": title, "backend": backend,
            "unit": unit, "value": value, "available": value is not None, **extra}


def run_crsqlite(sizes: Sizes, progress: Progress) -> list[dict[str, Any]]:
    """The cr-sqlite rows and regiondb's beside them (median of ``sizes.rounds`` rounds for
    writes, ``sizes.repl_rounds`` for the merge)."""
    ext, why = prepare()
    if ext is None:
        progress(f"crsqlite: skipped — {why}")
        return [_row(r, "crsqlite", None, reason=why) for r in ROWS]
    progress(f"crsqlite: {_PACKAGE} built at {ext}")
    plans: dict[str, Callable[[str, Path, int], float]] = {
        "write_single": lambda k, root, r: _single(
            k, ext, root, _items(sizes.single_writes, 10_000 * r)),
        "write_batch": lambda k, root, r: _batch(
            k, ext, root, _items(sizes.batches * sizes.batch_size, 10_000 * r),
            sizes.batch_size),
        "merge": lambda k, root, r: (
            _merge_crsqlite(ext, root, _items(sizes.repl_changes, 0), sizes.batch_size)
            if k == "crsqlite" else _merge_regiondb(root, _items(sizes.repl_changes, 0),
                                                    sizes.batch_size)),
    }
    rows: list[dict[str, Any]] = []
    for row, plan in plans.items():
        rounds = sizes.repl_rounds if row == "merge" else sizes.rounds
        values: dict[str, list[float]] = {"regiondb": [], "crsqlite": []}
        try:
            for r in range(rounds):
                for kind in (("regiondb", "crsqlite") if r % 2 == 0 else ("crsqlite", "regiondb")):
                    with scratch_dir(f"regiondb-bench-crsql-{kind}-") as root:
                        values[kind].append(plan(kind, root, r))
        except Exception as exc:  # noqa: BLE001 - one broken row must not sink the run
            progress(f"crsqlite {row}: error {exc!r}")
            rows += [_row(row, k, None, error=repr(exc)) for k in values]
            continue
        med = {k: statistics.median(v) for k, v in values.items()}
        rows.append(_row(row, "crsqlite", med["crsqlite"], rounds=values["crsqlite"]))
        rows.append(_row(row, "regiondb", med["regiondb"], rounds=values["regiondb"],
                         ratio=med["regiondb"] / med["crsqlite"], ratio_to="crsqlite"))
        progress(f"crsqlite {row}: regiondb {med['regiondb']:,.0f} vs cr-sqlite "
                 f"{med['crsqlite']:,.0f} {ROWS[row][1]}")
    return rows
