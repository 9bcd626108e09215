"""Hybrid logical clock (Kulkarni et al., 2014) packed into one 64-bit integer.

An HLC value is ``physical_ms << 16 | logical``: 48 bits of wall-clock milliseconds and a
16-bit counter. A *version* is the pair ``(hlc, node_id)``; versions compare as tuples, which
gives a total order with ties broken by node id.

Properties
    * ``tick(last, wall)`` is strictly greater than ``last`` and never behind ``wall``.
    * ``observe(last, remote, wall)`` is at least ``remote``, so every later ``tick`` is
      greater than every version this node has seen (causality is reflected in the order).
    * Counter overflow borrows a millisecond: the value never wraps.

Hazards
    * A peer whose clock runs ahead wins every last-writer-wins conflict until our wall time
      catches up. ``observe`` therefore refuses versions more than ``max_offset_ms`` ahead of
      the local wall clock (``ClockSkewError``); the refused change stays in the sender's log
      and applies once real time is within bounds.
    * The last issued value must be persisted with each write (the store does this in the
      write transaction) or a restart with a clock that stepped backwards could reissue it.
"""

from __future__ import annotations

import threading
import time

from .errors import ClockExhausted, ClockSkewError

__all__ = [
    "BOTTOM",
    "DEFAULT_MAX_OFFSET_MS",
    "LOGICAL_BITS",
    "ManualClock",
    "Version",
    "format_hlc",
    "logical",
    "observe",
    "pack",
    "physical_ms",
    "system_wall_ms",
    "tick",
    "tick_local",
]

LOGICAL_BITS = 16
_LOGICAL_MASK = (1 << LOGICAL_BITS) - 1
_MAX_HLC = (1 << 64) - 1
DEFAULT_MAX_OFFSET_MS = 500

Version = tuple[int, int]
"""``(hlc, node_id)``; compared lexicographically."""

BOTTOM: Version = (0, 0)
"""The version below every real version (⊥): real HLCs are positive."""


def system_wall_ms() -> int:
    """Milliseconds since the Unix epoch from the system clock."""
    return time.time_ns() // 1_000_000


def pack(physical: int, counter: int = 0) -> int:
    """Build an HLC from its physical milliseconds and logical counter."""
    return (physical << LOGICAL_BITS) | counter


def physical_ms(hlc: int) -> int:
    """The wall-clock milliseconds part of an HLC."""
    return hlc >> LOGICAL_BITS


def logical(hlc: int) -> int:
    """The logical counter part of an HLC."""
    return hlc & _LOGICAL_MASK


def tick(last: int, wall_ms: int) -> int:
    """Issue the next HLC after ``last`` given the current wall time.

    ``l = max(last.physical, wall)``; the counter increments when the physical part did not
    move, and an overflowing counter borrows the next millisecond instead of wrapping.

    >>> tick(pack(100, 5), 99) == pack(100, 6)
    True
    >>> tick(pack(100, 5), 200) == pack(200, 0)
    True
    """
    last_phys = last >> LOGICAL_BITS
    if wall_ms > last_phys:
        return wall_ms << LOGICAL_BITS
    nxt = last + 1  # same millisecond: counter + 1; a full counter carries into the ms
    if nxt > _MAX_HLC:
        raise ClockExhausted("hybrid logical clock exhausted its 64-bit range")
    return nxt


def tick_local(last: int, wall_ms: int, max_offset_ms: int) -> int:
    """:func:`tick` for a local write, which fails while this node's clock is far ahead.

    A node whose HLC runs more than ``max_offset_ms`` ahead of its own wall clock (its wall
    clock jumped forward and back) would write versions every peer holds back as skewed, so
    nothing it writes would replicate, silently. It fails instead (fail-stop, as CockroachDB
    does), until wall time has caught up with the HLC: see ``docs/operations.md``.

    :raises ClockSkewError: naming how far ahead the HLC is.
    """
    ahead = (last >> LOGICAL_BITS) - wall_ms
    if ahead > max_offset_ms:
        raise ClockSkewError(
            f"this node's clock is {ahead} ms ahead of its wall clock (maximum offset "
            f"{max_offset_ms} ms): local writes are refused until the wall clock reaches "
            f"{format_hlc(last)}; see docs/operations.md (a clock that was far off)",
            skew_ms=ahead,
        )
    return tick(last, wall_ms)


def observe(
    last: int, remote: int, wall_ms: int, max_offset_ms: int, *, origin: int | None = None
) -> int:
    """Advance ``last`` past a remote HLC, refusing one too far ahead of ``wall_ms``.

    :raises ClockSkewError: if ``remote`` is more than ``max_offset_ms`` ahead of the wall clock.
    """
    skew = (remote >> LOGICAL_BITS) - wall_ms
    if skew > max_offset_ms:
        who = f"node {origin:016x}" if origin is not None else "a peer"
        raise ClockSkewError(
            f"change from {who} is {skew} ms ahead of the local clock "
            f"(maximum offset {max_offset_ms} ms); it will apply once within bounds",
            origin=origin,
            skew_ms=skew,
        )
    return remote if remote > last else last


def format_hlc(hlc: int) -> str:
    """``"<seconds>.<millis>,<logical>"``, after CockroachDB's Timestamp.String."""
    phys = hlc >> LOGICAL_BITS
    return f"{phys // 1000}.{phys % 1000:03d},{hlc & _LOGICAL_MASK}"


class ManualClock:
    """A wall clock for tests: time stands still until ``advance`` or ``set`` moves it.

    Pass it as ``engine.open(..., wall_clock=clock)``; it is callable and returns milliseconds.
    """

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._ms = start_ms
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            return self._ms

    def advance(self, ms: int) -> None:
        """Move the clock by ``ms`` milliseconds (negative steps it backwards)."""
        with self._lock:
            self._ms += ms

    def set(self, ms: int) -> None:
        """Set the clock to ``ms`` milliseconds since the epoch."""
        with self._lock:
            self._ms = ms

    def __repr__(self) -> str:
        return f"ManualClock({self._ms})"
