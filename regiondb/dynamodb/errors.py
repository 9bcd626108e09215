"""DynamoDB's error responses, and the translation of regiondb's errors into them.

Every failure the endpoint reports is a :class:`DynamoDBError`: an HTTP status, a ``__type``
(``com.amazonaws.dynamodb.v20120810#ValidationException`` and so on — botocore keeps the part
after ``#`` as the error code, so ``ClientError.response["Error"]["Code"]`` and the modeled
exceptions such as ``client.exceptions.ConditionalCheckFailedException`` work as against
DynamoDB) and a message in DynamoDB's words. Messages of engine errors pass through, since the
engine already names what was wrong; the type is DynamoDB's for that kind of failure.
"""

from __future__ import annotations

from typing import Any

import engine

__all__ = [
    "DynamoDBError",
    "conditional_failed",
    "from_engine",
    "in_use",
    "not_found",
    "serialization",
    "validation",
]

_DYNAMO = "com.amazonaws.dynamodb.v20120810#"
_CORAL = "com.amazon.coral.service#"
# Errors raised by the service framework rather than by DynamoDB itself carry coral's prefix.
_FRAMEWORK = {
    "SerializationException", "UnknownOperationException", "MissingAuthenticationTokenException",
    "InvalidSignatureException", "UnrecognizedClientException", "IncompleteSignatureException",
    "AccessDeniedException", "InternalFailure",
}


class DynamoDBError(Exception):
    """An error response: ``status``, ``code`` (the ``__type`` after ``#``), ``message`` and
    ``extra`` fields of the body (``Item``, ``CancellationReasons``)."""

    def __init__(self, code: str, message: str, *, status: int = 400,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        """The JSON body DynamoDB sends for this error."""
        prefix = _CORAL if self.code in _FRAMEWORK else _DYNAMO
        out: dict[str, Any] = {"__type": prefix + self.code, "message": self.message}
        out.update(self.extra)
        return out


def validation(message: str) -> DynamoDBError:
    """A ``ValidationException``: the request is not valid (nothing was written)."""
    return DynamoDBError("ValidationException", message)


def serialization(message: str) -> DynamoDBError:
    """A ``SerializationException``: the body is not the JSON the operation takes."""
    return DynamoDBError("SerializationException", message)


def not_found(message: str = "Requested resource not found") -> DynamoDBError:
    """A ``ResourceNotFoundException``."""
    return DynamoDBError("ResourceNotFoundException", message)


def in_use(message: str) -> DynamoDBError:
    """A ``ResourceInUseException`` (e.g. the table already exists)."""
    return DynamoDBError("ResourceInUseException", message)


def conditional_failed(item: dict[str, Any] | None = None) -> DynamoDBError:
    """A ``ConditionalCheckFailedException``, with the item as it was when asked for."""
    extra = {} if item is None else {"Item": item}
    return DynamoDBError("ConditionalCheckFailedException", "The conditional request failed",
                         extra=extra)


def from_engine(exc: engine.Error, table: str | None = None) -> DynamoDBError:
    """The DynamoDB error for an engine error raised while serving a request."""
    if isinstance(exc, engine.TableNotFound):
        name = table or "?"
        return not_found(f"Requested resource not found: Table: {name} not found")
    if isinstance(exc, engine.SchemaError):
        return in_use(str(exc))
    if isinstance(exc, engine.ConditionFailed):
        return conditional_failed()
    if isinstance(exc, engine.StoreClosed):
        return DynamoDBError("InternalServerError", "the store is closed", status=500)
    if isinstance(exc, engine.StorageError):
        return DynamoDBError("InternalServerError", str(exc), status=500)
    return validation(str(exc))
