"""Shape checks of the numbers that name things: u64s, node ids, version vectors, limits.

One home for them: the engine's API arguments, decoded change records, segment headers, state
files, protocol messages and the CLI all refuse a bad node id or seq the same way, with a
``ValidationError`` naming what was wrong. ``bool`` is never accepted as an int.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeGuard

from .errors import ValidationError

__all__ = [
    "U64_LIMIT",
    "check_limit",
    "check_node_id",
    "check_u64",
    "check_vv",
    "is_node_id",
    "is_u64",
]

U64_LIMIT = 1 << 64


def is_u64(value: object) -> TypeGuard[int]:
    """True if ``value`` is an int (not a bool) in ``[0, 2**64)``."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < U64_LIMIT


def is_node_id(value: object) -> TypeGuard[int]:
    """True if ``value`` is a node id: an int (not a bool) in ``(0, 2**64)``."""
    return is_u64(value) and value != 0


def check_u64(value: object, what: str) -> int:
    """``value`` as an int if it is a u64, else ``ValidationError`` naming ``what``."""
    if not is_u64(value):
        raise ValidationError(f"{what} must be an int in [0, 2**64), not {value!r:.80}")
    return int(value)


def check_node_id(value: object, what: str) -> int:
    """``value`` as an int if it is a node id, else ``ValidationError`` naming ``what``."""
    if not is_node_id(value):
        raise ValidationError(f"{what} must be an int in [1, 2**64) (a 64-bit node id), "
                              f"not {value!r:.80}")
    return int(value)


def check_vv(value: object, what: str = "version vector") -> dict[int, int]:
    """Validate a ``{node id: seq}`` map; return it as a plain dict without zero entries.

    :raises ValidationError: naming ``what`` if it is not such a map.
    """
    if not isinstance(value, Mapping):
        raise ValidationError(f"{what} must be a mapping of node id -> seq, not {value!r:.80}")
    out: dict[int, int] = {}
    for o, s in value.items():
        if not is_node_id(o) or not is_u64(s):
            raise ValidationError(f"{what} entry {o!r:.40}: {s!r:.40} is not (node id, seq)")
        if s:
            out[int(o)] = int(s)
    return out


def check_limit(limit: object) -> None:
    """Refuse a ``limit`` that is neither ``None`` nor a positive int."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValidationError(f"limit must be a positive int or None, not {limit!r}")
