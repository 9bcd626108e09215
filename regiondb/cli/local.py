"""``regiondb`` commands on one local store: create it and its tables, write, read, query,
the change feed, conflicts, forgetting a dead node. No network and no other replica."""

from __future__ import annotations

import argparse
import itertools
import shutil
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import engine
from engine import lineage
from replication import forget

from .args import (
    Condition,
    UsageError,
    item_key,
    json_arg,
    key_arg,
    object_arg,
    open_store,
    placeholders,
    write_condition,
)
from .output import emit, hex_id, key_dict, key_text, write_line

_BATCH = 500  # items per write transaction for ``put DIR TABLE -``


def cmd_init(args: argparse.Namespace) -> int:
    """``init DIR --region R``: create a store, or confirm the one there."""
    path = Path(args.dir)
    existed = (path / "data.mdb").exists()
    with engine.open(path, region=args.region) as store:
        info = {"path": str(path), "region": store.region, "node_id": hex_id(store.node_id),
                "created": not existed}
    if args.json:
        emit(info)
    elif existed:
        write_line(f"{path}: store already exists "
                   f"(region {info['region']}, node {info['node_id']})")
    else:
        write_line(f"{path}: created store for region {info['region']}, node {info['node_id']}")
    return 0


def cmd_create_table(args: argparse.Namespace) -> int:
    """``create-table DIR TABLE``: create a table (idempotent for the same keys)."""
    with open_store(args) as store:
        existed = args.table in store.tables()
        t = store.create_table(args.table, partition_key=args.partition_key,
                               sort_key=args.sort_key, ttl_attribute=args.ttl_attribute)
    info = {"table": t.name, "partition_key": t.partition_key, "sort_key": t.sort_key,
            "created": not existed}
    if args.json:
        emit(info)
    else:
        sk = f", sort key {t.sort_key!r}" if t.sort_key else ""
        state = "exists" if existed else "created"
        write_line(f"table {t.name!r} {state}: partition key {t.partition_key!r}{sk}")
    return 0


def cmd_tables(args: argparse.Namespace) -> int:
    """``tables DIR``: every table and its key attributes."""
    with open_store(args) as store:
        defs = store.table_defs()
    for d in defs:
        if args.json:
            emit({"table": d.name, "partition_key": d.partition_key, "sort_key": d.sort_key})
        else:
            write_line(f"{d.name}\t{d.partition_key}" + (f"\t{d.sort_key}" if d.sort_key else ""))
    return 0


def _put_many(store: engine.Store, table: engine.Table, lines: TextIO,
              condition: Condition | str | None, exprs: dict[str, Any]) -> int:
    """``put DIR TABLE -``: one item per line, committed in batches of up to ``_BATCH``; an
    item whose key is already in the batch starts a new one, so later lines win."""
    n = 0
    pending: list[dict[str, Any]] = []
    keys: set[tuple[Any, ...]] = set()

    def flush() -> None:
        with store.batch() as b:
            for item in pending:
                b.put(table, item, condition=condition, **exprs)
        pending.clear()
        keys.clear()

    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        item = json_arg(line, f"stdin line {lineno}")
        if not isinstance(item, dict):
            raise UsageError(f"stdin line {lineno} is not a JSON object")
        key = (repr(item.get(table.partition_key)),
               repr(item.get(table.sort_key)) if table.sort_key else None)
        if key in keys or len(pending) >= _BATCH:
            flush()
        pending.append(item)
        keys.add(key)
        n += 1
    if pending:
        flush()
    return n


def cmd_put(args: argparse.Namespace) -> int:
    """``put DIR TABLE ITEM``: create or replace one item, or many from stdin (``-``)."""
    condition = write_condition(args)
    exprs = placeholders(args)
    with open_store(args) as store:
        table = store.table(args.table)
        if args.item == "-":
            n = _put_many(store, table, sys.stdin, condition, exprs)
            if args.json:
                emit({"table": table.name, "put": n})
            else:
                write_line(f"put {n} item{'s' * (n != 1)} into {table.name}")
            return 0
        item = object_arg(args.item, "ITEM")
        table.put(item, condition=condition, **exprs)
    key = key_dict(table, item.get(table.partition_key), item.get(table.sort_key or ""))
    if args.json:
        emit({"table": table.name, "key": key, "put": 1})
    else:
        write_line(f"put {table.name} {key_text(list(key.values()))}")
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    """``get DIR TABLE PK [SK]``: the item as JSON, nothing if missing."""
    pk, sk = item_key(args)
    with open_store(args) as store:
        item = store.table(args.table).get(pk, sk, projection=args.projection,
                                           **placeholders(args))
    if item is not None:
        emit(item)
    elif sys.stderr.isatty():
        print(f"(no item {args.table} {key_text([pk] + ([sk] if sk is not None else []))})",
              file=sys.stderr)
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    """``update DIR TABLE PK [SK] --set/--remove``: change attributes; print the item."""
    if args.set is None and not args.remove and args.expression is None:
        raise UsageError("give --set JSON and/or --remove ATTR, or --expression EXPR")
    if args.expression is not None and (args.set is not None or args.remove):
        raise UsageError("--expression cannot be combined with --set or --remove")
    set_ = object_arg(args.set, "--set") if args.set is not None else None
    pk, sk = item_key(args)
    condition = write_condition(args)
    with open_store(args) as store:
        item = store.table(args.table).update(pk, sk, set=set_, remove=args.remove or None,
                                              condition=condition, expression=args.expression,
                                              **placeholders(args))
    emit(item)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    """``delete DIR TABLE PK [SK]``: delete an item (missing is not an error)."""
    pk, sk = item_key(args)
    condition = write_condition(args)
    with open_store(args) as store:
        table = store.table(args.table)
        table.delete(pk, sk, condition=condition, **placeholders(args))
    key = key_dict(table, pk, sk)
    if args.json:
        emit({"table": table.name, "key": key, "deleted": True})
    else:
        write_line(f"deleted {table.name} {key_text(list(key.values()))}")
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    """``query DIR TABLE PK``: one partition in sort-key order, with a sort-key condition."""
    if args.gt is not None and args.gte is not None or args.lt is not None and args.lte is not None:
        raise UsageError("give at most one of --gt/--gte and one of --lt/--lte")
    ranged = any(v is not None for v in (args.gt, args.gte, args.lt, args.lte))
    if ranged and (args.begins_with is not None or args.between is not None):
        raise UsageError("--begins-with and --between cannot be combined with "
                         "--gt/--gte/--lt/--lte")

    def sk(v: str | None) -> Any:
        return None if v is None else key_arg(v, "sort key")

    if args.key is not None and (ranged or args.begins_with is not None
                                 or args.between is not None):
        raise UsageError("--key cannot be combined with the other sort-key conditions")
    between = None if args.between is None else (sk(args.between[0]), sk(args.between[1]))
    kwargs = dict(begins_with=sk(args.begins_with), between=between, gt=sk(args.gt),
                  gte=sk(args.gte), lt=sk(args.lt), lte=sk(args.lte), reverse=args.reverse,
                  limit=args.limit, index=args.index, key=args.key, **_read_kwargs(args))
    with open_store(args) as store:
        table = store.table(args.table)
        pk = key_arg(args.pk, "partition key")
        if args.page or args.start is not None:
            _emit_page(table.query_page(pk, start=_start_arg(args), **kwargs))
            return 0
        for item in table.query(pk, **kwargs):
            emit(item)
    return 0


def _read_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"filter": args.filter, "projection": args.projection, **placeholders(args)}


def _start_arg(args: argparse.Namespace) -> dict[str, Any] | None:
    return None if args.start is None else object_arg(args.start, "--start")


def _emit_page(page: engine.Page) -> None:
    """One page as one JSON object: its items, ``last_key`` (resume with ``--start``) and how
    many items were read before the filter."""
    emit({"items": page.items, "last_key": page.last_key, "scanned": page.scanned})


def cmd_scan(args: argparse.Namespace) -> int:
    """``scan DIR TABLE``: every item of a table in key order."""
    with open_store(args) as store:
        table = store.table(args.table)
        if args.page or args.start is not None:
            _emit_page(table.scan_page(args.limit, start=_start_arg(args), **_read_kwargs(args)))
            return 0
        for item in table.scan(limit=args.limit, **_read_kwargs(args)):
            emit(item)
    return 0


def _change_json(c: engine.Change) -> dict[str, Any]:
    """One change of the feed as ``changes`` prints it (``hlc``: the version's packed HLC)."""
    return {"position": c.position, "table": c.table, "kind": c.kind, "key": c.key,
            "hlc": c.version[0], "origin": hex_id(c.origin), "seq": c.seq, "delta": c.delta,
            "new_image": c.new_image}


def cmd_changes(args: argparse.Namespace) -> int:
    """``changes DIR``: the change feed after ``--since``; ``--follow`` keeps polling."""
    with open_store(args) as store:
        pos, n = args.since, 0
        while True:
            for c in store.changes(since=pos, limit=None if args.limit is None
                                   else args.limit - n):
                emit(_change_json(c))
                pos = c.position
                n += 1
            if not args.follow or (args.limit is not None and n >= args.limit):
                return 0
            sys.stdout.flush()
            time.sleep(0.2)


def cmd_conflicts(args: argparse.Namespace) -> int:
    """``conflicts DIR``: the conflicts this replica recorded when merging."""
    with open_store(args) as store:
        for c in itertools.islice(store.conflicts(since=args.since), args.limit):
            if args.json:
                emit({"id": c.id, "table": c.table, "key": c.key, "attribute": c.attribute,
                      "winner": [c.winner[0], hex_id(c.winner[1])],
                      "loser": [c.loser[0], hex_id(c.loser[1])], "origin": hex_id(c.origin),
                      "value": c.value, "winner_value": c.winner_value,
                      "local_lost": c.local_lost})
            else:
                write_line(str(c))
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """``restore BACKUP DIR``: put a backup of a store in place, as a new node.

    A restored store must not issue seqs of the id it had when backed up (its peers hold other
    changes under them since): it re-identifies up front (:mod:`engine.lineage`). It keeps the
    old id's entries it holds (the world holds the same ones), and what its peers hold beyond
    them comes back at the next sync; nothing is set aside.
    """
    backup, target = Path(args.backup), Path(args.dir)
    if not (backup / "data.mdb").is_file():
        raise engine.ValidationError(f"{backup} is not a regiondb store (no data.mdb)")
    if target.exists() and not target.is_dir():
        raise engine.ValidationError(f"{target} exists and is not a directory")
    target.mkdir(parents=True, exist_ok=True)
    (target / "lock.mdb").unlink(missing_ok=True)
    (target / lineage.STAMP_FILE).unlink(missing_ok=True)  # re-identified just below
    shutil.copyfile(backup / "data.mdb", target / "data.mdb")  # in place: the inode is kept
    with engine.open(target, create=False) as store:
        old = store.node_id
        new = store.reidentify(f"restored from backup {backup} by `regiondb restore`",
                               forked=False)
        pending = store.pending_reissues()
    if args.json:
        emit({"restored": str(target), "old_node_id": hex_id(old), "node_id": hex_id(new),
              "set_aside": pending})
    else:
        write_line(f"restored {backup} into {target}: node {hex_id(old)} is now {hex_id(new)}; "
                   "what its peers hold of the old id comes back at the next sync")
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    """``forget DIR NODE``: remove a dead node for good (see :func:`replication.forget`)."""
    with open_store(args) as store:
        forget(store, args.node)
    if args.json:
        emit({"forgotten": hex_id(args.node)})
    else:
        write_line(f"node {hex_id(args.node)} forgotten: its changes are refused from now on; "
                   "it must rejoin from a snapshot")
    return 0
