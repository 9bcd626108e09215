"""Multi-item operations: BatchWriteItem, BatchGetItem, TransactWriteItems, TransactGetItems.

BatchWriteItem (at most 25 requests) commits as one native ``store.batch()``: atomic, one
version, one fsync — more than DynamoDB promises, and why ``UnprocessedItems`` is always empty.
BatchGetItem (at most 100 keys) is one native ``get`` per key; ``UnprocessedKeys`` is empty.
TransactWriteItems (at most 100 actions) is ``store.batch()`` with a condition on any op and
``b.check`` for ConditionCheck; the engine's ``TransactionCanceled`` says which ops failed,
which becomes ``CancellationReasons`` in op order. ``ClientRequestToken`` makes a retried
transaction answer as the first did for ten minutes (per endpoint process).
TransactGetItems reads every item in one snapshot (``store.get_many``).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import engine
from engine.expr import Expressions, project

from .errors import DynamoDBError, validation
from .exprs import gather
from .items import native_kwargs, on_condition_failure
from .keys import check_item, key_of, key_values
from .params import check_length, check_table_name, list_param, map_param
from .values import BODY_SIZE, marshal_item, unmarshal_item

if TYPE_CHECKING:
    from .endpoint import Endpoint

__all__ = ["OPERATIONS", "Tokens"]

_TOKEN_TTL = 600.0


def _key_id(table: str, key: dict[str, Any]) -> str:
    return table + "\0" + json.dumps(marshal_item(key), sort_keys=True)


def batch_write(ep: Endpoint, req: dict[str, Any]) -> dict[str, Any]:
    """BatchWriteItem: PutRequest and DeleteRequest over any tables, committed atomically."""
    items = map_param(req, "RequestItems")
    if items is None:
        raise validation("1 validation error detected: Value null at 'requestItems' failed to "
                         "satisfy constraint: Member must not be null")
    check_length(items, "requestItems", 1, 25)
    total = sum(len(v) if isinstance(v, list) else 0 for v in items.values())
    if total > 25:
        raise validation("Too many items requested for the BatchWriteItem call")
    ops: list[tuple[str, str, Any, Any]] = []
    seen: set[str] = set()
    for name, requests in items.items():
        check_table_name(name, "requestItems.key")
        info = ep.info(name)
        if not isinstance(requests, list) or not requests:
            raise validation("1 validation error detected: Value at 'requestItems' failed to "
                             "satisfy constraint: Member must have length greater than or "
                             "equal to 1")
        for r in requests:
            if not isinstance(r, dict) or len(r) != 1 or \
                    next(iter(r)) not in ("PutRequest", "DeleteRequest"):
                raise validation("Supplied AttributeValue has more than one datatypes set, must "
                                 "contain exactly one of the supported datatypes"
                                 if isinstance(r, dict) and len(r) > 1 else
                                 "A WriteRequest must have exactly one of PutRequest or "
                                 "DeleteRequest")
            ((kind, body),) = r.items()
            if kind == "PutRequest":
                item = unmarshal_item((body or {}).get("Item"), "Item")
                check_item(info, item, req.get(BODY_SIZE))
                key = {k: item[k] for k in info.key_names()}
                ops.append(("P", name, item, None))
            else:
                key = key_of(info, (body or {}).get("Key"))
                ops.append(("D", name, *key_values(info, key)))
            kid = _key_id(name, key)
            if kid in seen:
                raise validation("Provided list of item keys contains duplicates")
            seen.add(kid)
    with ep.store.batch() as b:
        for kind, name, a, c in ops:
            if kind == "P":
                b.put(name, a)
            else:
                b.delete(name, a, c)
    return {"UnprocessedItems": {}}


def batch_get(ep: Endpoint, req: dict[str, Any]) -> dict[str, Any]:
    """BatchGetItem: up to 100 keys over any tables, each with its projection."""
    items = map_param(req, "RequestItems")
    if items is None:
        raise validation("1 validation error detected: Value null at 'requestItems' failed to "
                         "satisfy constraint: Member must not be null")
    check_length(items, "requestItems", 1, 100)
    total = sum(len((v or {}).get("Keys") or []) for v in items.values() if isinstance(v, dict))
    if total > 100:
        raise validation("Too many items requested for the BatchGetItem call")
    plan: list[tuple[str, list[tuple[Any, Any]], dict[str, Any]]] = []
    for name, spec in items.items():
        check_table_name(name, "requestItems.key")
        info = ep.info(name)
        if not isinstance(spec, dict):
            raise validation("Each RequestItems entry must be a KeysAndAttributes object")
        keys = list_param(spec, "Keys")
        if not keys:
            raise validation("1 validation error detected: Value at 'requestItems." + name +
                             ".member.keys' failed to satisfy constraint: Member must have "
                             "length greater than or equal to 1")
        seen: set[str] = set()
        pairs = []
        for typed in keys:
            key = key_of(info, typed)
            kid = _key_id(name, key)
            if kid in seen:
                raise validation("Provided list of item keys contains duplicates")
            seen.add(kid)
            pairs.append(key_values(info, key))
        plan.append((name, pairs, native_kwargs(gather(spec, projection=True))))
    responses: dict[str, list[Any]] = {}
    for name, pairs, kwargs in plan:
        table = ep.store.table(name)
        found = [table.get(pk, sk, **kwargs) for pk, sk in pairs]
        responses[name] = [marshal_item(i) for i in found if i is not None]
    return {"Responses": responses, "UnprocessedKeys": {}}


class Tokens:
    """ClientRequestToken -> (request digest, response), kept ten minutes (idempotency)."""

    def __init__(self, size: int = 10_000) -> None:
        self._items: OrderedDict[str, tuple[float, str, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def get(self, token: str, digest: str) -> dict[str, Any] | None:
        with self._lock:
            hit = self._items.get(token)
            if hit is None or time.monotonic() - hit[0] > _TOKEN_TTL:
                return None
        if hit[1] != digest:
            raise DynamoDBError("IdempotentParameterMismatchException",
                                "The request uses the same client token as a previous, but "
                                "non-identical request.")
        return hit[2]

    def put(self, token: str, digest: str, response: dict[str, Any]) -> None:
        with self._lock:
            self._items[token] = (time.monotonic(), digest, response)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


def _once(seen: set[str], kid: str) -> None:
    if kid in seen:
        raise validation("Transaction request cannot include multiple operations on one item")
    seen.add(kid)


def _transact_op(ep: Endpoint, b: engine.Batch, action: str, spec: dict[str, Any],
                 seen: set[str]) -> None:
    """Add one TransactItem to the native batch (each item at most once)."""
    name = spec.get("TableName")
    if not isinstance(name, str):
        raise validation("1 validation error detected: Value null at 'transactItems.member."
                         f"{action[:1].lower()}{action[1:]}.tableName' failed to satisfy "
                         "constraint: Member must not be null")
    check_table_name(name)
    info = ep.info(name)
    if action == "Put":
        item = unmarshal_item(spec.get("Item"), "Item")
        check_item(info, item)
        ex = gather(spec, condition=True)
        _once(seen, _key_id(name, {k: item[k] for k in info.key_names()}))
        b.put(name, item, **native_kwargs(ex))
        return
    key = key_of(info, spec.get("Key"))
    pk, sk = key_values(info, key)
    _once(seen, _key_id(name, key))
    if action == "Update":
        ex = gather(spec, condition=True, update=True)
        if ex.update is None:
            raise validation("1 validation error detected: Value null at 'transactItems.member."
                             "update.updateExpression' failed to satisfy constraint: Member "
                             "must not be null")
        b.update(name, pk, sk, **native_kwargs(ex))
    elif action == "Delete":
        b.delete(name, pk, sk, **native_kwargs(gather(spec, condition=True)))
    else:
        ex = gather(spec, condition=True)
        if ex.condition is None:
            raise validation("1 validation error detected: Value null at 'transactItems.member."
                             "conditionCheck.conditionExpression' failed to satisfy constraint: "
                             "Member must not be null")
        b.check(name, pk, sk, **native_kwargs(ex))


def _reasons(exc: engine.ConditionFailed, count: int,
             modes: list[str]) -> list[dict[str, Any]]:
    """CancellationReasons from the engine's TransactionCanceled: ``failed`` (op indexes) and
    ``items`` (the item each failed op found, in the same order)."""
    failed = list(getattr(exc, "failed", None) or [])
    items = list(getattr(exc, "items", None) or [])
    found = {i: (items[j] if j < len(items) else None) for j, i in enumerate(failed)}
    out: list[dict[str, Any]] = []
    for i in range(count):
        if i not in found:
            out.append({"Code": "None"})
            continue
        reason: dict[str, Any] = {"Code": "ConditionalCheckFailed",
                                  "Message": "The conditional request failed"}
        item = found[i]
        if isinstance(item, dict) and modes[i] == "ALL_OLD":
            reason["Item"] = marshal_item(item)
        out.append(reason)
    return out


def _transact_items(req: dict[str, Any]) -> list[Any]:
    """The ``TransactItems`` of a TransactWrite/GetItems request: present, 1 to 100 of them."""
    actions = list_param(req, "TransactItems")
    if actions is None:
        raise validation("1 validation error detected: Value null at 'transactItems' failed to "
                         "satisfy constraint: Member must not be null")
    check_length(actions, "transactItems", 1, 100)
    return actions


def transact_write(ep: Endpoint, req: dict[str, Any]) -> dict[str, Any]:
    """TransactWriteItems: Put, Update, Delete, ConditionCheck; all or nothing."""
    actions = _transact_items(req)
    token = req.get("ClientRequestToken")
    digest = hashlib.sha256(json.dumps(actions, sort_keys=True).encode()).hexdigest()
    if isinstance(token, str):
        hit = ep.tokens.get(token, digest)
        if hit is not None:
            return hit
    modes: list[str] = []
    seen: set[str] = set()
    try:
        with ep.store.batch() as b:
            for entry in actions:
                if not isinstance(entry, dict) or len(entry) != 1 or next(iter(entry)) not in (
                        "Put", "Update", "Delete", "ConditionCheck"):
                    raise validation("TransactItems can only contain one of Check, Put, Update "
                                     "or Delete")
                ((action, spec),) = entry.items()
                if not isinstance(spec, dict):
                    raise validation(f"{action} must be an object")
                modes.append(on_condition_failure(spec))
                _transact_op(ep, b, action, spec, seen)
    except engine.ConditionFailed as exc:
        reasons = _reasons(exc, len(actions), modes)
        codes = ", ".join(r["Code"] for r in reasons)
        raise DynamoDBError(
            "TransactionCanceledException",
            f"Transaction cancelled, please refer cancellation reasons for specific reasons "
            f"[{codes}]", extra={"CancellationReasons": reasons}) from exc
    out: dict[str, Any] = {}
    if isinstance(token, str):
        ep.tokens.put(token, digest, out)
    return out


def transact_get(ep: Endpoint, req: dict[str, Any]) -> dict[str, Any]:
    """TransactGetItems: up to 100 Gets read in one snapshot."""
    actions = _transact_items(req)
    refs: list[tuple[str, Any, Any]] = []
    projections: list[Any] = []
    seen: set[str] = set()
    for entry in actions:
        spec = entry.get("Get") if isinstance(entry, dict) else None
        if not isinstance(spec, dict):
            raise validation("TransactGetItems can only contain Get actions")
        name = spec.get("TableName")
        if not isinstance(name, str):
            raise validation("1 validation error detected: Value null at 'transactItems.member."
                             "get.tableName' failed to satisfy constraint: Member must not be "
                             "null")
        check_table_name(name)
        info = ep.info(name)
        key = key_of(info, spec.get("Key"))
        kid = _key_id(name, key)
        if kid in seen:
            raise validation("Transaction request cannot include multiple operations on one "
                             "item")
        seen.add(kid)
        refs.append((name, *key_values(info, key)))
        projections.append(_projection_paths(gather(spec, projection=True)))
    items = ep.store.get_many(refs)
    if any(p is not None for p in projections):
        items = [i if p is None else project(i, p) for i, p in zip(items, projections,
                                                                     strict=True)]
    return {"Responses": [{"Item": marshal_item(i)} if i is not None else {} for i in items]}


def _projection_paths(ex: Any) -> Any:
    """The bound paths of a Get's ProjectionExpression (``engine.expr``), or ``None``."""
    if ex.projection is None:
        if ex.names:
            raise validation("Value provided in ExpressionAttributeNames unused in expressions: "
                             f"keys: {{{', '.join(sorted(ex.names))}}}")
        return None
    bound = Expressions(ex.placeholders().get("names"), None)
    paths = bound.bind_projection(ex.projection)
    bound.finish()
    return paths


OPERATIONS: dict[str, Any] = {
    "BatchWriteItem": batch_write,
    "BatchGetItem": batch_get,
    "TransactWriteItems": transact_write,
    "TransactGetItems": transact_get,
}
