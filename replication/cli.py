"""The ``regiondb`` command: every store operation, offline and live replication, the demo.

A store directory comes first, items are JSON (see :mod:`replication.jsonvalues` for numbers,
bytes and sets). Data commands (``get``, ``query``, ``scan``, ``changes``, ``conflicts``,
``status --json``) print JSON lines; the others print a human summary, or one JSON object with
``--json``. Exit codes: 0 ok, 1 usage error (bad flags, bad JSON on the command line), 2 a
regiondb error (missing store or table, failed condition, bad segment, refused peer, I/O
error) reported as one line on stderr, 130 interrupted. ``--debug`` shows tracebacks.

``regiondb serve`` writes ``DIR/serve-status.json`` while it runs (pid, address, peers, lag),
so that ``regiondb status DIR`` run beside it can show live replication figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TextIO

import engine

from .jsonvalues import JSONValueError, dumps, loads, parse_key

__all__ = ["UsageError", "main"]

PROG = "regiondb"
SERVE_STATUS = "serve-status.json"
_MISSING = object()


class UsageError(Exception):
    """Raised by a command for a bad argument it could only check after parsing (exit 1)."""


# -- output ----------------------------------------------------------------------------


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


def _emit(obj: Any) -> None:
    """One JSON line on stdout."""
    _out(dumps(obj))


def _hex(node: int) -> str:
    return f"{node:016x}"


def _vv_json(vv: dict[int, int]) -> dict[str, int]:
    return {_hex(k): v for k, v in sorted(vv.items())}


def _key_dict(table: engine.Table, pk: Any, sk: Any) -> dict[str, Any]:
    key = {table.partition_key: pk}
    if table.sort_key is not None:
        key[table.sort_key] = sk
    return key


def _key_text(values: Sequence[Any]) -> str:
    return " ".join(dumps(v) for v in values)


# -- argument helpers ------------------------------------------------------------------


def _json_arg(text: str, what: str) -> Any:
    if text == "-":
        text = sys.stdin.read()
    try:
        return loads(text, what)
    except JSONValueError as exc:
        raise UsageError(str(exc)) from None


def _object_arg(text: str, what: str) -> dict[str, Any]:
    value = _json_arg(text, what)
    if not isinstance(value, dict):
        raise UsageError(f"{what} must be a JSON object, not {dumps(value)[:60]}")
    return value


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, not {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}")
    return n


def _seconds(text: str) -> float:
    try:
        s = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, not {text!r}") from None
    if not 0 <= s < 1e7:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, not {text!r}")
    return s


def _node_id(text: str) -> int:
    try:
        n = int(text, 16)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a node id in hex, not {text!r}") from None
    if not 0 < n < 2**64:
        raise argparse.ArgumentTypeError(f"node id {text!r} is out of range")
    return n


def _read_secret(path: str | None) -> bytes | None:
    if path is None:
        return None
    data = Path(path).read_bytes().strip()
    if not data:
        raise UsageError(f"secret file {path} is empty")
    return data


def _keys(args: argparse.Namespace) -> tuple[Any, Any]:
    pk = parse_key(args.pk, "partition key")
    sk = None if args.sk is None else parse_key(args.sk, "sort key")
    return pk, sk


def _condition(args: argparse.Namespace) -> Callable[[dict[str, Any] | None], bool] | None:
    """``--if-exists``, ``--if-not-exists`` and ``--if JSON`` as one write condition."""
    exists = getattr(args, "if_exists", False)
    absent = getattr(args, "if_not_exists", False)
    match = getattr(args, "if_match", None)
    if absent and (exists or match is not None):
        raise UsageError("--if-not-exists cannot be combined with --if-exists or --if")
    expected = _object_arg(match, "--if") if match is not None else None
    if not (exists or absent or expected is not None):
        return None

    def check(current: dict[str, Any] | None) -> bool:
        if absent:
            return current is None
        if current is None:
            return False
        return expected is None or all(
            current.get(k, _MISSING) == v for k, v in expected.items()
        )

    return check


@contextmanager
def _store(args: argparse.Namespace) -> Iterator[engine.Store]:
    """The store named on the command line; never creates one (``init`` does)."""
    path = Path(args.dir)
    if not path.exists():
        raise engine.ValidationError(f"{path} does not exist (create it with `regiondb init`)")
    with engine.open(path, create=False) as store:
        yield store


# -- progress --------------------------------------------------------------------------


class Progress:
    """A progress callback for long exports and imports: a tqdm bar when installed and
    stderr is a terminal, a plain line every few seconds otherwise, silent if disabled.

    Callable as ``progress(done, total)`` (counts so far and overall, ``total`` may be
    ``None``); ``update(n)`` and ``close()`` also work, like tqdm's.
    """

    def __init__(self, desc: str, *, enabled: bool, unit: str = "change") -> None:
        self.desc = desc
        self.unit = unit
        self.enabled = enabled
        self.done = 0
        self.total: int | None = None
        self._bar: Any = None
        self._last_line = time.monotonic()
        self._start = time.monotonic()
        if enabled and sys.stderr.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                pass
            else:
                self._bar = tqdm(desc=desc, unit=unit, unit_scale=True, leave=False,
                                 delay=0.5, file=sys.stderr, dynamic_ncols=True)

    def __call__(self, done: int, total: int | None = None, *_: object) -> None:
        if total is not None:
            self.total = total
        self._advance(done - self.done)

    def update(self, n: int = 1) -> None:
        self._advance(n)

    def _advance(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        if self._bar is not None:
            if self.total is not None and self._bar.total != self.total:
                self._bar.total = self.total
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._last_line >= 3.0:  # a plain line, rarely: logs stay readable
            self._last_line = now
            of = f"/{self.total:,}" if self.total else ""
            print(f"{self.desc}: {self.done:,}{of} {self.unit}s, {now - self._start:.0f} s",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _progress_enabled(args: argparse.Namespace) -> bool:
    if args.progress is not None:
        return bool(args.progress)
    return not args.json


# -- commands: the local store ---------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    path = Path(args.dir)
    existed = (path / "data.mdb").exists()
    with engine.open(path, region=args.region) as store:
        info = {"path": str(path), "region": store.region, "node_id": _hex(store.node_id),
                "created": not existed}
    if args.json:
        _emit(info)
    elif existed:
        _out(f"{path}: store already exists (region {info['region']}, node {info['node_id']})")
    else:
        _out(f"{path}: created store for region {info['region']}, node {info['node_id']}")
    return 0


def cmd_create_table(args: argparse.Namespace) -> int:
    with _store(args) as store:
        existed = args.table in store.tables()
        t = store.create_table(args.table, partition_key=args.partition_key,
                               sort_key=args.sort_key)
    info = {"table": t.name, "partition_key": t.partition_key, "sort_key": t.sort_key,
            "created": not existed}
    if args.json:
        _emit(info)
    else:
        sk = f", sort key {t.sort_key!r}" if t.sort_key else ""
        state = "exists" if existed else "created"
        _out(f"table {t.name!r} {state}: partition key {t.partition_key!r}{sk}")
    return 0


def cmd_tables(args: argparse.Namespace) -> int:
    with _store(args) as store:
        defs = store.table_defs()
    for d in defs:
        if args.json:
            _emit({"table": d.name, "partition_key": d.partition_key, "sort_key": d.sort_key})
        else:
            _out(f"{d.name}\t{d.partition_key}" + (f"\t{d.sort_key}" if d.sort_key else ""))
    return 0


def _put_many(store: engine.Store, table: engine.Table, lines: TextIO,
              condition: Any) -> int:
    """``put DIR TABLE -``: one item per line, committed in batches of up to 500."""
    n = 0
    pending: list[dict[str, Any]] = []
    keys: set[tuple[Any, ...]] = set()

    def flush() -> None:
        with store.batch() as b:
            for item in pending:
                b.put(table, item, condition=condition)
        pending.clear()
        keys.clear()

    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        item = _json_arg(line, f"stdin line {lineno}")
        if not isinstance(item, dict):
            raise UsageError(f"stdin line {lineno} is not a JSON object")
        key = (repr(item.get(table.partition_key)),
               repr(item.get(table.sort_key)) if table.sort_key else None)
        if key in keys or len(pending) >= 500:
            flush()
        pending.append(item)
        keys.add(key)
        n += 1
    if pending:
        flush()
    return n


def cmd_put(args: argparse.Namespace) -> int:
    condition = _condition(args)
    with _store(args) as store:
        table = store.table(args.table)
        if args.item == "-":
            n = _put_many(store, table, sys.stdin, condition)
            if args.json:
                _emit({"table": table.name, "put": n})
            else:
                _out(f"put {n} item{'s' * (n != 1)} into {table.name}")
            return 0
        item = _object_arg(args.item, "ITEM")
        table.put(item, condition=condition)
    key = _key_dict(table, item.get(table.partition_key), item.get(table.sort_key or ""))
    if args.json:
        _emit({"table": table.name, "key": key, "put": 1})
    else:
        _out(f"put {table.name} {_key_text(list(key.values()))}")
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    pk, sk = _keys(args)
    with _store(args) as store:
        item = store.table(args.table).get(pk, sk)
    if item is not None:
        _emit(item)
    elif sys.stderr.isatty():
        print(f"(no item {args.table} {_key_text([pk] + ([sk] if sk is not None else []))})",
              file=sys.stderr)
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    if args.set is None and not args.remove:
        raise UsageError("give --set JSON and/or --remove ATTR")
    set_ = _object_arg(args.set, "--set") if args.set is not None else None
    pk, sk = _keys(args)
    condition = _condition(args)
    with _store(args) as store:
        item = store.table(args.table).update(pk, sk, set=set_, remove=args.remove or None,
                                              condition=condition)
    _emit(item)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    pk, sk = _keys(args)
    condition = _condition(args)
    with _store(args) as store:
        table = store.table(args.table)
        table.delete(pk, sk, condition=condition)
    key = _key_dict(table, pk, sk)
    if args.json:
        _emit({"table": table.name, "key": key, "deleted": True})
    else:
        _out(f"deleted {table.name} {_key_text(list(key.values()))}")
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    if args.gt is not None and args.gte is not None or args.lt is not None and args.lte is not None:
        raise UsageError("give at most one of --gt/--gte and one of --lt/--lte")
    ranged = any(v is not None for v in (args.gt, args.gte, args.lt, args.lte))
    if ranged and (args.begins_with is not None or args.between is not None):
        raise UsageError("--begins-with and --between cannot be combined with --gt/--gte/--lt/--lte")

    def sk(v: str | None) -> Any:
        return None if v is None else parse_key(v, "sort key")

    between = None if args.between is None else (sk(args.between[0]), sk(args.between[1]))
    with _store(args) as store:
        rows = store.table(args.table).query(
            parse_key(args.pk, "partition key"), begins_with=sk(args.begins_with),
            between=between, gt=sk(args.gt), gte=sk(args.gte), lt=sk(args.lt), lte=sk(args.lte),
            reverse=args.reverse, limit=args.limit)
        for item in rows:
            _emit(item)
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    with _store(args) as store:
        for item in store.table(args.table).scan(limit=args.limit):
            _emit(item)
    return 0


def _change_json(c: engine.Change) -> dict[str, Any]:
    return {"position": c.position, "table": c.table, "kind": c.kind, "key": c.key,
            "hlc": c.version[0], "origin": _hex(c.origin), "seq": c.seq, "delta": c.delta,
            "new_image": c.new_image}


def cmd_changes(args: argparse.Namespace) -> int:
    with _store(args) as store:
        pos, n = args.since, 0
        while True:
            for c in store.changes(since=pos, limit=None if args.limit is None
                                   else args.limit - n):
                _emit(_change_json(c))
                pos = c.position
                n += 1
            if not args.follow or (args.limit is not None and n >= args.limit):
                return 0
            sys.stdout.flush()
            time.sleep(0.2)


def cmd_conflicts(args: argparse.Namespace) -> int:
    with _store(args) as store:
        n = 0
        for c in store.conflicts(since=args.since):
            if args.limit is not None and n >= args.limit:
                break
            if args.json:
                _emit({"id": c.id, "table": c.table, "key": c.key, "attribute": c.attribute,
                       "winner": [c.winner[0], _hex(c.winner[1])],
                       "loser": [c.loser[0], _hex(c.loser[1])], "origin": _hex(c.origin),
                       "value": c.value, "winner_value": c.winner_value,
                       "local_lost": c.local_lost})
            else:
                _out(str(c))
            n += 1
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    with _store(args) as store:
        forget = getattr(_replication_optional(), "forget", None)
        (forget or type(store).forget)(store, args.node)
    if args.json:
        _emit({"forgotten": _hex(args.node)})
    else:
        _out(f"node {_hex(args.node)} forgotten: its changes are refused from now on; "
             "it must rejoin from a snapshot")
    return 0


# -- commands: replication through files -----------------------------------------------


def _replication() -> Any:
    import replication

    if not hasattr(replication, "export_changes"):
        raise ImportError("the replication package has no transports yet")
    return replication


def _net() -> Any:
    """``serve``, ``sync`` and ``Replicator``: from the package, or from ``replication.net``."""
    import replication

    if hasattr(replication, "Replicator"):
        return replication
    from . import net

    return net


def _replication_optional() -> Any:
    try:
        return _replication()
    except ImportError:
        return None


def _report_dict(report: Any) -> dict[str, Any]:
    """A replication report as plain JSON-able data (whatever shape the report has)."""
    if isinstance(report, dict):
        src = report
    elif hasattr(report, "__dataclass_fields__"):
        src = {f: getattr(report, f) for f in report.__dataclass_fields__}
    elif hasattr(report, "__dict__"):
        src = {k: v for k, v in vars(report).items() if not k.startswith("_")}
    else:
        return {"report": repr(report)}
    return {k: _plain(v) for k, v in src.items()}


def _plain(v: Any) -> Any:
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, BaseException):
        return f"{type(v).__name__}: {v}"
    if isinstance(v, dict):
        return {(_hex(k) if isinstance(k, int) and not isinstance(k, bool) else str(k)): _plain(x)
                for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        return [_plain(x) for x in v]
    if hasattr(v, "__dataclass_fields__") or (hasattr(v, "__dict__") and not callable(v)):
        return _report_dict(v)
    return v


def _read_since(path: Path) -> dict[int, int] | None:
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text())
        return {int(k, 16): int(v) for k, v in raw.items()}
    except (ValueError, TypeError, AttributeError) as exc:
        raise engine.ValidationError(
            f"{path}: not a since-file (JSON object of hex node id -> seq): {exc}"
        ) from None


def cmd_export(args: argparse.Namespace) -> int:
    since_file = Path(args.since_file) if args.since_file else None
    since = _read_since(since_file) if since_file else None
    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    progress = Progress(f"export {args.dir}", enabled=_progress_enabled(args))
    start = time.monotonic()
    with _store(args) as store:
        vv = store.version_vector()  # taken first: a later export may repeat, never miss
        try:
            files = _replication().export_changes(store, out, since, progress=progress)
        finally:
            progress.close()
    elapsed = time.monotonic() - start
    if since_file is not None:
        from .atomic import write_atomic

        write_atomic(since_file, json.dumps(_vv_json(vv), indent=1).encode() + b"\n")
    nbytes = sum(Path(f).stat().st_size for f in files)
    info = {"files": [str(f) for f in files], "segments": len(files), "bytes": nbytes,
            "changes": progress.done or None, "seconds": round(elapsed, 3), "vv": _vv_json(vv)}
    if args.json:
        _emit(info)
    else:
        what = f"{progress.done:,} changes in " if progress.done else ""
        _out(f"exported {what}{len(files)} segment{'s' * (len(files) != 1)} "
             f"({_size(nbytes)}) to {out} in {elapsed:.2f} s")
    return 0


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def _rejected(report: Any) -> list[str]:
    """One line per rejected file of an import or sync report."""
    return [str(o) for o in getattr(report, "rejected", None) or ()]


def _n(report: Any, name: str) -> int:
    v = getattr(report, name, 0)
    return len(v) if isinstance(v, (list, tuple, dict, set)) else int(v or 0)


def _import_summary(r: Any) -> str:
    files = _n(r, "files")
    text = (f"{_n(r, 'applied'):,} changes applied, {_n(r, 'skipped'):,} already known"
            + (f", {_n(r, 'held'):,} held" if _n(r, "held") else "")
            + (f", {_n(r, 'items'):,} snapshot items" if _n(r, "items") else "")
            + f", {_n(r, 'conflicts'):,} conflicts; {files} file{'s' * (files != 1)}")
    if _n(r, "rejected"):
        text += f" ({_n(r, 'rejected')} rejected)"
    return text


def _sync_dir_summary(r: Any) -> str:
    text = (f"imported {_n(r, 'applied'):,} changes ({_n(r, 'skipped'):,} already known, "
            f"{_n(r, 'conflicts'):,} conflicts) from {_n(r, 'imported')} files"
            + (f", {_n(r, 'items'):,} snapshot items" if _n(r, "items") else "")
            + f"; exported {_n(r, 'exported')} segments; {_n(r, 'peers')} other nodes")
    if _n(r, "removed") or _n(r, "purged"):
        text += f"; gc: {_n(r, 'removed'):,} log entries, {_n(r, 'purged'):,} tombstones"
    if _n(r, "waiting"):
        text += f"; {_n(r, 'waiting')} files waiting for earlier changes"
    if _n(r, "rejected"):
        text += f"; {_n(r, 'rejected')} files rejected"
    if _n(r, "held"):
        text += f"; {_n(r, 'held'):,} changes held (see --json)"
    return text


def cmd_import(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if not path.exists():
        raise engine.ValidationError(f"{path} does not exist")
    progress = Progress(f"import {path}", enabled=_progress_enabled(args))
    start = time.monotonic()
    with _store(args) as store:
        try:
            report = _replication().import_changes(store, path, progress=progress)
        finally:
            progress.close()
    elapsed = time.monotonic() - start
    info = _report_dict(report)
    info["seconds"] = round(elapsed, 3)
    rejected = _rejected(report)
    if args.json:
        _emit(info)
    else:
        _out(f"imported {path}: {_import_summary(report)} in {elapsed:.2f} s")
    for r in rejected:
        print(f"{PROG} import: rejected {r}", file=sys.stderr)
    return 2 if rejected else 0


def cmd_sync_dir(args: argparse.Namespace) -> int:
    mailbox = Path(args.mailbox)
    start = time.monotonic()
    with _store(args) as store:
        report = _replication().sync_dir(store, mailbox)
    elapsed = time.monotonic() - start
    info = _report_dict(report)
    info["seconds"] = round(elapsed, 3)
    rejected = _rejected(report)
    if args.json:
        _emit(info)
    else:
        _out(f"synced {args.dir} with {mailbox}: {_sync_dir_summary(report)} in {elapsed:.2f} s")
    for r in rejected:
        print(f"{PROG} sync-dir: rejected {r}", file=sys.stderr)
    return 2 if rejected else 0


# -- commands: replication over sockets ------------------------------------------------


def _ssl_server(args: argparse.Namespace) -> Any:
    if not (args.tls_cert or args.tls_key):
        return None
    if not (args.tls_cert and args.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.tls_cert, args.tls_key)
    if args.tls_ca:
        ctx.load_verify_locations(args.tls_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _ssl_client(args: argparse.Namespace) -> Any:
    if not (args.tls_ca or getattr(args, "tls", False)):
        return None
    import ssl

    ctx = ssl.create_default_context(cafile=args.tls_ca)
    if args.tls_ca:
        ctx.check_hostname = False  # peers are named by address; the CA pins who they are
    cert, key = getattr(args, "tls_cert", None), getattr(args, "tls_key", None)
    if cert and key:
        ctx.load_cert_chain(cert, key)
    return ctx


def _call(fn: Callable[..., Any], *a: Any, **kw: Any) -> Any:
    """Call ``fn`` dropping keyword arguments that are ``None`` (older signatures)."""
    return fn(*a, **{k: v for k, v in kw.items() if v is not None})


def cmd_sync(args: argparse.Namespace) -> int:
    host, port = args.peer
    secret = _read_secret(args.secret_file)
    start = time.monotonic()
    with _store(args) as store:
        report = _call(_net().sync, store, f"{host}:{port}", secret=secret,
                       ssl=_ssl_client(args))
    elapsed = time.monotonic() - start
    info = _report_dict(report)
    info["seconds"] = round(elapsed, 3)
    if args.json:
        _emit(info)
    else:
        _out(f"synced {args.dir} with {host}:{port} ({getattr(report, 'region', '?')}): "
             f"sent {_n(report, 'sent'):,} changes, received {_n(report, 'applied'):,} "
             f"({_n(report, 'skipped'):,} already known, {_n(report, 'conflicts'):,} conflicts)"
             + (f", {_n(report, 'refused')} origins refused for now" if _n(report, "refused")
                else "") + f" in {elapsed:.2f} s")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    host, port = args.listen
    secret = _read_secret(args.secret_file)
    if secret is None and not args.insecure and host not in ("127.0.0.1", "localhost", "::1"):
        raise UsageError(f"listening on {host} without --secret-file lets anyone write: "
                         "give --secret-file F (or --insecure)")
    server_ssl = _ssl_server(args)
    client_ssl = _ssl_client(args) if (args.tls_ca or server_ssl) else None
    repl = _net()
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    status_path = Path(args.dir) / SERVE_STATUS
    try:
        with _store(args) as store:
            server = _call(repl.serve, store, host=host, port=port, secret=secret, ssl=server_ssl)
            rep = None
            try:
                address = tuple(server.address)[:2]
                peers = [f"{h}:{p}" for h, p in args.peer]
                _log(f"{PROG} serve: {store.region} node {_hex(store.node_id)} "
                     f"listening on {address[0]}:{address[1]}"
                     + (f", replicating with {', '.join(peers)}" if peers else ""))
                if peers:
                    rep = _call(repl.Replicator, store, peers=peers, secret=secret,
                                ssl=client_ssl)
                    rep.start()
                _serve_loop(store, rep, address, peers, args.status_interval, stop,
                            status_path)
            finally:
                if rep is not None:
                    rep.stop()
                server.close()
                status_path.unlink(missing_ok=True)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    _log(f"{PROG} serve: stopped")
    return 0


def _log(line: str) -> None:
    print(time.strftime("%H:%M:%S ") + line, flush=True)


def _live_peers(store: engine.Store, rep: Any) -> list[dict[str, Any]]:
    """Per connected peer: region, sessions, unacknowledged changes, lag both ways (ms)."""
    try:
        from .net import status
    except ImportError:
        status = None
    rows: list[dict[str, Any]] = []
    if status is not None:
        try:
            for p in status(store).get("peers", []):
                rows.append({
                    "node_id": _hex(p["node_id"]), "region": p.get("region"),
                    "sessions": p.get("sessions"), "unacked": p.get("unacked"),
                    "lag_ms": p.get("lag_ms"), "inbound_lag_ms": p.get("inbound_lag_ms"),
                    "last_error": p.get("last_error"),
                })
            return rows
        except Exception:  # figures only; never stop serving for them
            rows = []
    if rep is not None:
        try:
            for addr, lag in rep.lag().items():
                rows.append({"peer": addr, **_plain(lag)})
        except Exception:
            pass
    return rows


def _peers_text(rows: list[dict[str, Any]]) -> str:
    parts = []
    for r in rows:
        name = r.get("region") or r.get("peer") or r.get("node_id")
        out, inb = r.get("lag_ms") or {}, r.get("inbound_lag_ms") or {}
        text = f"{name}: lag out {_ms(out.get('p50'))}/{_ms(out.get('p99'))}"
        if inb:
            text += f", in {_ms(inb.get('p50'))}/{_ms(inb.get('p99'))}"
        if r.get("unacked"):
            text += f", {r['unacked']:,} unacked"
        if not r.get("sessions", 1):
            text += " (disconnected" + (f": {r['last_error']}" if r.get("last_error") else "") + ")"
        parts.append(text)
    return "; ".join(parts)


def _serve_loop(store: engine.Store, rep: Any, address: tuple[Any, ...], peers: list[str],
                interval: float, stop: threading.Event, status_path: Path) -> None:
    from .atomic import write_atomic

    last_seq, last_t = store.stats()["local_seq"], time.monotonic()
    last_pos = store.position()
    next_log = time.monotonic() + interval if interval else float("inf")
    while not stop.is_set():
        stop.wait(1.0)
        rows = _live_peers(store, rep)
        now = time.monotonic()
        stats = store.stats()
        status = {"pid": os.getpid(), "address": list(address), "peers_configured": peers,
                  "updated": time.time(), "peers": rows, "vv": _vv_json(store.version_vector())}
        try:
            write_atomic(status_path, json.dumps(_plain(status)).encode())
        except OSError:
            pass
        if now >= next_log or stop.is_set():
            dt = now - last_t
            writes = (stats["local_seq"] - last_seq) / dt
            applied = (stats["position"] - last_pos) / dt - writes
            _log(f"{store.region}: {writes:.1f} local writes/s, {max(applied, 0):.1f} remote "
                 f"applies/s, {stats['items']:,} items, {stats['conflicts_total']:,} conflicts"
                 + (f"; {_peers_text(rows)}" if rows else "; no peers connected"))
            last_seq, last_pos, last_t = stats["local_seq"], stats["position"], now
            next_log = now + interval


def _ms(v: Any) -> str:
    return f"{v:.1f}" if isinstance(v, (int, float)) else "-"


# -- status ----------------------------------------------------------------------------


def _acks(store: engine.Store, vv: dict[int, int]) -> list[dict[str, Any]] | None:
    """Known peers, what each acknowledged, and how many of our changes it still lacks
    (from replication's ack table; ``None`` when this build has none)."""
    try:
        from .vv import load_acks
    except ImportError:
        return None
    rows = []
    for node, acked in sorted(load_acks(store).items()):
        behind = sum(max(0, seq - acked.get(origin, 0)) for origin, seq in vv.items())
        rows.append({"node_id": _hex(node), "acked": _vv_json(acked), "behind": behind})
    return rows


def _live(path: Path) -> dict[str, Any] | None:
    """What a ``regiondb serve`` running on this store last reported, if it still runs."""
    try:
        status = json.loads((path / SERVE_STATUS).read_text())
        os.kill(int(status["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if time.time() - float(status.get("updated", 0)) > 30:
        return None
    return status  # type: ignore[no-any-return]


def _hlc_text(hlc: int) -> str:
    if not hlc:
        return "(no writes yet)"
    ms, logical = hlc >> 16, hlc & 0xFFFF
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))
    return f"{stamp}.{ms % 1000:03d} UTC, logical {logical}  (hlc {hlc})"


def cmd_status(args: argparse.Namespace) -> int:
    with _store(args) as store:
        stats = store.stats()
        vv = store.version_vector()
        floors = store.log_floor()
        acks = _acks(store, vv)
        forgotten = sorted(store.forgotten())
        tables = store.tables()
    live = _live(Path(args.dir))
    info = {
        "path": stats["path"], "region": stats["region"], "node_id": _hex(stats["node_id"]),
        "durable": stats["durable"], "tables": tables, "items": stats["items"],
        "log_entries": stats["log_entries"], "file_bytes": stats["file_bytes"],
        "map_size": stats["map_size"], "hlc": stats["hlc"], "vv": _vv_json(vv),
        "log_floor": _vv_json(floors), "conflicts": stats["conflicts_total"],
        "conflicts_stored": stats["conflicts_stored"], "peers": acks,
        "forgotten": [_hex(n) for n in forgotten],
        "server": live,
    }
    if args.json:
        _emit(info)
        return 0
    me = stats["node_id"]
    _out(f"store      {info['path']}")
    _out(f"region     {info['region']}   node {info['node_id']}"
         + ("" if info["durable"] else "   (non-durable)"))
    _out(f"tables     {', '.join(tables) or '(none)'}")
    _out(f"items      {info['items']:,} (tombstones included)   "
         f"log entries {info['log_entries']:,}   file {_size(info['file_bytes'])} (map {_size(info['map_size'])})")
    _out(f"clock      {_hlc_text(stats['hlc'])}")
    _out("vv         " + (", ".join(f"{_hex(k)}{' (this node)' if k == me else ''}: {v:,}"
                                    for k, v in sorted(vv.items())) or "(empty)"))
    if floors:
        _out("log floor  " + ", ".join(f"{_hex(k)}: {v:,}" for k, v in sorted(floors.items())))
    _out(f"conflicts  {info['conflicts']:,} recorded ({info['conflicts_stored']:,} kept; "
         f"`{PROG} conflicts {args.dir}` lists them)")
    if acks:
        _out("peers      (what each acknowledged, and how many changes it still lacks)")
        for row in acks:
            acked = ", ".join(f"{k}: {v:,}" for k, v in row["acked"].items()) or "nothing"
            _out(f"  {row['node_id']}  behind {row['behind']:,}  acked {acked}")
    elif acks is not None:
        _out("peers      (none known yet)")
    if forgotten:
        _out("forgotten  " + ", ".join(info["forgotten"]))
    if live:
        host, port = live["address"][:2]
        _out(f"server     running (pid {live['pid']}) on {host}:{port}"
             + (f", replicating with {', '.join(live['peers_configured'])}"
                if live.get("peers_configured") else ""))
        for row in live.get("peers") or []:
            _out(f"  live     {_peers_text([row])}  (p50/p99 ms)")
    else:
        _out(f"server     not running (lag is measured by `{PROG} serve --peer ...`)")
    return 0


# -- demo ------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run

    return run(duration=args.duration, keep=args.keep, rate=args.rate, verbose=args.debug)


# -- the parser ------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse with exit status 1 for usage errors (argparse's own is 2, our error code)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def _add(sub: Any, name: str, func: Callable[[argparse.Namespace], int], help_: str,
         examples: str, common: argparse.ArgumentParser, description: str | None = None) -> Any:
    p = sub.add_parser(
        name, help=help_, parents=[common],
        description=description or help_,
        epilog="examples:\n" + "\n".join(f"  {line}" for line in examples.strip().splitlines()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=func, command=name)
    return p


def _dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", metavar="DIR", help="the store directory")


def _key_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("table", metavar="TABLE")
    p.add_argument("pk", metavar="PK", help="partition key value (c1, 42, '\"42\"', "
                                            "'{\"$b64\": ...}')")
    p.add_argument("sk", metavar="SK", nargs="?", help="sort key value, if the table has one")


def _cond_args(p: argparse.ArgumentParser, *, not_exists: bool) -> None:
    g = p.add_argument_group("conditions (checked against this replica, in the write "
                             "transaction)")
    g.add_argument("--if-exists", action="store_true", help="only if the item exists")
    if not_exists:
        g.add_argument("--if-not-exists", action="store_true",
                       help="only if the item does not exist yet")
    g.add_argument("--if", dest="if_match", metavar="JSON",
                   help="only if the item has these attribute values, e.g. "
                        "'{\"status\": \"PLACED\"}'")


def _tls_args(p: argparse.ArgumentParser, *, server: bool) -> None:
    g = p.add_argument_group("TLS")
    if server:
        g.add_argument("--tls-cert", metavar="F", help="certificate chain (PEM) to serve with")
        g.add_argument("--tls-key", metavar="F", help="private key (PEM) of --tls-cert")
    g.add_argument("--tls-ca", metavar="F",
                   help="CA (PEM) to verify peers with" + ("; also makes clients present "
                                                           "--tls-cert" if server else ""))
    if not server:
        g.add_argument("--tls", action="store_true",
                       help="use TLS verified with the system CAs")


HELP_EPILOG = """\
values:
  Items and --set are JSON objects. Whole JSON numbers are ints; numbers with a fraction or an
  exponent are read as exact decimals (decimal.Decimal, like DynamoDB's N), never floats.
  Bytes are written {"$b64": "<base64>"} and sets {"$set": [...]}, on input and on output.
  Key arguments are plain text (c1) unless they are JSON numbers (42), JSON strings ('"42"')
  or {"$b64": ...}.

exit status:
  0 ok, 1 usage error, 2 regiondb error (one line on stderr), 130 interrupted.

examples:
  regiondb init data/mumbai --region ap-south-1
  regiondb create-table data/mumbai orders --partition-key customer_id --sort-key order_id
  regiondb put data/mumbai orders '{"customer_id": "c1", "order_id": "o1", "total": 19.99}'
  regiondb query data/mumbai orders c1 --begins-with o
  regiondb serve data/mumbai --listen 127.0.0.1:7001 --peer 10.0.0.2:7001 --secret-file s.key
  regiondb demo
"""


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true",
                        help="machine-readable output: JSON lines / one JSON object")
    common.add_argument("--debug", action="store_true",
                        help="log verbosely and show tracebacks")

    parser = _Parser(
        prog=PROG, description="regiondb: an embedded multi-region storage engine.",
        epilog=HELP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("regiondb")
    except PackageNotFoundError:
        ver = "unknown"
    parser.add_argument("--version", action="version", version=f"{PROG} {ver}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True,
                                parser_class=_Parser)

    p = _add(sub, "init", cmd_init, "create a store (a replica) for a region",
             "regiondb init data/mumbai --region ap-south-1", common,
             "Create the store in DIR with a fresh node id. Running it again on the same "
             "store (same region) does nothing.")
    _dir(p)
    p.add_argument("--region", required=True, help="region name, e.g. ap-south-1")

    p = _add(sub, "create-table", cmd_create_table, "create a table (replicates like data)",
             "regiondb create-table data/mumbai orders --partition-key customer_id "
             "--sort-key order_id\nregiondb create-table data/mumbai inventory "
             "--partition-key sku", common)
    _dir(p)
    p.add_argument("table", metavar="TABLE")
    p.add_argument("--partition-key", "--pk", required=True, metavar="ATTR")
    p.add_argument("--sort-key", "--sk", metavar="ATTR")

    p = _add(sub, "tables", cmd_tables, "list tables and their keys",
             "regiondb tables data/mumbai", common)
    _dir(p)

    p = _add(sub, "put", cmd_put, "create or replace an item",
             "regiondb put data/mumbai orders '{\"customer_id\": \"c1\", \"order_id\": \"o1\", "
             "\"total\": 19.99}'\nregiondb put data/mumbai orders '{...}' --if-not-exists\n"
             "jq -c '.[]' orders.json | regiondb put data/mumbai orders -   # one item a line",
             common, "Create or replace the item (every attribute not given is gone). "
             "ITEM '-' reads one JSON object per line from stdin, committed in batches.")
    _dir(p)
    p.add_argument("table", metavar="TABLE")
    p.add_argument("item", metavar="ITEM", help="the item as a JSON object, or - for stdin")
    _cond_args(p, not_exists=True)

    p = _add(sub, "get", cmd_get, "print one item as JSON (nothing if missing)",
             "regiondb get data/mumbai orders c1 o1\nregiondb get data/mumbai inventory 42",
             common)
    _dir(p)
    _key_args(p)

    p = _add(sub, "update", cmd_update, "set and remove attributes (creates the item if missing)",
             "regiondb update data/mumbai orders c1 o1 --set '{\"status\": \"SHIPPED\"}'\n"
             "regiondb update data/mumbai orders c1 o1 --remove coupon gift_note\n"
             "regiondb update data/mumbai orders c1 o1 --set '{\"status\": \"PAID\"}' "
             "--if '{\"status\": \"PLACED\"}'", common,
             "Set and remove attributes of one item, as DynamoDB's UpdateItem; prints the "
             "new item. Only the named attributes change, and only they take part in "
             "per-attribute last-writer-wins.")
    _dir(p)
    _key_args(p)
    p.add_argument("--set", metavar="JSON", help="attributes to set, a JSON object")
    p.add_argument("--remove", metavar="ATTR", nargs="+", action="extend", default=[],
                   help="attributes to remove")
    _cond_args(p, not_exists=True)

    p = _add(sub, "delete", cmd_delete, "delete an item (missing is not an error)",
             "regiondb delete data/mumbai orders c1 o1\n"
             "regiondb delete data/mumbai orders c1 o1 --if '{\"status\": \"CANCELLED\"}'",
             common)
    _dir(p)
    _key_args(p)
    _cond_args(p, not_exists=False)

    p = _add(sub, "query", cmd_query, "items of one partition in sort-key order (JSON lines)",
             "regiondb query data/mumbai orders c1\n"
             "regiondb query data/mumbai orders c1 --begins-with 2024-\n"
             "regiondb query data/mumbai orders c1 --between o100 o199 --reverse --limit 10\n"
             "regiondb query data/mumbai readings sensor-7 --gte 100 --lt 200", common)
    _dir(p)
    p.add_argument("table", metavar="TABLE")
    p.add_argument("pk", metavar="PK", help="partition key value")
    g = p.add_argument_group("sort-key condition")
    g.add_argument("--begins-with", metavar="X")
    g.add_argument("--between", nargs=2, metavar=("A", "B"), help="A <= sk <= B")
    for op, text in (("gt", ">"), ("gte", ">="), ("lt", "<"), ("lte", "<=")):
        g.add_argument(f"--{op}", metavar="X", help=f"sk {text} X")
    p.add_argument("--reverse", action="store_true", help="descending sort-key order")
    p.add_argument("--limit", type=_positive_int, metavar="N")

    p = _add(sub, "scan", cmd_scan, "every item of a table in key order (JSON lines)",
             "regiondb scan data/mumbai orders\nregiondb scan data/mumbai orders --limit 5",
             common)
    _dir(p)
    p.add_argument("table", metavar="TABLE")
    p.add_argument("--limit", type=_positive_int, metavar="N")

    p = _add(sub, "changes", cmd_changes, "the change feed, like DynamoDB Streams (JSON lines)",
             "regiondb changes data/mumbai --since 120\nregiondb changes data/mumbai --follow",
             common, "Every applied change (local writes and merged remote ones) after "
             "position --since, in local apply order. Resume with the last position printed.")
    _dir(p)
    p.add_argument("--since", type=int, default=0, metavar="POS")
    p.add_argument("--limit", type=_positive_int, metavar="N")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new changes")

    p = _add(sub, "conflicts", cmd_conflicts, "values lost to concurrent writes",
             "regiondb conflicts data/mumbai\nregiondb conflicts data/mumbai --json --since 40",
             common, "Conflicts this replica recorded when merging: which attribute, which "
             "value lost to which, from which node. Local diagnostics; they never replicate.")
    _dir(p)
    p.add_argument("--since", type=int, default=0, metavar="ID")
    p.add_argument("--limit", type=_positive_int, metavar="N")

    p = _add(sub, "forget", cmd_forget, "remove a dead node for good",
             "regiondb forget data/mumbai 3f9a0c1d2e4b5a67", common,
             "Refuse the node's changes from now on, so that tombstones can be purged without "
             "it. A forgotten node that comes back must rejoin as a new node from a snapshot.")
    _dir(p)
    p.add_argument("node", type=_node_id, metavar="NODE_ID", help="node id in hex")

    def progress_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="progress bar on stderr (default: on, unless --json)")

    p = _add(sub, "export", cmd_export, "write changes as segment files (backup, sneakernet)",
             "regiondb export data/mumbai backup/\n"
             "regiondb export data/mumbai backup/ --since-file backup/since.json  # incremental",
             common, "Write the store's changes as segment files into OUTDIR. With "
             "--since-file F, export only what is newer than the version vector in F, then "
             "record the store's current version vector in F for the next run.")
    _dir(p)
    p.add_argument("outdir", metavar="OUTDIR")
    p.add_argument("--since-file", metavar="F")
    progress_args(p)

    p = _add(sub, "import", cmd_import, "apply segment files (a file or a directory)",
             "regiondb import data/ireland backup/\n"
             "regiondb import data/ireland backup/0001.seg", common,
             "Verify and apply segment files; re-importing is a no-op. A rejected file "
             "(corrupt, truncated, hostile) applies nothing and makes the exit status 2.")
    _dir(p)
    p.add_argument("path", metavar="PATH")
    progress_args(p)

    p = _add(sub, "sync-dir", cmd_sync_dir, "two-way offline sync through a shared folder",
             "regiondb sync-dir data/van /media/usb/shopease-mailbox", common,
             "Import what other nodes left in MAILBOX, write what they lack into this node's "
             "own subfolder. Nodes that never run at the same time converge through it.")
    _dir(p)
    p.add_argument("mailbox", metavar="MAILBOX")

    p = _add(sub, "serve", cmd_serve, "serve the store and replicate live with peers",
             "regiondb serve data/mumbai --listen 127.0.0.1:7001\n"
             "regiondb serve data/mumbai --listen 0.0.0.0:7001 --peer 10.0.1.5:7001 "
             "--peer 10.0.2.5:7001 --secret-file shopease.key\n"
             "regiondb serve data/mumbai --listen 0.0.0.0:7001 --secret-file k "
             "--tls-cert node.pem --tls-key node.key --tls-ca ca.pem", common,
             "Accept peers on --listen and keep a live replication link to every --peer "
             "until SIGINT or SIGTERM, logging a status line every --status-interval seconds.")
    _dir(p)
    p.add_argument("--listen", type=_host_port, required=True, metavar="HOST:PORT",
                   help="address to accept peers on (port 0: any free port)")
    p.add_argument("--peer", type=_host_port, action="append", default=[], metavar="HOST:PORT",
                   help="a peer to replicate with (repeatable)")
    p.add_argument("--secret-file", metavar="F", help="shared secret for peer authentication")
    p.add_argument("--insecure", action="store_true",
                   help="allow a non-loopback --listen without a secret")
    p.add_argument("--status-interval", type=_seconds, default=10.0, metavar="S",
                   help="seconds between status lines (0: none; default 10)")
    _tls_args(p, server=True)

    p = _add(sub, "sync", cmd_sync, "one-shot two-way sync with a serving peer",
             "regiondb sync data/van 10.0.1.5:7001 --secret-file shopease.key", common)
    _dir(p)
    p.add_argument("peer", type=_host_port, metavar="HOST:PORT")
    p.add_argument("--secret-file", metavar="F", help="shared secret for peer authentication")
    _tls_args(p, server=False)

    p = _add(sub, "status", cmd_status, "region, node, version vector, peers, lag, counts",
             "regiondb status data/mumbai\nregiondb status data/mumbai --json | jq .vv", common)
    _dir(p)

    p = _add(sub, "demo", cmd_demo, "the ShopEase three-region demo (about a minute)",
             "regiondb demo\nregiondb demo --duration 20 --keep /tmp/shopease", common,
             "Three regions as separate processes replicating live, a SIGKILLed and "
             "restarted region catching up, an offline node syncing through a folder, a "
             "concurrent update merged per attribute; ends with every node's digest.")
    p.add_argument("--duration", type=_seconds, default=45.0, metavar="S",
                   help="seconds of selling (default 45; the whole demo takes about "
                        "10-15 s more)")
    p.add_argument("--rate", type=_positive_int, default=30, metavar="N",
                   help="orders per second per region (default 30)")
    p.add_argument("--keep", metavar="DIR", help="keep the stores in DIR for inspection")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``regiondb`` with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else 1
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S",
                        stream=sys.stderr)
    where = f"{PROG} {args.command}"
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"{where}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{where}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`| head`): not an error; keep Python from complaining at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (engine.Error, OSError, JSONValueError) as exc:
        if args.debug:
            raise
        print(f"{where}: {_one_line(exc)}", file=sys.stderr)
        return 2
    except ImportError as exc:
        if args.debug:
            raise
        print(f"{where}: not available in this build ({_one_line(exc)})", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug, not the user's mistake: still one line, unless --debug
        if args.debug:
            raise
        print(f"{where}: internal error: {type(exc).__name__}: {_one_line(exc)} "
              "(run with --debug for the traceback, and please report it)", file=sys.stderr)
        return 2


def _one_line(exc: BaseException) -> str:
    msg = str(exc) or type(exc).__name__
    if isinstance(exc, engine.Error):
        msg = f"{type(exc).__name__}: {msg}"
    elif isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        msg = f"{exc.filename}: {exc.strerror}"
    return " ".join(msg.split())


if __name__ == "__main__":
    sys.exit(main())
