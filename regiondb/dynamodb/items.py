"""Single-item operations: PutItem, GetItem, UpdateItem, DeleteItem.

Each is one native call — ``put``, ``get``, ``update``, ``delete`` — with the request's
expressions (:mod:`regiondb.dynamodb.exprs`) and ``returning=`` for ``ReturnValues``. A failed
condition is the engine's ``ConditionFailed``, whose ``item`` is the item as it was: returned
in the ``ConditionalCheckFailedException`` when ``ReturnValuesOnConditionCheckFailure`` is
``ALL_OLD``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import engine

from .errors import conditional_failed, validation
from .exprs import Exprs, gather
from .keys import check_item, key_of, key_values
from .params import enum_param, table_name
from .values import BODY_SIZE, marshal_item, unmarshal_item

if TYPE_CHECKING:
    from .endpoint import Endpoint

__all__ = ["OPERATIONS", "capacity", "native_kwargs", "on_condition_failure"]

_ON_FAIL = ("NONE", "ALL_OLD")


def native_kwargs(ex: Exprs, **extra: Any) -> dict[str, Any]:
    """Keyword arguments for a native call: the expressions given and their placeholders,
    nothing for those absent (so a plain put stays a plain put)."""
    out: dict[str, Any] = {k: v for k, v in extra.items() if v is not None}
    given = {"condition": ex.condition, "filter": ex.filter, "projection": ex.projection,
             "key": ex.key, "expression": ex.update}
    out.update({k: v for k, v in given.items() if v is not None})
    out.update(ex.placeholders())
    return out


def on_condition_failure(req: dict[str, Any]) -> str:
    v = enum_param(req, "ReturnValuesOnConditionCheckFailure", _ON_FAIL, default="NONE")
    assert v is not None
    return v


def failed(exc: engine.ConditionFailed, mode: str) -> Exception:
    """The ConditionalCheckFailedException for a failed write."""
    item = getattr(exc, "item", None)
    return conditional_failed(marshal_item(item) if mode == "ALL_OLD" and item else None)


def capacity(req: dict[str, Any], table: str, units: float = 1.0) -> dict[str, Any]:
    """``ConsumedCapacity`` when ``ReturnConsumedCapacity`` asks for it (nominal figures)."""
    mode = enum_param(req, "ReturnConsumedCapacity", ("INDEXES", "TOTAL", "NONE"),
                      default="NONE")
    if mode == "NONE":
        return {}
    cc: dict[str, Any] = {"TableName": table, "CapacityUnits": units}
    if mode == "INDEXES":
        cc["Table"] = {"CapacityUnits": units}
    return {"ConsumedCapacity": cc}


def _native(ep: Endpoint, name: str) -> engine.Table:
    """The native table (the keyword arguments of each call come from the request)."""
    return ep.store.table(name)


def _attributes(result: dict[str, Any] | None) -> dict[str, Any]:
    return {"Attributes": marshal_item(result)} if result else {}


def put_item(ep: Endpoint, req: dict[str, Any]) -> dict[str, Any]:
    """PutItem: ConditionExpression or Expected; ReturnValues NONE or ALL_OLD."""
    name = table_name(req)
    info = ep.info(name)
    item = unmarshal_item(req.get("Item"), "Item")
    check_item(info, item, req.get(BODY_SIZE))
    rv = enum_param(req, "ReturnValues", ("NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW",
                                          "UPDATED_NEW"), default="NONE")
    if rv not in ("NONE", "ALL_OLD"):
        raise validation("Return values set to invalid value")
    mode = on_condition_failure(req)
    ex = gather(req, condition=True)
    kwargs = native_kwargs(ex, returning=None if rv == "NONE" else rv)
    try:
        old = _native(ep, name).put(item, **kwargs)
    except engine.ConditionFailed as exc:
        raise failed(exc, mode) from exc
    return {**_attributes(old), **capacity(req, name)}


def get_item(ep: Endpoint, req: dict[str, Any]) -> dict[str, Any]:
    """GetItem: ProjectionExpression or AttributesToGet (reads are always consistent)."""
    name = table_name(req)
    info = ep.info(name)
    pk, sk = key_values(info, key_of(info, req.get("Key")))
    ex = gather(req, projection=True)
    item = ep.store.table(name).get(pk, sk, **native_kwargs(ex))
    out: dict[str, Any] = {"Item": marshal_item(item)} if item is not None else {}
    return {**out, **capacity(req, name, 0.5)}


def update_item(ep: Endpoint, req: dict[str, Any]) -> dict[str, Any]:
    """UpdateItem: UpdateExpression or AttributeUpdates, a condition, any ReturnValues."""
    name = table_name(req)
    info = ep.info(name)
    pk, sk = key_values(info, key_of(info, req.get("Key")))
    rv = enum_param(req, "ReturnValues", ("NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW",
                                          "UPDATED_NEW"), default="NONE")
    mode = on_condition_failure(req)
    ex = gather(req, condition=True, update=True)
    kwargs = native_kwargs(ex, returning=None if rv == "NONE" else rv)
    try:
        result = ep.store.table(name).update(pk, sk, **kwargs)
    except engine.ConditionFailed as exc:
        raise failed(exc, mode) from exc
    return {**(_attributes(result) if rv != "NONE" else {}), **capacity(req, name)}


def delete_item(ep: Endpoint, req: dict[str, Any]) -> dict[str, Any]:
    """DeleteItem: ConditionExpression or Expected; ReturnValues NONE or ALL_OLD."""
    name = table_name(req)
    info = ep.info(name)
    pk, sk = key_values(info, key_of(info, req.get("Key")))
    rv = enum_param(req, "ReturnValues", ("NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW",
                                          "UPDATED_NEW"), default="NONE")
    if rv not in ("NONE", "ALL_OLD"):
        raise validation("Return values set to invalid value")
    mode = on_condition_failure(req)
    ex = gather(req, condition=True)
    kwargs = native_kwargs(ex, returning=None if rv == "NONE" else rv)
    try:
        old = _native(ep, name).delete(pk, sk, **kwargs)
    except engine.ConditionFailed as exc:
        raise failed(exc, mode) from exc
    return {**_attributes(old), **capacity(req, name)}


OPERATIONS: dict[str, Any] = {
    "PutItem": put_item,
    "GetItem": get_item,
    "UpdateItem": update_item,
    "DeleteItem": delete_item,
}
