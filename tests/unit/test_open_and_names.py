"""engine.open racing another process, and names that are not valid Unicode (issue 10 item 7)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import lmdb
import pytest

import engine
from engine import env as envmod

_GROW = """
import sys, lmdb
path, size = sys.argv[1], int(sys.argv[2])
e = lmdb.open(path, map_size=size, max_dbs=16, subdir=True)
meta = e.open_db(b"meta")
with e.begin(write=True) as txn:  # data past the old map's end: its users must adopt the size
    txn.put(b"x:grown-by-test", b"\\x59" + b"y" * (4 << 20), db=meta)
with e.begin(write=True) as txn:
    txn.delete(b"x:grown-by-test", db=meta)
e.close()
"""


def test_open_adopts_a_map_grown_by_another_process_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process grows the map between LMDB's open and opening the databases: the open
    adopts the new size and succeeds (it raised a raw lmdb.MapResizedError)."""
    path = tmp_path / "s"
    with engine.open(path, region="r", map_size=1 << 20) as s:
        s.create_table("t", partition_key="k").put({"k": 1})
    real_open = lmdb.open
    grown = []

    def open_then_grow(*args: Any, **kwargs: Any) -> Any:
        env = real_open(*args, **kwargs)
        if not grown:  # a real second process grows the map right now
            subprocess.run([sys.executable, "-c", _GROW, str(path), str(64 << 20)], check=True)
            grown.append(True)
        return env

    monkeypatch.setattr(envmod.lmdb, "open", open_then_grow)
    with engine.open(path, map_size=1 << 20) as s:
        assert grown
        assert s.table("t").get(1) == {"k": 1}
        assert s.stats()["map_size"] >= 64 << 20


LONE = "\ud800"


@pytest.mark.parametrize("case", [
    "attr", "long attr", "map key", "nested map key", "update set", "update remove",
    "partition key name", "sort key name", "set_meta", "get_meta", "batch",
])
def test_lone_surrogates_in_names_are_validation_errors(tmp_path: Path, case: str) -> None:
    with engine.open(tmp_path / "s", region="r", durable=False) as s:
        t = s.create_table("t", partition_key="k")
        before = s.digest(), s.version_vector()
        calls = {
            "attr": lambda: t.put({"k": 1, "a" + LONE: 1}),
            "long attr": lambda: t.put({"k": 1, "a" * 70 + LONE: 1}),
            "map key": lambda: t.put({"k": 1, "m": {"x" + LONE: 1}}),
            "nested map key": lambda: t.put({"k": 1, "m": [[{"x" + LONE: 1}]]}),
            "update set": lambda: t.update(1, set={"a" + LONE: 1}),
            "update remove": lambda: t.update(1, remove=["a" + LONE]),
            "partition key name": lambda: s.create_table("t2", partition_key="p" + LONE),
            "sort key name": lambda: s.create_table("t3", partition_key="p", sort_key=LONE),
            "set_meta": lambda: s.set_meta("m" + LONE, 1),
            "get_meta": lambda: s.get_meta("m" + LONE),
            "batch": lambda: s.batch().put(t, {"k": 2, LONE: 1}),
        }
        with pytest.raises(engine.ValidationError, match="Unicode"):
            calls[case]()
        assert (s.digest(), s.version_vector()) == before
