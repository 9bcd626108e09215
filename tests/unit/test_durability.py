"""Durability is a setting of the LMDB environment: prove the settings, not only crash outcomes.

SIGKILL keeps the page cache, so crash tests alone would stay green if the store opened LMDB
with ``sync=False``. These read the environment's own flags back from LMDB.
"""

from __future__ import annotations

from pathlib import Path

import engine


def _flags(store: engine.Store) -> dict[str, bool]:
    return dict(store._e().lmdb.flags())  # the one place a test reads the raw environment


def test_default_store_syncs_data_and_meta_on_commit(tmp_path: Path) -> None:
    with engine.open(tmp_path / "s", region="ap-south-1") as store:
        assert store.durable is True
        flags = _flags(store)
        assert flags["sync"] is True, flags
        assert flags["metasync"] is True, flags
        assert flags["map_async"] is False, flags
        assert flags["writemap"] is False, flags  # no write-back through a shared mapping


def test_non_durable_store_says_so_and_skips_sync(tmp_path: Path) -> None:
    with engine.open(tmp_path / "s", region="ap-south-1", durable=False) as store:
        assert store.durable is False
        flags = _flags(store)
        assert flags["sync"] is False and flags["metasync"] is False, flags


def test_reopen_durable_after_non_durable(tmp_path: Path) -> None:
    with engine.open(tmp_path / "s", region="ap-south-1", durable=False) as store:
        store.create_table("t", partition_key="id").put({"id": "a"})
    with engine.open(tmp_path / "s") as store:
        assert _flags(store)["sync"] is True
        assert store.table("t").get("a") == {"id": "a"}
