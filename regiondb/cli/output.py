"""What the ``regiondb`` commands print: JSON lines, hex node ids, sizes, report data.

Data goes to stdout (one JSON value a line, :mod:`regiondb.jsonvalues` encoding); errors
and progress go to stderr elsewhere. Nothing here touches a store.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import engine

from ..jsonvalues import dumps

PROG = "regiondb"
SERVE_STATUS = "serve-status.json"


def write_line(line: str) -> None:
    """One line of human output on stdout."""
    sys.stdout.write(line + "\n")


def emit(obj: Any) -> None:
    """One JSON line on stdout."""
    write_line(dumps(obj))


def hex_id(node: int) -> str:
    """A node id as the 16 hex digits every command shows and accepts."""
    return f"{node:016x}"


def vv_json(vv: dict[int, int]) -> dict[str, int]:
    """A version vector with hex node ids, in node order (JSON keys must be strings)."""
    return {hex_id(k): v for k, v in sorted(vv.items())}


def key_dict(table: engine.Table, pk: Any, sk: Any) -> dict[str, Any]:
    """An item's key attributes as the table names them."""
    key = {table.partition_key: pk}
    if table.sort_key is not None:
        key[table.sort_key] = sk
    return key


def key_text(values: Sequence[Any]) -> str:
    """Key values as they would be typed back on the command line."""
    return " ".join(dumps(v) for v in values)


def size_text(n: int) -> str:
    """A byte count for people: ``512 B``, ``1.5 KB`` ... ``2.0 GB``."""
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def ms_text(v: object) -> str:
    """A latency in ms with one decimal, or ``-`` when there is no figure yet."""
    return f"{v:.1f}" if isinstance(v, (int, float)) else "-"


def report_dict(report: object) -> dict[str, Any]:
    """A replication report (a dataclass, or any object or dict) as plain JSON-able data."""
    if isinstance(report, dict):
        src = report
    elif dataclasses.is_dataclass(report) and not isinstance(report, type):
        src = {f.name: getattr(report, f.name) for f in dataclasses.fields(report)}
    elif hasattr(report, "__dict__"):
        src = {k: v for k, v in vars(report).items() if not k.startswith("_")}
    else:
        return {"report": repr(report)}
    return {str(k): plain(v) for k, v in src.items()}


def plain(v: object) -> Any:
    """``v`` with paths, exceptions, sets and nested reports made JSON-able; int keys (node
    ids) become hex."""
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, BaseException):
        return f"{type(v).__name__}: {v}"
    if isinstance(v, dict):
        return {(hex_id(k) if isinstance(k, int) and not isinstance(k, bool) else str(k)): plain(x)
                for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        return [plain(x) for x in v]
    if dataclasses.is_dataclass(v) or (hasattr(v, "__dict__") and not callable(v)):
        return report_dict(v)
    return v
