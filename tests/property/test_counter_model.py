"""Counters and sets: N long-lived replicas exchanging segments any which way converge to the
oracles (the counter's observed-reset sum, each set element by its versions).

The machine of :mod:`tests.property.replmodel` without the moves of membership (copies,
newcomers, restores), so that its steps go to the merges: every run keeps its three to five
nodes and spends them on writes, exchanges, GC and restarts.
"""

from __future__ import annotations

import pytest
from hypothesis import settings
from replmodel import ReplicationModel, no_rule


class CounterReplicationModel(ReplicationModel):
    save_copy = open_copy = newcomer = reconcile = no_rule
    backup = restore = no_rule


TestCounterReplicationModel = CounterReplicationModel.TestCase


class SlowCounterReplicationModel(CounterReplicationModel):
    pass


SlowCounterReplicationModel.TestCase.settings = settings(
    max_examples=300, stateful_step_count=120, deadline=None,
)
TestCounterReplicationModelSlow = pytest.mark.slow(SlowCounterReplicationModel.TestCase)
