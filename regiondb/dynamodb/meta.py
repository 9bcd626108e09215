"""DynamoDB's table metadata that the engine has no home for, kept so that it replicates.

The engine knows a table's name, key attributes, indexes, TTL attribute and the version that
created it. DynamoDB also has key *types* (``AttributeDefinitions``), a billing mode and
throughput, stream settings and whether an index is local or global. Those live in the
engine table :data:`META_TABLE` (``_d``: a name too short for DynamoDB, so no DynamoDB client
can touch it), one item per DynamoDB table, written through the ordinary write path — so they
replicate like data, and Mumbai's endpoint describes a table created through Virginia's with
the same attribute types and stream settings. (``store.set_meta`` is not used: it is local to
one store and never replicates.)

Each item records the creating version of the table it describes; an item left over from a
table that was deleted and created again (natively, say) is ignored. A table made through the
native API has no item: its key types are inferred from a stored item (``S`` when empty), its
billing mode is ``PAY_PER_REQUEST`` and its stream is off.

Derived, not stored: the ARN (region and name), the creation time (the creating version's HLC)
and the stream label (the creation time).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import engine

from .values import attr_type, item_size

__all__ = ["ACCOUNT", "META_TABLE", "TableInfo", "Tables"]

META_TABLE = "_d"
ACCOUNT = "000000000000"
_COUNT_TTL = 2.0  # seconds an ItemCount / TableSizeBytes figure is reused (DynamoDB: ~6 h)


@dataclass
class TableInfo:
    """One table as DynamoDB describes it: the engine's definition plus the metadata item."""

    name: str
    partition_key: str
    sort_key: str | None
    version: tuple[int, int]
    attrs: dict[str, str]
    billing: str = "PAY_PER_REQUEST"
    rcu: int = 0
    wcu: int = 0
    stream: dict[str, Any] = field(default_factory=dict)
    indexes: dict[str, dict[str, Any]] = field(default_factory=dict)
    stored: bool = False

    @property
    def created(self) -> float:
        """Creation time in epoch seconds (the creating version's physical HLC)."""
        return (self.version[0] >> 16) / 1000.0

    def key_names(self) -> list[str]:
        return [self.partition_key] + ([self.sort_key] if self.sort_key else [])

    def item(self) -> dict[str, Any]:
        """The metadata item stored in :data:`META_TABLE`."""
        out: dict[str, Any] = {
            "table": self.name, "created": list(self.version), "attrs": dict(self.attrs),
            "billing": self.billing, "rcu": self.rcu, "wcu": self.wcu,
            "stream": dict(self.stream), "indexes": {k: dict(v) for k, v in self.indexes.items()},
        }
        return out


def _label(created: float) -> str:
    return dt.datetime.fromtimestamp(created, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


class Tables:
    """Reads and writes :class:`TableInfo` for one store; caches item counts briefly."""

    def __init__(self, store: engine.Store) -> None:
        self.store = store
        self.region = store.region
        self._counts: dict[str, tuple[float, int, int]] = {}
        self._lock = threading.Lock()
        self._meta_ready = False

    # -- names -------------------------------------------------------------------------

    def arn(self, name: str) -> str:
        return f"arn:aws:dynamodb:{self.region}:{ACCOUNT}:table/{name}"

    def stream_arn(self, info: TableInfo) -> str:
        return f"{self.arn(info.name)}/stream/{self.stream_label(info)}"

    def stream_label(self, info: TableInfo) -> str:
        return str(info.stream.get("label") or _label(info.created))

    # -- reading -----------------------------------------------------------------------

    def names(self) -> list[str]:
        """DynamoDB-visible table names, sorted."""
        return [n for n in self.store.tables() if n != META_TABLE and len(n) >= 3]

    def get(self, name: str) -> TableInfo:
        """The table ``name``. :raises engine.TableNotFound: if there is none."""
        if name == META_TABLE:
            raise engine.TableNotFound(f"table {name!r} is reserved")
        table = self.store.table(name)
        tdef = next((d for d in self.store.table_defs() if d.name == name), None)
        version = tuple(tdef.version) if tdef is not None else (0, 0)
        info = TableInfo(name, table.partition_key, table.sort_key,
                         (int(version[0]), int(version[1])), {})
        raw = self._meta_item(name)
        if raw is not None and list(raw.get("created", ())) == list(info.version):
            info.attrs = dict(raw.get("attrs") or {})
            info.billing = str(raw.get("billing") or "PAY_PER_REQUEST")
            info.rcu, info.wcu = int(raw.get("rcu") or 0), int(raw.get("wcu") or 0)
            info.stream = dict(raw.get("stream") or {})
            info.indexes = {str(k): dict(v) for k, v in (raw.get("indexes") or {}).items()}
            info.stored = True
        for key in info.key_names():
            if key not in info.attrs:
                info.attrs[key] = self._infer_type(table, key)
        for ix in self.engine_indexes(name):
            for key in (ix.partition_key, ix.sort_key):
                if key and key not in info.attrs:
                    info.attrs[key] = self._infer_type(table, key)
        return info

    def _meta_item(self, name: str) -> dict[str, Any] | None:
        try:
            return self.store.table(META_TABLE).get(name)
        except engine.TableNotFound:
            return None

    @staticmethod
    def _infer_type(table: engine.Table, key: str) -> str:
        for item in table.scan(limit=20):
            if key in item:
                t = attr_type(item[key])
                if t in ("S", "N", "B"):
                    return t
        return "S"

    def engine_indexes(self, name: str) -> list[Any]:
        """The engine's indexes of a table (empty where this build has none)."""
        indexes = getattr(self.store.table(name), "indexes", None)
        return list(indexes()) if callable(indexes) else []

    def counts(self, name: str) -> tuple[int, int]:
        """``(ItemCount, TableSizeBytes)``, recounted at most every few seconds."""
        now = time.monotonic()
        with self._lock:
            hit = self._counts.get(name)
        if hit is not None and now - hit[0] < _COUNT_TTL:
            return hit[1], hit[2]
        n = size = 0
        for item in self.store.table(name).scan():
            n += 1
            size += item_size(item)
        with self._lock:
            self._counts[name] = (now, n, size)
        return n, size

    def forget_counts(self, name: str) -> None:
        with self._lock:
            self._counts.pop(name, None)

    # -- writing -----------------------------------------------------------------------

    def save(self, info: TableInfo) -> None:
        """Write ``info``'s metadata item (replicated like any item)."""
        if not self._meta_ready:
            self.store.create_table(META_TABLE, partition_key="table")
            self._meta_ready = True
        self.store.table(META_TABLE).put(info.item())

    def drop(self, name: str) -> None:
        """Delete the metadata item of a deleted table."""
        with contextlib.suppress(engine.TableNotFound):
            self.store.table(META_TABLE).delete(name)
        self.forget_counts(name)

    # -- describing --------------------------------------------------------------------

    def describe(self, info: TableInfo, status: str = "ACTIVE") -> dict[str, Any]:
        """DescribeTable's ``Table`` (and CreateTable's ``TableDescription``)."""
        count, size = self.counts(info.name) if status == "ACTIVE" else (0, 0)
        out: dict[str, Any] = {
            "TableName": info.name,
            "TableStatus": status,
            "KeySchema": _key_schema(info.partition_key, info.sort_key),
            "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t}
                                     for n, t in sorted(info.attrs.items())],
            "CreationDateTime": info.created,
            "ProvisionedThroughput": {"NumberOfDecreasesToday": 0,
                                      "ReadCapacityUnits": info.rcu,
                                      "WriteCapacityUnits": info.wcu},
            "TableSizeBytes": size,
            "ItemCount": count,
            "TableArn": self.arn(info.name),
            "TableId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{info.name}@{info.version}")),
            "DeletionProtectionEnabled": False,
        }
        if info.billing == "PAY_PER_REQUEST":
            out["BillingModeSummary"] = {"BillingMode": "PAY_PER_REQUEST",
                                         "LastUpdateToPayPerRequestDateTime": info.created}
        gsis, lsis = self._describe_indexes(info)
        if gsis:
            out["GlobalSecondaryIndexes"] = gsis
        if lsis:
            out["LocalSecondaryIndexes"] = lsis
        if info.stream.get("enabled"):
            out["StreamSpecification"] = {"StreamEnabled": True,
                                          "StreamViewType": info.stream.get("view")}
            out["LatestStreamLabel"] = self.stream_label(info)
            out["LatestStreamArn"] = self.stream_arn(info)
        return out

    def _describe_indexes(self, info: TableInfo) -> tuple[list[Any], list[Any]]:
        gsis: list[Any] = []
        lsis: list[Any] = []
        for ix in self.engine_indexes(info.name):
            extra = info.indexes.get(ix.name, {})
            local = extra.get("kind") == "LSI"
            desc: dict[str, Any] = {
                "IndexName": ix.name,
                "KeySchema": _key_schema(ix.partition_key, ix.sort_key),
                "Projection": projection_of(ix.projection),
                "IndexSizeBytes": 0,
                "ItemCount": 0,
                "IndexArn": f"{self.arn(info.name)}/index/{ix.name}",
            }
            if local:
                lsis.append(desc)
            else:
                desc["IndexStatus"] = "ACTIVE"
                desc["ProvisionedThroughput"] = {
                    "NumberOfDecreasesToday": 0,
                    "ReadCapacityUnits": int(extra.get("rcu") or 0),
                    "WriteCapacityUnits": int(extra.get("wcu") or 0)}
                gsis.append(desc)
        return gsis, lsis


def _key_schema(pk: str, sk: str | None) -> list[dict[str, str]]:
    out = [{"AttributeName": pk, "KeyType": "HASH"}]
    if sk:
        out.append({"AttributeName": sk, "KeyType": "RANGE"})
    return out


def projection_of(projection: Any) -> dict[str, Any]:
    """DynamoDB's ``Projection`` of an engine index projection."""
    if projection in ("ALL", "KEYS_ONLY"):
        return {"ProjectionType": projection}
    return {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(projection)}
