"""The ``regiondb`` argument parser: every command, its flags, help text and examples.

Each subcommand sets ``func`` (the ``cmd_*`` function that runs it) and ``command`` (its
name, for error messages); :func:`regiondb.cli.main` dispatches on them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import NoReturn

import engine

from . import fleet
from .args import host_port, node_id_arg, positive_int, seconds_arg
from .dynamodb import add_parser as add_dynamodb
from .dynamodb import add_serve_flags as add_dynamodb_flags
from .indexes import cmd_check, cmd_create_index, cmd_drop_index, cmd_indexes
from .live import cmd_serve, cmd_sync
from .local import (
    cmd_changes,
    cmd_conflicts,
    cmd_create_table,
    cmd_delete,
    cmd_forget,
    cmd_get,
    cmd_init,
    cmd_put,
    cmd_query,
    cmd_restore,
    cmd_scan,
    cmd_tables,
    cmd_update,
)
from .offline import cmd_export, cmd_import, cmd_sync_dir
from .output import PROG
from .status import cmd_status
from .ttl import cmd_expire

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


def cmd_demo(args: argparse.Namespace) -> int:
    """``demo``: the ShopEase three-region demo (:mod:`regiondb.demo`), imported only here."""
    from ..demo import run

    return run(duration=args.duration, keep=args.keep, rate=args.rate, transport=args.transport)


class _Parser(argparse.ArgumentParser):
    """argparse with exit status 1 for usage errors (argparse's own is 2, our error code)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def _add(sub: argparse._SubParsersAction[_Parser], name: str,
         func: Callable[[argparse.Namespace], int], help_: str, examples: str,
         common: _Parser,
         description: str | None = None) -> _Parser:
    """A subcommand with the common flags, an examples epilog, and ``func`` to run it."""
    p = sub.add_parser(
        name, help=help_, parents=[common],
        description=description or help_,
        epilog="examples:\n" + "\n".join(f"  {line}" for line in examples.strip().splitlines()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=func, command=name)
    return p


def _dir(p: argparse.ArgumentParser) -> None:
    """The store directory, first argument of every store command."""
    p.add_argument("dir", metavar="DIR", help="the store directory")


def _key_args(p: argparse.ArgumentParser) -> None:
    """``TABLE PK [SK]``: one item's table and key."""
    p.add_argument("table", metavar="TABLE")
    p.add_argument("pk", metavar="PK", help="partition key value (c1, 42, '\"42\"', "
                                            "'{\"$b64\": ...}')")
    p.add_argument("sk", metavar="SK", nargs="?", help="sort key value, if the table has one")


def _cond_args(p: argparse.ArgumentParser, *, not_exists: bool) -> None:
    """Write conditions (``--if-not-exists`` only where it makes sense)."""
    g = p.add_argument_group("conditions (checked against this replica, in the write "
                             "transaction)")
    g.add_argument("--if-exists", action="store_true", help="only if the item exists")
    if not_exists:
        g.add_argument("--if-not-exists", action="store_true",
                       help="only if the item does not exist yet")
    g.add_argument("--if", dest="if_match", metavar="JSON",
                   help="only if the item has these attribute values, e.g. "
                        "'{\"status\": \"PLACED\"}'")
    g.add_argument("--condition", metavar="EXPR",
                   help="a DynamoDB ConditionExpression, e.g. 'attribute_not_exists(id)' or "
                        "'#s = :s' with --names/--values")
    _placeholder_args(p)


def _placeholder_args(p: argparse.ArgumentParser) -> None:
    """``--names``/``--values``: the placeholders of the expressions of one command."""
    if any(a.dest == "names" for a in p._actions):
        return
    g = p.add_argument_group("expression placeholders")
    g.add_argument("--names", metavar="JSON", help="'{\"#s\": \"status\"}'")
    g.add_argument("--values", metavar="JSON", help="'{\":s\": \"SHIPPED\", \":n\": 1}'")


def _read_args(p: argparse.ArgumentParser, *, page: bool) -> None:
    """``--filter``, ``--projection`` and paging for query and scan."""
    g = p.add_argument_group("expressions and pages")
    g.add_argument("--filter", metavar="EXPR", help="a FilterExpression: drops items after "
                                                     "they are read")
    g.add_argument("--projection", metavar="EXPR", help="a ProjectionExpression: the paths "
                                                         "to print")
    if page:
        g.add_argument("--page", action="store_true",
                       help="read one page (--limit counts items read before the filter) and "
                            "print {\"items\", \"last_key\", \"scanned\"}")
        g.add_argument("--start", metavar="JSON",
                       help="resume after this key (a page's last_key); implies --page")
    _placeholder_args(p)


def _tls_args(p: argparse.ArgumentParser, *, server: bool) -> None:
    """TLS files: a server's certificate and key, a CA for peers."""
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


def build_parser() -> argparse.ArgumentParser:
    """The whole ``regiondb`` command line (usage errors exit 1, see :class:`_Parser`)."""
    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true",
                        help="machine-readable output: JSON lines / one JSON object")
    common.add_argument("--debug", action="store_true",
                        help="log verbosely and show tracebacks")

    parser = _Parser(
        prog=PROG, description="regiondb: an embedded multi-region storage engine.",
        epilog=HELP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    try:
        ver = version("regiondb")
    except PackageNotFoundError:
        ver = "unknown"
    parser.add_argument("--version", action="version",
                        version=f"{PROG} {ver} (engine: {engine.native_summary()})")
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
    p.add_argument("--ttl-attribute", metavar="ATTR",
                   help="items whose ATTR is a number of epoch seconds in the past expire")

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
    p.add_argument("--projection", metavar="EXPR", help="a ProjectionExpression, e.g. "
                                                         "'total, address.city'")
    _placeholder_args(p)

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
    p.add_argument("--expression", metavar="EXPR",
                   help="a DynamoDB UpdateExpression instead of --set/--remove, e.g. "
                        "'SET total = total + :n REMOVE coupon' with --values")
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
    g.add_argument("--key", metavar="EXPR", help="a KeyConditionExpression on the sort key, "
                                                  "e.g. 'order_id BETWEEN :a AND :b'")
    p.add_argument("--reverse", action="store_true", help="descending sort-key order")
    p.add_argument("--limit", type=positive_int, metavar="N")
    p.add_argument("--index", metavar="NAME",
                   help="query secondary index NAME: PK and the conditions are its keys")
    _read_args(p, page=True)

    p = _add(sub, "scan", cmd_scan, "every item of a table in key order (JSON lines)",
             "regiondb scan data/mumbai orders\nregiondb scan data/mumbai orders --limit 5\n"
             "regiondb scan data/mumbai orders --filter 'total > :t' --values '{\":t\": 10}'",
             common)
    _dir(p)
    p.add_argument("table", metavar="TABLE")
    p.add_argument("--limit", type=positive_int, metavar="N")
    _read_args(p, page=True)

    p = _add(sub, "changes", cmd_changes, "the change feed, like DynamoDB Streams (JSON lines)",
             "regiondb changes data/mumbai --since 120\nregiondb changes data/mumbai --follow",
             common, "Every applied change (local writes and merged remote ones) after "
             "position --since, in local apply order. Resume with the last position printed.")
    _dir(p)
    p.add_argument("--since", type=int, default=0, metavar="POS")
    p.add_argument("--limit", type=positive_int, metavar="N")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new changes")

    p = _add(sub, "conflicts", cmd_conflicts, "values lost to concurrent writes",
             "regiondb conflicts data/mumbai\nregiondb conflicts data/mumbai --json --since 40",
             common, "Conflicts this replica recorded when merging: which attribute, which "
             "value lost to which, from which node. Local diagnostics; they never replicate.")
    _dir(p)
    p.add_argument("--since", type=int, default=0, metavar="ID")
    p.add_argument("--limit", type=positive_int, metavar="N")

    p = _add(sub, "expire", cmd_expire, "delete the items whose TTL has passed",
             "regiondb expire data/mumbai\nregiondb expire data/mumbai --limit 1000", common,
             "Delete every item whose table's TTL attribute (create-table --ttl-attribute) is a "
             "number of epoch seconds at or before now, as deletes marked as TTL expiries in "
             "the change feed, which replicate like any delete. Reads hide expired items "
             "already; `regiondb serve` runs this every few seconds by itself.")
    _dir(p)
    p.add_argument("--limit", type=positive_int, metavar="N", help="delete at most N items")

    p = _add(sub, "forget", cmd_forget, "remove a dead node for good",
             "regiondb forget data/mumbai 3f9a0c1d2e4b5a67", common,
             "Refuse the node's changes from now on, so that tombstones can be purged without "
             "it. A forgotten node that comes back must rejoin as a new node from a snapshot.")
    _dir(p)
    p.add_argument("node", type=node_id_arg, metavar="NODE_ID", help="node id in hex")

    p = _add(sub, "restore", cmd_restore, "put a backup of a store in place, as a new node",
             "regiondb restore backups/mumbai data/mumbai", common,
             "Copy BACKUP's data into DIR (in place, DIR may exist) and re-identify it: a "
             "restored store must not reuse the sequence numbers its old id already issued. "
             "Everything the backup holds of the old id stays, as an ordinary origin's; the "
             "next sync brings back what the peers hold beyond it.")
    p.add_argument("backup", metavar="BACKUP", help="the backup: a copy of a store directory")
    _dir(p)

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

    p = _add(sub, "create-index", cmd_create_index,
             "add a secondary index to a table and fill it (replicates)",
             "regiondb create-index data/mumbai orders by_status --partition-key status "
             "--sort-key placed_at\nregiondb create-index data/mumbai orders by_region "
             "--partition-key region --projection KEYS_ONLY", common,
             "Add index NAME to TABLE and fill it from the items, in chunks (a progress bar on "
             "a terminal); returns when the index is complete. Every replica fills its own "
             "when the definition reaches it. Interrupted, it resumes (run it again, or open "
             "the store).")
    _dir(p)
    p.add_argument("table", metavar="TABLE")
    p.add_argument("name", metavar="NAME", help="the index name")
    p.add_argument("--partition-key", "--pk", required=True, metavar="ATTR")
    p.add_argument("--sort-key", "--sk", metavar="ATTR")
    p.add_argument("--projection", default="ALL", metavar="ALL|KEYS_ONLY|A,B",
                   help="what the index holds (default ALL; keys are always projected)")
    progress_args(p)

    p = _add(sub, "drop-index", cmd_drop_index, "remove a secondary index (replicates)",
             "regiondb drop-index data/mumbai orders by_region", common)
    _dir(p)
    p.add_argument("table", metavar="TABLE")
    p.add_argument("name", metavar="NAME")

    p = _add(sub, "indexes", cmd_indexes, "list a table's secondary indexes",
             "regiondb indexes data/mumbai orders", common)
    _dir(p)
    p.add_argument("table", metavar="TABLE")

    p = _add(sub, "check", cmd_check, "verify the store: index == items, log == items",
             "regiondb check data/mumbai\nregiondb check data/mumbai --json", common,
             "Read the whole store in one snapshot and verify that every secondary index "
             "holds exactly the entries its table's items call for, and that the change log "
             "agrees with the items (replayed when the log was never truncated). Exit status "
             "2 lists what disagrees.")
    _dir(p)

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
             "--tls-cert node.pem --tls-key node.key --tls-ca ca.pem\n"
             "regiondb serve data/shop-17 --nats nats://broker:4222 --cluster shopease "
             "--nats-creds shop-17.creds", common,
             "Accept peers on --listen and keep a live replication link to every --peer "
             "until SIGINT or SIGTERM, logging a status line every --status-interval seconds.")
    _dir(p)
    p.add_argument("--listen", type=host_port, default=None, metavar="HOST:PORT",
                   help="address to accept peers on (port 0: any free port); optional with "
                        "--nats")
    p.add_argument("--peer", type=host_port, action="append", default=[], metavar="HOST:PORT",
                   help="a peer to replicate with (repeatable)")
    p.add_argument("--secret-file", metavar="F", help="shared secret for peer authentication")
    p.add_argument("--insecure", action="store_true",
                   help="allow a non-loopback --listen without a secret")
    p.add_argument("--status-interval", type=seconds_arg, default=10.0, metavar="S",
                   help="seconds between status lines (0: none; default 10)")
    _tls_args(p, server=True)
    fleet.add_args(p)
    add_dynamodb_flags(p, host_port)

    add_dynamodb(sub, _add, common, host_port)

    p = _add(sub, "sync", cmd_sync, "one-shot two-way sync with a serving peer",
             "regiondb sync data/van 10.0.1.5:7001 --secret-file shopease.key", common)
    _dir(p)
    p.add_argument("peer", type=host_port, metavar="HOST:PORT")
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
    p.add_argument("--duration", type=seconds_arg, default=45.0, metavar="S",
                   help="seconds of selling (default 45; the whole demo takes about "
                        "10-15 s more)")
    p.add_argument("--rate", type=positive_int, default=30, metavar="N",
                   help="orders per second per region (default 30)")
    p.add_argument("--keep", metavar="DIR", help="keep the stores in DIR for inspection")
    p.add_argument("--transport", choices=("tcp", "nats"), default="tcp",
                   help="tcp: a socket mesh (default); nats: through a local JetStream server "
                        "(the nats extra)")
    return parser
