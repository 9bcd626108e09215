"""Polling helpers shared by the socket tests: every wait is bounded and says what it waited for."""

from __future__ import annotations

import time
from collections.abc import Callable

import engine


def wait_until(pred: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll ``pred`` every 20 ms; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def converged(*stores: engine.Store) -> bool:
    """Equal visible state and equal version vectors on every store."""
    return len({s.digest() for s in stores}) == 1 and \
        all(s.version_vector() == stores[0].version_vector() for s in stores)
