"""The public names of ``engine`` are a contract (py-lmdb's package_test): pin them."""

from __future__ import annotations

import dataclasses
import inspect

import engine


def test_all_is_pinned() -> None:
    assert sorted(engine.__all__) == [
        "ApplyReport", "AuthError", "Batch", "Change", "ClockSkewError", "ConditionFailed",
        "Conflict", "Error", "ForgottenNodeError", "Index", "IntegrityReport", "LogTruncated",
        "ManualClock", "Page", "ProtocolError", "RawChange", "SchemaError", "SegmentError",
        "Snapshot", "StorageError", "Store", "StoreClosed", "Table", "TableDef", "TableNotFound",
        "TransactionCanceled", "TransportBrokenError", "TransportError", "TransportTimeoutError",
        "ValidationError", "native", "native_summary", "open",
    ]
    for name in engine.__all__:
        assert hasattr(engine, name), name


def test_error_hierarchy() -> None:
    for name in ("AuthError", "ClockSkewError", "ConditionFailed", "ForgottenNodeError",
                 "LogTruncated", "ProtocolError", "SchemaError", "SegmentError", "StorageError",
                 "StoreClosed", "TableNotFound", "TransactionCanceled", "ValidationError"):
        cls = getattr(engine, name)
        assert issubclass(cls, engine.Error), name
        assert cls.__doc__, name
    assert issubclass(engine.ValidationError, ValueError)
    assert issubclass(engine.TableNotFound, KeyError)
    assert issubclass(engine.TransportBrokenError, engine.TransportError)
    assert issubclass(engine.TransportBrokenError, ConnectionError)
    assert issubclass(engine.TransportTimeoutError, engine.TransportError)
    assert issubclass(engine.TransportTimeoutError, TimeoutError)
    assert issubclass(engine.TransportError, engine.Error)


def test_contract_signatures() -> None:
    sig = inspect.signature(engine.open)
    assert list(sig.parameters)[:2] == ["path", "region"]
    for kw in ("durable", "max_clock_offset", "map_size", "wall_clock"):
        assert sig.parameters[kw].kind is inspect.Parameter.KEYWORD_ONLY
    assert sig.parameters["durable"].default is True
    assert sig.parameters["max_clock_offset"].default == 0.5
    q = inspect.signature(engine.Table.query)
    assert [p for p in q.parameters][1:11] == [
        "pk", "begins_with", "between", "gt", "gte", "lt", "lte", "reverse", "limit", "index"]
    u = inspect.signature(engine.Table.update)
    assert {"set", "remove", "condition"} <= set(u.parameters)
    # DESIGN.md's contract calls, with the parameters it names (a subset: calls may grow)
    contract = {
        engine.Store: {
            "create_table": ["name", "partition_key", "sort_key"], "table": ["name"],
            "tables": [], "batch": [], "changes": ["since"], "version_vector": [],
            "digest": [], "conflicts": ["since"], "close": [], "log_range": [],
            "apply_changes": [], "snapshot": [], "merge_snapshot": [], "compact": [],
            "forget": ["node_id"], "conflict_count": [], "stats": [],
            "create_index": ["table", "index"], "drop_index": ["table", "name"],
            "integrity_check": [],
        },
        engine.Table: {
            "put": ["item", "condition"], "get": ["pk", "sk"],
            "update": ["pk", "sk", "set", "remove", "condition"],
            "delete": ["pk", "sk", "condition"], "scan": ["limit"], "indexes": [],
            "query": ["pk", "index"],
        },
        engine.Batch: {"put": ["table", "item"], "update": ["table", "pk", "sk", "set", "remove"],
                       "delete": ["table", "pk", "sk"]},
    }
    for cls, methods in contract.items():
        for method, params in methods.items():
            fn = getattr(cls, method)
            assert inspect.isfunction(fn), f"{cls.__name__}.{method}"
            names = list(inspect.signature(fn).parameters)
            assert names[0] == "self", f"{cls.__name__}.{method}"
            missing = [p for p in params if p not in names]
            assert not missing, f"{cls.__name__}.{method} lacks {missing}"
    for name in ("node_id", "region", "path"):
        assert isinstance(getattr(engine.Store, name), property), name

    # the data API of issue 12: old parameters stay in place, new ones are keyword-only
    kw_only = inspect.Parameter.KEYWORD_ONLY
    new = {
        "put": ("item", "condition", "names", "values", "returning"),
        "get": ("pk", "sk", "projection", "names"),
        "update": ("pk", "sk", "set", "remove", "condition", "expression", "names", "values",
                   "add", "delete", "returning"),
        "delete": ("pk", "sk", "condition", "names", "values", "returning"),
        "query": ("pk", "begins_with", "between", "gt", "gte", "lt", "lte", "reverse", "limit",
                  "index", "key", "filter", "projection", "names", "values"),
        "query_page": ("pk", "begins_with", "between", "gt", "gte", "lt", "lte", "reverse",
                       "limit", "index", "key", "filter", "projection", "names", "values",
                       "start"),
        "scan": ("limit", "filter", "projection", "names", "values", "segment",
                 "total_segments", "index"),
        "scan_page": ("limit", "filter", "projection", "names", "values", "start", "segment",
                      "total_segments", "index"),
    }
    old_positional = {"put": 2, "get": 2, "update": 2, "delete": 3, "query": 1, "query_page": 1,
                      "scan": 1, "scan_page": 1}
    for method, params in new.items():
        sig = inspect.signature(getattr(engine.Table, method))
        assert tuple(sig.parameters)[1:] == params, method
        for name in params[old_positional[method]:]:
            assert sig.parameters[name].kind is kw_only, (method, name)
    assert inspect.signature(engine.Table.update).parameters["returning"].default == "ALL_NEW"
    for method in ("put", "delete"):
        assert inspect.signature(getattr(engine.Table, method)).parameters[
            "returning"].default == "NONE"
    assert list(inspect.signature(engine.Batch.check).parameters)[1:] == [
        "table", "pk", "sk", "condition", "names", "values"]
    assert issubclass(engine.TransactionCanceled, engine.ConditionFailed)
    assert list(inspect.signature(engine.Store.get_many).parameters)[1:] == ["keys"]
    assert [f.name for f in dataclasses.fields(engine.Page)] == ["items", "last_key", "scanned"]
    for method in ("create_table", "table", "tables", "batch", "changes", "version_vector",
                   "digest", "conflicts", "close", "log_range", "apply_changes", "snapshot",
                   "merge_snapshot", "compact", "forget", "conflict_count", "stats"):
        assert callable(getattr(engine.Store, method)), method
    for method in ("put", "get", "update", "delete", "query", "scan"):
        assert callable(getattr(engine.Table, method)), method


def test_store_identity_is_read_only(tmp_path: object) -> None:
    import pathlib

    import pytest

    with engine.open(pathlib.Path(str(tmp_path)) / "s", region="ap-south-1") as store:
        for name, value in (("node_id", 7), ("region", "x"), ("path", "/elsewhere"),
                            ("durable", False)):
            with pytest.raises(AttributeError):
                setattr(store, name, value)
        assert store.region == "ap-south-1" and store.node_id > 0


def test_regiondb_front_door_is_pinned() -> None:
    import regiondb
    import replication

    assert regiondb.__all__ == sorted(regiondb.__all__)
    for name in regiondb.__all__:
        assert hasattr(regiondb, name), name
    # the front door re-exports the very objects, not copies
    assert regiondb.open is engine.open and regiondb.Store is engine.Store
    assert regiondb.Error is engine.Error and regiondb.ValidationError is engine.ValidationError
    assert regiondb.sync_dir is replication.sync_dir and regiondb.serve is replication.serve
    assert regiondb.Replicator is replication.Replicator


def test_layering_no_upward_imports() -> None:
    """engine imports neither replication nor regiondb; replication does not import regiondb."""
    import ast
    import pathlib

    root = pathlib.Path(engine.__file__).parent.parent
    forbidden = {"engine": ("replication", "regiondb"), "replication": ("regiondb",)}
    bad = []
    for pkg, banned in forbidden.items():
        for path in (root / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                bad += [f"{path.relative_to(root)}: {n}" for n in names
                        if n.split(".")[0] in banned]
    assert bad == []
