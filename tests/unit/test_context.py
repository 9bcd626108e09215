"""engine.context.Context: what the engine's modules get of an open store."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import engine
from engine.context import Context


def _ctx(store: engine.Store) -> Context:
    ctx = store._ctx  # the one the Store passes to its modules
    assert isinstance(ctx, Context)
    return ctx


def test_env_raises_store_closed_once_closed(tmp_path: Path) -> None:
    store = engine.open(tmp_path / "s", region="r")
    ctx = _ctx(store)
    assert ctx.env.path == ctx.path == store.path and not ctx.closed
    node = ctx.node_id
    store.close()
    assert ctx.closed
    with pytest.raises(engine.StoreClosed, match=r"store .*/s is closed"):
        _ = ctx.env
    assert ctx.node_id == node  # still known after close (repr, logs)
    ctx.close()  # twice is allowed


def test_table_def_cache(store: engine.Store) -> None:
    ctx = _ctx(store)
    with pytest.raises(engine.TableNotFound, match="'t' does not exist"):
        ctx.table_def("t")
    with pytest.raises(engine.ValidationError, match="table name must be a string"):
        ctx.table_def(7)  # type: ignore[arg-type]
    store.create_table("t", partition_key="k")
    first = ctx.table_def("t")
    assert (first.name, first.partition_key, first.sort_key) == ("t", "k", None)
    assert ctx.table_def("t") is first  # cached
    ctx.uncache_tables("t")
    again = ctx.table_def("t")
    assert again == first and again is not first  # read again
    assert [d.name for d in ctx.table_defs()] == ["t"]
    store.delete_table("t")
    with pytest.raises(engine.TableNotFound):
        ctx.table_def("t")  # the deletion dropped it from the cache
    assert ctx.table_defs() == []


def test_notify_survives_a_failing_listener(store: engine.Store,
                                            caplog: pytest.LogCaptureFixture) -> None:
    ctx = _ctx(store)
    seen: list[int] = []

    def bad(pos: int) -> None:
        raise RuntimeError("listener bug")

    ctx.add_listener(bad)
    ctx.add_listener(seen.append)
    with caplog.at_level(logging.ERROR, logger="engine.context"):
        store.create_table("t", partition_key="k")
    assert seen == [store.position()]
    assert "change listener" in caplog.text and "listener bug" in caplog.text
    ctx.remove_listener(bad)
    ctx.remove_listener(bad)  # not registered any more: no error
    store.table("t").put({"k": 1})
    assert seen == [store.position() - 1, store.position()]


def test_identity_is_shared_by_the_stores_of_one_directory(tmp_path: Path) -> None:
    with engine.open(tmp_path / "s", region="r") as a, engine.open(tmp_path / "s") as b:
        old = a.node_id
        assert b.node_id == old
        new = a.reidentify("a test")
        assert new != old and a.node_id == b.node_id == new
        assert [e["old"] for e in b.lineage_events()] == [old]
