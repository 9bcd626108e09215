"""Control-plane operations: CreateTable, DescribeTable, ListTables, DeleteTable, UpdateTable,
UpdateTimeToLive and DescribeTimeToLive.

Tables, indexes and TTL settings are the engine's (``create_table(indexes=)``,
``create_index``, ``drop_index``, ``delete_table``, ``set_ttl``); what only DynamoDB has —
attribute types, billing, streams, LSI or GSI — goes to the replicated metadata of
:mod:`regiondb.dynamodb.meta`. Every table is ``ACTIVE`` at once (creation is one local
transaction), so boto3's ``table_exists`` waiter returns on its first poll.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import engine

from .errors import in_use, not_found, validation
from .meta import TableInfo, Tables
from .params import (
    check_length,
    check_table_name,
    enum_param,
    int_param,
    list_param,
    map_param,
    str_param,
    table_name,
)

__all__ = ["OPERATIONS"]

_VIEWS = ("NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES", "KEYS_ONLY")


def _key_schema(schema: object, where: str) -> tuple[str, str | None]:
    if not isinstance(schema, list):
        raise validation(f"1 validation error detected: Value null at '{where}' failed to "
                         "satisfy constraint: Member must not be null")
    check_length(schema, where, 1, 2)
    names: list[str] = []
    for i, el in enumerate(schema):
        if not isinstance(el, dict) or not isinstance(el.get("AttributeName"), str):
            raise validation(f"Invalid {where}: KeySchemaElement {i + 1} lacks an AttributeName")
        kind = el.get("KeyType")
        want = "HASH" if i == 0 else "RANGE"
        if kind not in ("HASH", "RANGE"):
            raise validation(f"1 validation error detected: Value '{kind}' at '{where}.{i + 1}."
                             "member.keyType' failed to satisfy constraint: Member must satisfy "
                             "enum value set: [HASH, RANGE]")
        if kind != want:
            nth = "first" if i == 0 else "second"
            raise validation(f"Invalid KeySchema: The {nth} KeySchemaElement is not a {want} "
                             "key type")
        names.append(el["AttributeName"])
    if len(names) == 2 and names[0] == names[1]:
        raise validation("Both the Hash Key and the Range Key element in the KeySchema have the "
                         f"same name: {names[0]}")
    return names[0], (names[1] if len(names) == 2 else None)


def _attr_defs(req: dict[str, Any]) -> dict[str, str]:
    defs = list_param(req, "AttributeDefinitions") or []
    out: dict[str, str] = {}
    for d in defs:
        if not isinstance(d, dict) or not isinstance(d.get("AttributeName"), str):
            raise validation("Invalid AttributeDefinitions: each needs an AttributeName")
        t = d.get("AttributeType")
        if t not in ("S", "N", "B"):
            raise validation(f"1 validation error detected: Value '{t}' at "
                             "'attributeDefinitions.member.attributeType' failed to satisfy "
                             "constraint: Member must satisfy enum value set: [B, N, S]")
        if d["AttributeName"] in out:
            raise validation("Cannot have two attributes with the same name: "
                             f"{d['AttributeName']}")
        out[d["AttributeName"]] = t
    return out


def _projection(spec: object, index: str) -> Any:
    if not isinstance(spec, dict):
        raise validation(f"One or more parameter values were invalid: Projection is missing "
                         f"for index {index}")
    kind = spec.get("ProjectionType", "ALL")
    if kind in ("ALL", "KEYS_ONLY"):
        if spec.get("NonKeyAttributes"):
            raise validation("One or more parameter values were invalid: ProjectionType is "
                             f"{kind}, but NonKeyAttributes is specified")
        return kind
    if kind == "INCLUDE":
        attrs = spec.get("NonKeyAttributes")
        if not isinstance(attrs, list) or not attrs or \
                not all(isinstance(a, str) for a in attrs):
            raise validation("One or more parameter values were invalid: NonKeyAttributes must "
                             "not be empty when ProjectionType is INCLUDE")
        return list(attrs)
    raise validation(f"1 validation error detected: Value '{kind}' at 'projection."
                     "projectionType' failed to satisfy constraint: Member must satisfy enum "
                     "value set: [ALL, INCLUDE, KEYS_ONLY]")


def _throughput(spec: object) -> tuple[int, int]:
    if not isinstance(spec, dict):
        return 0, 0
    r, w = spec.get("ReadCapacityUnits"), spec.get("WriteCapacityUnits")
    if not isinstance(r, int) or not isinstance(w, int) or r < 1 or w < 1:
        raise validation("One or more parameter values were invalid: ReadCapacityUnits and "
                         "WriteCapacityUnits must both be specified and at least 1")
    return r, w


def _index(spec: object, kind: str, pk: str, attrs: dict[str, str],
           billing: str) -> tuple[Any, dict[str, Any]]:
    """An engine Index and its metadata from a GSI or LSI specification."""
    index_cls = getattr(engine, "Index", None)
    if index_cls is None:
        raise validation("Secondary indexes are not supported by this regiondb build")
    if not isinstance(spec, dict) or not isinstance(spec.get("IndexName"), str):
        raise validation("One or more parameter values were invalid: an index needs an "
                         "IndexName")
    name = check_table_name(spec["IndexName"], "indexName")
    ipk, isk = _key_schema(spec.get("KeySchema"), "keySchema")
    for key in (ipk, isk):
        if key is not None and key not in attrs:
            raise validation("One or more parameter values were invalid: Some index key "
                             "attributes are not defined in AttributeDefinitions. Keys: "
                             f"[{', '.join(k for k in (ipk, isk) if k)}], AttributeDefinitions:"
                             f" [{', '.join(attrs)}]")
    if kind == "LSI" and ipk != pk:
        raise validation("One or more parameter values were invalid: Index KeySchema does not "
                         f"have the same leading hash key as table KeySchema for index: {name}. "
                         f"index hash key: {ipk}, table hash key: {pk}")
    meta: dict[str, Any] = {"kind": kind, "keys": [k for k in (ipk, isk) if k]}
    if kind == "GSI":
        pt = spec.get("ProvisionedThroughput")
        if billing == "PROVISIONED" and pt is None:
            raise validation("One or more parameter values were invalid: ProvisionedThroughput "
                             f"is not specified for index: {name}")
        meta["rcu"], meta["wcu"] = _throughput(pt)
    return index_cls(name, partition_key=ipk, sort_key=isk,
                     projection=_projection(spec.get("Projection"), name)), meta


def _stream_spec(spec: object) -> dict[str, Any]:
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise validation("StreamSpecification must be an object")
    if not spec.get("StreamEnabled"):
        return {"enabled": False}
    view = spec.get("StreamViewType")
    if view not in _VIEWS:
        raise validation("One or more parameter values were invalid: StreamViewType must be one "
                         f"of {', '.join(_VIEWS)} when StreamEnabled is true")
    return {"enabled": True, "view": view}


def _billing(req: dict[str, Any]) -> tuple[str, int, int]:
    billing = enum_param(req, "BillingMode", ("PROVISIONED", "PAY_PER_REQUEST"),
                         default="PROVISIONED")
    assert billing is not None
    pt = map_param(req, "ProvisionedThroughput")
    if billing == "PAY_PER_REQUEST":
        if pt is not None:
            raise validation("One or more parameter values were invalid: Neither "
                             "ReadCapacityUnits nor WriteCapacityUnits can be specified when "
                             "BillingMode is PAY_PER_REQUEST")
        return billing, 0, 0
    if pt is None:
        raise validation("One or more parameter values were invalid: ReadCapacityUnits and "
                         "WriteCapacityUnits must both be specified when BillingMode is "
                         "PROVISIONED")
    return (billing, *_throughput(pt))


def create_table(tables: Tables, req: dict[str, Any]) -> dict[str, Any]:
    """CreateTable: key schema, attribute definitions, GSIs and LSIs, billing, streams."""
    name = table_name(req)
    pk, sk = _key_schema(req.get("KeySchema"), "keySchema")
    attrs = _attr_defs(req)
    keys = [k for k in (pk, sk) if k]
    missing = [k for k in keys if k not in attrs]
    if missing:
        raise validation("One or more parameter values were invalid: Some index key attributes "
                         f"are not defined in AttributeDefinitions. Keys: [{', '.join(keys)}], "
                         f"AttributeDefinitions: [{', '.join(attrs)}]")
    billing, rcu, wcu = _billing(req)
    indexes: list[Any] = []
    index_meta: dict[str, dict[str, Any]] = {}
    for kind, param in (("GSI", "GlobalSecondaryIndexes"), ("LSI", "LocalSecondaryIndexes")):
        for spec in list_param(req, param) or []:
            if kind == "LSI" and sk is None:
                raise validation("One or more parameter values were invalid: Table KeySchema "
                                 "does not have a range key, which is required when specifying "
                                 "a LocalSecondaryIndex")
            ix, meta = _index(spec, kind, pk, attrs, billing)
            if ix.name in index_meta:
                raise validation("One or more parameter values were invalid: Duplicate index "
                                 f"name: {ix.name}")
            indexes.append(ix)
            index_meta[ix.name] = meta
    used = set(keys).union(*(m["keys"] for m in index_meta.values()))
    if set(attrs) != used:
        raise validation("One or more parameter values were invalid: Number of attributes in "
                         "KeySchema does not exactly match number of attributes defined in "
                         "AttributeDefinitions")
    stream = _stream_spec(req.get("StreamSpecification"))
    if name in tables.store.tables():
        raise in_use(f"Table already exists: {name}")
    tables.store.create_table(name, partition_key=pk, sort_key=sk, indexes=indexes or None)
    info = tables.get(name)
    info.attrs, info.billing, info.rcu, info.wcu = attrs, billing, rcu, wcu
    info.indexes = index_meta
    if stream.get("enabled"):
        stream["label"] = tables.stream_label(info)
    info.stream = stream
    tables.save(info)
    return {"TableDescription": tables.describe(info)}


def describe_table(tables: Tables, req: dict[str, Any]) -> dict[str, Any]:
    """DescribeTable."""
    return {"Table": tables.describe(tables.get(table_name(req)))}


def list_tables(tables: Tables, req: dict[str, Any]) -> dict[str, Any]:
    """ListTables with ``Limit`` (1-100) and ``ExclusiveStartTableName`` paging."""
    limit = int_param(req, "Limit", low=1, high=100) or 100
    start = str_param(req, "ExclusiveStartTableName")
    names = [n for n in tables.names() if start is None or n > start]
    out: dict[str, Any] = {"TableNames": names[:limit]}
    if len(names) > limit:
        out["LastEvaluatedTableName"] = names[limit - 1]
    return out


def delete_table(tables: Tables, req: dict[str, Any]) -> dict[str, Any]:
    """DeleteTable: the engine's ``delete_table`` (replicated), then its metadata."""
    name = table_name(req)
    info = tables.get(name)
    desc = tables.describe(info, status="DELETING")
    drop = getattr(tables.store, "delete_table", None)
    if drop is None:
        raise validation("DeleteTable is not supported by this regiondb build")
    drop(name)
    tables.drop(name)
    return {"TableDescription": desc}


def _gsi_updates(tables: Tables, info: TableInfo, updates: list[Any],
                 attrs: dict[str, str]) -> None:
    for u in updates:
        if not isinstance(u, dict) or len(u) != 1:
            raise validation("Each GlobalSecondaryIndexUpdate must hold one of Create, Update "
                             "or Delete")
        ((action, spec),) = u.items()
        if action == "Create":
            merged = {**info.attrs, **attrs}
            ix, meta = _index(spec, "GSI", info.partition_key, merged, info.billing)
            if ix.name in {i.name for i in tables.engine_indexes(info.name)}:
                raise validation(f"One or more parameter values were invalid: Table already has "
                                 f"an index named {ix.name}")
            tables.store.create_index(info.name, ix)
            info.attrs = merged
            info.indexes[ix.name] = meta
        elif action == "Delete":
            name = spec.get("IndexName") if isinstance(spec, dict) else None
            if not isinstance(name, str) or \
                    name not in {i.name for i in tables.engine_indexes(info.name)}:
                raise not_found(f"Requested resource not found: Index: {name} not found")
            tables.store.drop_index(info.name, name)
            info.indexes.pop(name, None)
        elif action == "Update":
            name = spec.get("IndexName") if isinstance(spec, dict) else None
            if name not in info.indexes:
                raise not_found(f"Requested resource not found: Index: {name} not found")
            info.indexes[name]["rcu"], info.indexes[name]["wcu"] = _throughput(
                spec.get("ProvisionedThroughput"))
        else:
            raise validation(f"Unknown GlobalSecondaryIndexUpdate action: {action}")


def update_table(tables: Tables, req: dict[str, Any]) -> dict[str, Any]:
    """UpdateTable: add, delete or retune a GSI; billing, throughput and stream settings."""
    name = table_name(req)
    info = tables.get(name)
    attrs = _attr_defs(req)
    if "BillingMode" in req or "ProvisionedThroughput" in req:
        sub: dict[str, Any] = {k: req[k] for k in ("BillingMode", "ProvisionedThroughput")
                               if k in req}
        sub.setdefault("BillingMode", info.billing)
        info.billing, info.rcu, info.wcu = _billing(sub)
    if "StreamSpecification" in req:
        stream = _stream_spec(req["StreamSpecification"])
        if stream.get("enabled") and info.stream.get("enabled"):
            raise validation(f"Table already has an enabled stream: {tables.stream_arn(info)}")
        if not stream.get("enabled") and not info.stream.get("enabled"):
            raise validation("Table already has no stream enabled" if stream else
                             "StreamSpecification needs StreamEnabled")
        if stream.get("enabled"):
            stream["label"] = _label_now(time.time())
        info.stream = stream
    _gsi_updates(tables, info, list_param(req, "GlobalSecondaryIndexUpdates") or [], attrs)
    tables.save(info)
    tables.forget_counts(name)
    return {"TableDescription": tables.describe(tables.get(name))}


def _label_now(now: float) -> str:
    return dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def ttl_attribute(store: engine.Store, name: str) -> str | None:
    """The engine's TTL attribute of a table (``TableDef.ttl_attribute``; ``None`` when off
    or not in this build)."""
    store.table(name)  # TableNotFound if absent
    for d in store.table_defs():
        if d.name == name:
            v = getattr(d, "ttl_attribute", None)
            return v if isinstance(v, str) else None
    return None


def update_ttl(tables: Tables, req: dict[str, Any]) -> dict[str, Any]:
    """UpdateTimeToLive: the engine's ``set_ttl`` (replicated like the table definition)."""
    name = table_name(req)
    tables.get(name)
    spec = map_param(req, "TimeToLiveSpecification")
    if spec is None or not isinstance(spec.get("Enabled"), bool) \
            or not isinstance(spec.get("AttributeName"), str) or not spec["AttributeName"]:
        raise validation("1 validation error detected: Value null at 'timeToLiveSpecification' "
                         "failed to satisfy constraint: Member must not be null")
    current = ttl_attribute(tables.store, name)
    set_ttl = getattr(tables.store, "set_ttl", None)
    if set_ttl is None:
        raise validation("TimeToLive is not supported by this regiondb build")
    if spec["Enabled"]:
        if current is not None:
            raise validation("TimeToLive is already enabled")
        set_ttl(name, spec["AttributeName"])
    else:
        if current is None:
            raise validation("TimeToLive is already disabled")
        if current != spec["AttributeName"]:
            raise validation(f"TimeToLive is active on a different AttributeName: current "
                             f"AttributeName is {current}")
        set_ttl(name, None)
    return {"TimeToLiveSpecification": {"Enabled": spec["Enabled"],
                                        "AttributeName": spec["AttributeName"]}}


def describe_ttl(tables: Tables, req: dict[str, Any]) -> dict[str, Any]:
    """DescribeTimeToLive."""
    name = table_name(req)
    tables.get(name)
    attr = ttl_attribute(tables.store, name)
    if attr is None:
        return {"TimeToLiveDescription": {"TimeToLiveStatus": "DISABLED"}}
    return {"TimeToLiveDescription": {"TimeToLiveStatus": "ENABLED", "AttributeName": attr}}


OPERATIONS: dict[str, Any] = {
    "CreateTable": create_table,
    "DescribeTable": describe_table,
    "ListTables": list_tables,
    "DeleteTable": delete_table,
    "UpdateTable": update_table,
    "UpdateTimeToLive": update_ttl,
    "DescribeTimeToLive": describe_ttl,
}
