"""The public names of ``engine`` are a contract (py-lmdb's package_test): pin them."""

from __future__ import annotations

import inspect

import engine


def test_all_is_pinned() -> None:
    assert sorted(engine.__all__) == [
        "ApplyReport", "AuthError", "Batch", "Change", "ClockSkewError", "ConditionFailed",
        "Conflict", "Error", "ForgottenNodeError", "LogTruncated", "ManualClock",
        "ProtocolError", "RawChange", "SchemaError", "SegmentError", "Snapshot", "StorageError",
        "Store", "StoreClosed", "Table", "TableDef", "TableNotFound", "ValidationError", "open",
    ]
    for name in engine.__all__:
        assert hasattr(engine, name), name


def test_error_hierarchy() -> None:
    for name in ("AuthError", "ClockSkewError", "ConditionFailed", "ForgottenNodeError",
                 "LogTruncated", "ProtocolError", "SchemaError", "SegmentError", "StorageError",
                 "StoreClosed", "TableNotFound", "ValidationError"):
        cls = getattr(engine, name)
        assert issubclass(cls, engine.Error), name
        assert cls.__doc__, name
    assert issubclass(engine.ValidationError, ValueError)
    assert issubclass(engine.TableNotFound, KeyError)


def test_contract_signatures() -> None:
    sig = inspect.signature(engine.open)
    assert list(sig.parameters)[:2] == ["path", "region"]
    for kw in ("durable", "max_clock_offset", "map_size", "wall_clock"):
        assert sig.parameters[kw].kind is inspect.Parameter.KEYWORD_ONLY
    assert sig.parameters["durable"].default is True
    assert sig.parameters["max_clock_offset"].default == 0.5
    q = inspect.signature(engine.Table.query)
    assert [p for p in q.parameters][1:] == [
        "pk", "begins_with", "between", "gt", "gte", "lt", "lte", "reverse", "limit"]
    u = inspect.signature(engine.Table.update)
    assert {"set", "remove", "condition"} <= set(u.parameters)
    for method in ("create_table", "table", "tables", "batch", "changes", "version_vector",
                   "digest", "conflicts", "close", "log_range", "apply_changes", "snapshot",
                   "merge_snapshot", "compact", "forget", "conflict_count", "stats"):
        assert callable(getattr(engine.Store, method)), method
    for method in ("put", "get", "update", "delete", "query", "scan"):
        assert callable(getattr(engine.Table, method)), method
