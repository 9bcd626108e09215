"""The exception hierarchy shared by ``engine`` and ``replication``.

Every error a caller, a file or a peer can provoke is one of these, rooted at
:class:`Error`, so an application can ``except engine.Error``. Errors raised for
bad input guarantee that nothing was written.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthError",
    "ClockSkewError",
    "ConditionFailed",
    "Error",
    "ForgottenNodeError",
    "LogTruncated",
    "ProtocolError",
    "SchemaError",
    "SegmentError",
    "StorageError",
    "StoreClosed",
    "TableNotFound",
    "TransactionCanceled",
    "TransportBrokenError",
    "TransportError",
    "TransportTimeoutError",
    "ValidationError",
]


class Error(Exception):
    """Base class of every regiondb error."""


class ValidationError(Error, ValueError):
    """Raised for a bad item, key, value, name or argument; nothing was written."""


class ChangeRefused(ValidationError):
    """Raised when a peer's change fails validation; nothing of its batch was applied.

    Every later change of that origin is held behind it (seqs apply in order), so the caller
    reports the stall loudly. :ivar origin: and :ivar seq: name the change.
    """

    def __init__(self, message: str, *, origin: int, seq: int) -> None:
        super().__init__(message)
        self.origin = origin
        self.seq = seq


class TableNotFound(Error, KeyError):
    """Raised when a table is named that this store does not have."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "table not found"


class SchemaError(Error):
    """Raised when a table is created again with a different key schema."""


class ConditionFailed(Error):
    """Raised when a write's ``condition`` returned false; nothing was written.

    :ivar item: the item as it was when the condition was evaluated (``None`` if missing),
        as DynamoDB's ``ReturnValuesOnConditionCheckFailure=ALL_OLD`` gives it.
    """

    def __init__(self, message: str, *, item: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.item = item


class TransactionCanceled(ConditionFailed):
    """Raised when a condition of a batch (a transaction) failed; nothing was written.

    :ivar failed: indexes of the ops whose condition failed, in op order.
    :ivar reasons: one entry per op, ``"ConditionalCheckFailed"`` or ``None`` (DynamoDB's
        CancellationReasons).
    :ivar items: per failed op (same order as ``failed``), the item as it was.
    :ivar item: the first failed op's item.
    """

    def __init__(self, ops: int, failures: list[tuple[int, ConditionFailed]]) -> None:
        self.failed = [i for i, _ in failures]
        self.items = [f.item for _, f in failures]
        self.reasons: list[str | None] = [None] * ops
        for i in self.failed:
            self.reasons[i] = "ConditionalCheckFailed"
        detail = "; ".join(f"op {i}: {f}" for i, f in failures)
        super().__init__(f"Transaction cancelled, please refer cancellation reasons for "
                         f"specific reasons [{', '.join(r or 'None' for r in self.reasons)}]: "
                         f"{detail}", item=self.items[0] if self.items else None)


class ClockSkewError(Error):
    """Raised when a remote version is further ahead of our wall clock than the maximum offset.

    :ivar origin: node id whose change was refused (``None`` when not known).
    :ivar skew_ms: how far ahead of local wall time its clock was, in milliseconds.
    """

    def __init__(self, message: str, *, origin: int | None = None, skew_ms: int = 0) -> None:
        super().__init__(message)
        self.origin = origin
        self.skew_ms = skew_ms


class ClockExhausted(Error):
    """Raised when the 64-bit HLC has no value left to issue (not a skew: nothing catches up)."""


class StoreClosed(Error):
    """Raised when a store (or a table of it) is used after ``close()``."""


class StorageError(Error):
    """Raised when LMDB itself fails; ``__cause__`` is the ``lmdb.Error``, ``hint`` what to do."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message if hint is None else f"{message} ({hint})")
        self.hint = hint


class LogTruncated(Error):
    """Raised when log entries below the retention point are asked for (send a snapshot)."""


class ForgottenNodeError(Error):
    """Raised when a node this store was told to ``forget`` shows up again without rejoining."""


class SegmentError(Error):
    """Raised for a segment that is truncated, corrupt, oversized, of a wrong version or hostile.

    :ivar path: the file it came from, if any.
    :ivar reason: what was wrong, without the path.
    """

    def __init__(self, reason: str, *, path: object | None = None) -> None:
        super().__init__(f"{path}: {reason}" if path is not None else reason)
        self.path = path
        self.reason = reason


class AuthError(Error):
    """Raised when a peer fails (or we fail) shared-secret authentication."""


class ProtocolError(Error):
    """Raised when a peer sends bytes or messages the protocol does not allow."""


class TransportError(Error):
    """Raised when the network fails a replication call (not the peer's data or protocol).

    Its two branches also carry the builtin meaning, so ``except ConnectionError`` and
    ``except TimeoutError`` keep working; ``__cause__`` is the original ``OSError``,
    ``EOFError`` or ``TimeoutError`` when there was one.
    """


class TransportBrokenError(TransportError, ConnectionError):
    """Raised when a connection cannot be made, or is lost or closed by the peer mid-exchange."""


class TransportTimeoutError(TransportError, TimeoutError):
    """Raised when a peer or the network does not answer within a deadline."""
