"""Shared fixtures and hypothesis profiles.

Profiles: ``ci`` (the default: fast, deterministic enough for a 2-core CI box), ``dev``
and ``slow`` (``make test-slow``: many more examples and longer stateful runs). Choose with
``HYPOTHESIS_PROFILE``. Tests marked ``slow`` run only with ``REGIONDB_SLOW=1`` or ``-m slow``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import engine

settings.register_profile(
    "ci", max_examples=60, deadline=None, stateful_step_count=30,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", max_examples=150, deadline=None, stateful_step_count=50)
settings.register_profile(
    "slow", max_examples=1500, deadline=None, stateful_step_count=120,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    chosen = config.getoption("-m") or ""
    faults = os.environ.get("REGIONDB_FAULTS") or "faults" in chosen
    skip_faults = pytest.mark.skip(
        reason="network-namespace fault suite: run with make test-faults (root, Linux)")
    slow = os.environ.get("REGIONDB_SLOW") or "slow" in chosen
    skip_slow = pytest.mark.skip(reason="slow: set REGIONDB_SLOW=1 (make test-slow) to run")
    for item in items:
        if "faults" in item.keywords and not faults:
            item.add_marker(skip_faults)
        elif "slow" in item.keywords and not slow:
            item.add_marker(skip_slow)


@pytest.fixture
def clock() -> engine.ManualClock:
    """A wall clock that moves only when the test moves it."""
    return engine.ManualClock()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[engine.Store]:
    """A fresh durable store in a temp directory, closed after the test."""
    with engine.open(tmp_path / "store", region="test-1") as s:
        yield s


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[object]:
    """Factory for several stores (``make_store("a", wall_clock=…)``); all closed at the end."""
    opened: list[engine.Store] = []

    def make(name: str, region: str | None = None, **kw: object) -> engine.Store:
        s = engine.open(tmp_path / name, region=region or f"r-{name}", **kw)  # type: ignore[arg-type]
        opened.append(s)
        return s

    yield make
    for s in opened:
        s.close()


@pytest.fixture
def closing() -> Iterator[list[Callable[[], None]]]:
    """Append closers (servers, replicators, stores) to it; they run in reverse at the end."""
    closers: list[Callable[[], None]] = []
    yield closers
    for close in reversed(closers):
        close()
