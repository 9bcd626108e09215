"""Query and Scan: one native page each (``query_page`` / ``scan_page``).

The native page already follows DynamoDB: ``limit`` counts items read before the filter, a
page ends after about 1 MB, ``last_key`` is the ``LastEvaluatedKey``, ``scanned`` the
``ScannedCount``; ``start=`` is the ``ExclusiveStartKey``; ``segment``/``total_segments`` split
a scan. This module maps parameters: ``Select`` (``COUNT`` drops the items), ``IndexName``,
``ScanIndexForward``, and the legacy ``KeyConditions``/``QueryFilter``/``ScanFilter``.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from . import legacy
from .errors import validation
from .exprs import Exprs, gather, partition_value
from .items import capacity, native_kwargs
from .meta import TableInfo
from .params import bool_param, enum_param, int_param, str_param, table_name
from .values import marshal_item, unmarshal_item

if TYPE_CHECKING:
    from .endpoint import Endpoint

__all__ = ["OPERATIONS"]

_SELECT = ("ALL_ATTRIBUTES", "ALL_PROJECTED_ATTRIBUTES", "SPECIFIC_ATTRIBUTES", "COUNT")


def _select(req: dict[str, Any], ex: Exprs, index: str | None) -> str:
    select = enum_param(req, "Select", _SELECT)
    if select is None:
        return "SPECIFIC_ATTRIBUTES" if ex.projection else "ALL_ATTRIBUTES"
    if select == "SPECIFIC_ATTRIBUTES" and not ex.projection:
        raise validation("1 validation error detected: Must specify the AttributesToGet or "
                         "ProjectionExpression when choosing to get SPECIFIC_ATTRIBUTES")
    if select != "SPECIFIC_ATTRIBUTES" and ex.projection:
        what = "ProjectionExpression" if req.get("ProjectionExpression") else "AttributesToGet"
        raise validation(f"1 validation error detected: Cannot specify the {what} when "
                         f"choosing to get {select}")
    if select == "ALL_PROJECTED_ATTRIBUTES" and index is None:
        raise validation("1 validation error detected: ALL_PROJECTED_ATTRIBUTES can be used "
                         "only when Querying using an IndexName")
    return select


def _index_keys(ep: Endpoint, info: TableInfo, index: str | None) -> tuple[str, str | None]:
    if index is None:
        return info.partition_key, info.sort_key
    for ix in ep.tables.engine_indexes(info.name):
        if ix.name == index:
            return ix.partition_key, ix.sort_key
    names = ", ".join(ix.name for ix in ep.tables.engine_indexes(info.name))
    raise validation(f"The table does not have the specified index: {index}"
                     if not names else f"The table does not have the specified index: {index}")


def _page_response(req: dict[str, Any], page: Any, select: str, table: str) -> dict[str, Any]:
    out: dict[str, Any] = {"Count": len(page.items), "ScannedCount": page.scanned}
    if select != "COUNT":
        out["Items"] = [marshal_item(i) for i in page.items]
    if page.last_key is not None:
        out["LastEvaluatedKey"] = marshal_item(page.last_key)
    out.update(capacity(req, table, max(0.5, page.scanned / 8)))
    return out


def _common(req: dict[str, Any], index: str | None, info: TableInfo) -> dict[str, Any]:
    limit = int_param(req, "Limit", low=1)
    start = req.get("ExclusiveStartKey")
    if bool_param(req, "ConsistentRead") and index is not None \
            and info.indexes.get(index, {}).get("kind") != "LSI":
        raise validation("Consistent reads are not supported on global secondary indexes")
    out: dict[str, Any] = {"limit": limit, "index": index}
    if start is not None:
        out["start"] = unmarshal_item(start, "ExclusiveStartKey")
    return out


def query(ep: Endpoint, req: dict[str, Any]) -> dict[str, Any]:
    """Query: KeyConditionExpression or KeyConditions, filter, projection, Select, pages."""
    name = table_name(req)
    info = ep.info(name)
    index = str_param(req, "IndexName")
    pk_name, _ = _index_keys(ep, info, index)
    ex = gather(req, filter_="QueryFilter", projection=True)
    legacy.no_mixing(req, [("KeyConditions", "KeyConditionExpression")])
    text = req.get("KeyConditionExpression")
    if text is not None:
        if not isinstance(text, str) or not text.strip():
            raise validation("Invalid KeyConditionExpression: The expression can not be empty;")
        pk, ex.key = partition_value(text, pk_name, ex), text
    elif req.get("KeyConditions") is not None:
        pk, ex.key = legacy.key_conditions(ex.builder, req["KeyConditions"], pk_name)
    else:
        raise validation("Either the KeyConditions or KeyConditionExpression parameter must be "
                         "specified in the request.")
    select = _select(req, ex, index)
    forward = bool_param(req, "ScanIndexForward", default=True)
    kwargs = native_kwargs(ex, reverse=True if not forward else None,
                           **_common(req, index, info))
    page = ep.store.table(name).query_page(pk, **kwargs)
    return _page_response(req, page, select, name)


def scan(ep: Endpoint, req: dict[str, Any]) -> dict[str, Any]:
    """Scan: filter, projection, Select, pages, parallel segments."""
    name = table_name(req)
    info = ep.info(name)
    index = str_param(req, "IndexName")
    _index_keys(ep, info, index)
    ex = gather(req, filter_="ScanFilter", projection=True)
    select = _select(req, ex, index)
    segment = int_param(req, "Segment", low=0, high=999_999)
    total = int_param(req, "TotalSegments", low=1, high=1_000_000)
    if (segment is None) != (total is None):
        missing, present = ("TotalSegments", "Segment") if total is None else \
            ("Segment", "TotalSegments")
        raise validation(f"The {missing} parameter is required but was not present in the "
                         f"request when parameter {present} is present")
    if segment is not None and total is not None and segment >= total:
        raise validation("The Segment parameter is zero-based and must be less than parameter "
                         "TotalSegments")
    kwargs = native_kwargs(ex, segment=segment, total_segments=total,
                           **_common(req, index, info))
    scan_page = ep.store.table(name).scan_page
    if index is not None and "index" not in inspect.signature(scan_page).parameters:
        raise validation("Scan of a secondary index is not supported by this regiondb build; "
                         "Query it instead")
    page = scan_page(**kwargs)
    return _page_response(req, page, select, name)


OPERATIONS: dict[str, Any] = {"Query": query, "Scan": scan}
