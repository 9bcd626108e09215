"""Secondary indexes stay equal to their tables on every replica, at every step.

A ``RuleBasedStateMachine`` drives 3 real stores: writes (some with values that are not key
types, which a local write must refuse when an index covers the attribute, and which merges
bring in from nodes that do not have the index yet), index creations (with a conflicting
redefinition of one name) and drops on any node, segments exported and delivered in random
order with duplicates and relays (snapshots included, once GC truncated logs), and restarts.

The invariant, after every step: on every replica, each live index answers every query exactly
as a plain Python model computes it from that replica's own items (membership, order,
projection), and holds no other entries. At the end a full exchange must leave every replica
with the same definitions and the same index contents.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import engine
from engine import Index
from engine.index import table_prefix
from engine.keys import encode_value
from replication import exchange as ex
from replication.segment import decode_segment

PKS, SKS, ATTRS = ["a", "b", "c"], ["1", "2"], ["x", "y", "z"]
VALUE = st.sampled_from([0, 1, 2, 1.5, "a", "b", b"\x00b", [1], True, None])
VALUES = st.dictionaries(st.sampled_from(ATTRS), VALUE, max_size=3)
KEYS = st.tuples(st.sampled_from(PKS), st.sampled_from(SKS))
OP = st.one_of(
    st.tuples(st.just("put"), KEYS, VALUES, st.just(())),
    st.tuples(st.just("update"), KEYS, VALUES, st.lists(st.sampled_from(ATTRS), max_size=2)),
    st.tuples(st.just("delete"), KEYS, st.just({}), st.just(())),
    # a counter: concurrent ADDs on several replicas merge (the visible sum changes on merge)
    st.tuples(st.just("add"), KEYS, st.fixed_dictionaries({"x": st.integers(-2, 2)}),
              st.just(())),
)
DEFS = [
    Index("by_x", "x", "y"),
    Index("by_x", "z", "x", projection="KEYS_ONLY"),  # a conflicting definition of one name
    Index("by_y", "y", projection="KEYS_ONLY"),
    Index("by_z", "z", "sk", projection=["x"]),
    Index("lsi", "pk", "x"),
]


def _key_type(v: object) -> bool:
    return not isinstance(v, bool) and isinstance(v, (str, int, float, Decimal, bytes))


def _order(v: Any) -> tuple[int, Any]:
    """Key order: numbers (by value) < strings (code points) < bytes."""
    if isinstance(v, str):
        return (1, v)
    if isinstance(v, bytes):
        return (2, v)
    return (0, Decimal(repr(v)) if isinstance(v, float) else Decimal(v))


def model(items: list[dict[str, Any]], ix: Index) -> dict[tuple[int, Any], list[Any]]:
    """The index computed from the items in plain Python: partition -> items in index order."""
    parts: dict[tuple[int, Any], list[tuple[Any, ...]]] = {}
    for it in items:
        p = it.get(ix.partition_key, None)
        if ix.partition_key not in it or not _key_type(p):
            continue
        s: Any = None
        if ix.sort_key is not None:
            if ix.sort_key not in it or not _key_type(it[ix.sort_key]):
                continue
            s = _order(it[ix.sort_key])
        if ix.projection == "ALL":
            shown = dict(it)
        else:
            names = {"pk", "sk", ix.partition_key, ix.sort_key}
            if ix.projection != "KEYS_ONLY":
                names |= set(ix.projection)
            shown = {n: v for n, v in it.items() if n in names}
        parts.setdefault(_order(p), []).append((s, it["pk"], it["sk"], p, shown))
    return {k: [r for r in sorted(rows, key=lambda r: (r[0], r[1], r[2]))]
            for k, rows in parts.items()}


class IndexModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.stores: list[engine.Store] = []

    @initialize()
    def setup(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="regiondb-index-model-"))
        self.clocks = [engine.ManualClock() for _ in range(3)]
        self.stores = [self._open(i) for i in range(3)]
        self.inflight: list[bytes] = []
        self.stores[0].create_table("orders", "pk", "sk", indexes=[DEFS[0]])
        for s in self.stores[1:]:
            for data in ex.segments_for(self.stores[0], {}):
                ex.apply_segment(s, decode_segment(data))
        for a in self.stores:
            for b in self.stores:
                if a is not b:
                    ex.record_peer(b, a.node_id, *ex.local_state(a))

    def _open(self, i: int) -> engine.Store:
        return engine.open(self.root / f"n{i}", region=f"r{i}", durable=False,
                           wall_clock=self.clocks[i])

    # -- writes and definitions -------------------------------------------------------

    @rule(node=st.integers(0, 2), op=OP)
    def write(self, node: int, op: tuple[str, tuple[str, str], dict[str, Any], Any]) -> None:
        s, (kind, (pk, sk), values, remove) = self.stores[node], op
        t = s.table("orders")
        before = (s.position(), s.digest())
        try:
            if kind == "put":
                t.put({"pk": pk, "sk": sk, **values})
            elif kind == "update":
                t.update(pk, sk, set={k: v for k, v in values.items() if k not in remove},
                         remove=list(remove))
            elif kind == "add":
                t.update(pk, sk, add=values)
            else:
                t.delete(pk, sk)
        except engine.ValidationError as exc:
            # a value an index cannot key on is refused (or an ADD to a non-number), and then
            # nothing is written
            assert "is a key of index" in str(exc) or kind == "add", exc
            assert (s.position(), s.digest()) == before

    @rule(node=st.integers(0, 2), which=st.integers(0, len(DEFS) - 1))
    def create_index(self, node: int, which: int) -> None:
        s, ix = self.stores[node], DEFS[which]
        with contextlib.suppress(engine.ValidationError):  # name used by the other definition
            s.create_index("orders", ix)

    @rule(node=st.integers(0, 2), which=st.integers(0, len(DEFS) - 1))
    def drop_index(self, node: int, which: int) -> None:
        with contextlib.suppress(engine.ValidationError):  # not there
            self.stores[node].drop_index("orders", DEFS[which].name)

    @rule(node=st.integers(0, 2), ms=st.integers(0, 300))
    def clock_moves(self, node: int, ms: int) -> None:
        self.clocks[node].advance(ms)

    # -- exchange ---------------------------------------------------------------------

    @rule(src=st.integers(0, 2), dst=st.integers(0, 2), scratch=st.booleans())
    def export(self, src: int, dst: int, scratch: bool) -> None:
        peer = {} if scratch else self.stores[dst].version_vector()
        self.inflight += ex.segments_for(self.stores[src], peer, max_records=4)

    @rule(src=st.integers(0, 2))
    def export_snapshot(self, src: int) -> None:
        self.inflight += [data for _, data in ex.snapshot_segments(self.stores[src],
                                                                    max_records=4)]

    @rule(src=st.integers(0, 2), dst=st.integers(0, 2))
    def snapshot_now(self, src: int, dst: int) -> None:
        for _, data in ex.snapshot_segments(self.stores[src], max_records=4):
            ex.apply_segment(self.stores[dst], decode_segment(data))

    @rule(pick=st.integers(0, 10_000), dst=st.integers(0, 2), keep=st.booleans())
    def deliver(self, pick: int, dst: int, keep: bool) -> None:
        if not self.inflight:
            return
        i = pick % len(self.inflight)
        data = self.inflight[i] if keep else self.inflight.pop(i)  # keep: a duplicate later
        with contextlib.suppress(ex.GapError):
            ex.apply_segment(self.stores[dst], decode_segment(data))

    @rule(src=st.integers(0, 2), dst=st.integers(0, 2))
    def hear(self, src: int, dst: int) -> None:
        a, b = self.stores[src], self.stores[dst]
        if a is not b:
            ex.record_peer(b, a.node_id, *ex.local_state(a))

    @rule(node=st.integers(0, 2))
    def gc(self, node: int) -> None:
        ex.collect_garbage(self.stores[node])

    @rule(node=st.integers(0, 2))
    def restart(self, node: int) -> None:
        self.stores[node].close()
        self.stores[node] = self._open(node)

    # -- the invariant ----------------------------------------------------------------

    @invariant()
    def every_index_equals_its_table(self) -> None:
        for s in self.stores:
            check_store(s)

    def teardown(self) -> None:
        try:
            if self.stores:
                self._converge()
        finally:
            for s in self.stores:
                s.close()
            if hasattr(self, "root"):
                shutil.rmtree(self.root, ignore_errors=True)

    def _converge(self) -> None:
        top = max(c() for c in self.clocks) + 1_000
        for c in self.clocks:
            c.set(top)
        for _ in range(5):
            for a in self.stores:
                for b in self.stores:
                    if a is not b:
                        for data in ex.segments_for(a, b.version_vector()):
                            ex.apply_segment(b, decode_segment(data))
        assert len({s.digest() for s in self.stores}) == 1
        defs = [s.table("orders").indexes() for s in self.stores]
        assert defs[0] == defs[1] == defs[2]
        for s in self.stores:
            check_store(s)
            assert s.integrity_check().problems == []
        for ix in defs[0]:
            answers = [_all_entries(s, ix) for s in self.stores]
            assert answers[0] == answers[1] == answers[2]


def _all_entries(s: engine.Store, ix: Index) -> list[Any]:
    t = s.table("orders")
    parts = model(list(t.scan()), ix)
    return [(k, list(t.query(rows[0][3], index=ix.name))) for k, rows in sorted(parts.items())]


def check_store(s: engine.Store) -> None:
    """Every live index of ``s`` answers as the model computes it from ``s``'s items."""
    t = s.table("orders")
    items = list(t.scan())
    env = s._e()
    for ix in t.indexes():
        expected = model(items, ix)
        total = 0
        for rows in expected.values():
            got = list(t.query(rows[0][3], index=ix.name))
            assert got == [r[4] for r in rows], (ix, rows[0][3])
            total += len(rows)
            if ix.sort_key is not None and len(rows) > 1:
                assert list(t.query(rows[0][3], index=ix.name, reverse=True)) == \
                    [r[4] for r in reversed(rows)]
        prefix = table_prefix("orders") + encode_value(ix.name)
        stored = env.read(lambda txn, p=prefix: sum(  # type: ignore[misc]
            1 for k, _ in txn.cursor(db=env.idx) if bytes(k).startswith(p)))
        assert stored == total, f"{ix.name}: {stored} entries, the model has {total}"


TestIndexModel = IndexModel.TestCase
IndexModel.TestCase.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)


class SlowIndexModel(IndexModel):
    pass


SlowIndexModel.TestCase.settings = settings(
    max_examples=300, stateful_step_count=80, deadline=None,
)
TestIndexModelSlow = pytest.mark.slow(SlowIndexModel.TestCase)
