"""Command-line arguments of ``regiondb``: argparse value types, JSON arguments, write
conditions, and opening the store a command names.

Problems argparse cannot see (bad JSON, conflicting flags) raise :class:`UsageError`, which
:func:`regiondb.cli.main` turns into exit status 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import engine
from engine.checks import is_node_id

from ..jsonvalues import JSONValueError, dumps, loads, parse_key

Condition = Callable[[dict[str, Any] | None], bool]


class UsageError(Exception):
    """Raised by a command for a bad argument it could only check after parsing (exit 1)."""


_MISSING = object()


def json_arg(text: str, what: str) -> Any:
    """A JSON argument (``-``: read stdin) in the :mod:`regiondb.jsonvalues` encoding."""
    if text == "-":
        text = sys.stdin.read()
    try:
        return loads(text, what)
    except JSONValueError as exc:
        raise UsageError(str(exc)) from None


def object_arg(text: str, what: str) -> dict[str, Any]:
    """A JSON argument that must be an object (an item, ``--set``, ``--if``)."""
    value = json_arg(text, what)
    if not isinstance(value, dict):
        raise UsageError(f"{what} must be a JSON object, not {dumps(value)[:60]}")
    return value


def host_port(text: str) -> tuple[str, int]:
    """argparse type for ``HOST:PORT`` (``[::1]:7001`` too; an empty host is 127.0.0.1)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, not {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def positive_int(text: str) -> int:
    """argparse type for counts and limits (1 or more)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}")
    return n


def seconds_arg(text: str) -> float:
    """argparse type for durations and intervals (0 or more seconds)."""
    try:
        s = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, not {text!r}") from None
    if not 0 <= s < 1e7:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, not {text!r}")
    return s


def node_id_arg(text: str) -> int:
    """argparse type for a node id in hex, as ``status`` prints it."""
    try:
        n = int(text, 16)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a node id in hex, not {text!r}") from None
    if not is_node_id(n):
        raise argparse.ArgumentTypeError(f"node id {text!r} is out of range")
    return n


def read_secret(path: str | None) -> bytes | None:
    """The shared secret in ``--secret-file`` (surrounding whitespace dropped), if given."""
    if path is None:
        return None
    data = Path(path).read_bytes().strip()
    if not data:
        raise UsageError(f"secret file {path} is empty")
    return data


def key_arg(text: str, what: str) -> Any:
    """A key argument (see :func:`regiondb.jsonvalues.parse_key`); a bad one is a usage error."""
    try:
        return parse_key(text, what)
    except JSONValueError as exc:
        raise UsageError(str(exc)) from None


def item_key(args: argparse.Namespace) -> tuple[Any, Any]:
    """``PK`` and optional ``SK`` as key values."""
    pk = key_arg(args.pk, "partition key")
    sk = None if args.sk is None else key_arg(args.sk, "sort key")
    return pk, sk


def placeholders(args: argparse.Namespace) -> dict[str, Any]:
    """``--names JSON`` and ``--values JSON`` as ``names=``/``values=`` keyword arguments."""
    out: dict[str, Any] = {}
    for flag in ("names", "values"):
        text = getattr(args, flag, None)
        if text is not None:
            out[flag] = object_arg(text, f"--{flag}")
    return out


def write_condition(args: argparse.Namespace) -> Condition | str | None:
    """``--condition EXPR`` (a ConditionExpression), or ``--if-exists``, ``--if-not-exists``
    and ``--if JSON`` as one write condition."""
    exists = getattr(args, "if_exists", False)
    absent = getattr(args, "if_not_exists", False)
    match = getattr(args, "if_match", None)
    expression = getattr(args, "condition", None)
    if expression is not None:
        if exists or absent or match is not None:
            raise UsageError("--condition cannot be combined with --if-exists, "
                             "--if-not-exists or --if")
        return str(expression)
    if absent and (exists or match is not None):
        raise UsageError("--if-not-exists cannot be combined with --if-exists or --if")
    expected = object_arg(match, "--if") if match is not None else None
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
def open_store(args: argparse.Namespace) -> Iterator[engine.Store]:
    """The store named on the command line; never creates one (``init`` does)."""
    path = Path(args.dir)
    if not path.exists():
        raise engine.ValidationError(f"{path} does not exist (create it with `regiondb init`)")
    with engine.open(path, create=False) as store:
        yield store
