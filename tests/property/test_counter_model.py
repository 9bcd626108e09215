"""Counters and sets: N replicas exchanging segments any which way converge to the oracles.

A ``RuleBasedStateMachine`` drives 3-5 real stores (each with its own ``ManualClock``): random
puts, updates, deletes and batches on random nodes; clocks that drift (past the maximum offset
too, so clock-skew refusals happen); segments exported for a peer's current vv, a stale vv or
from scratch, then delivered to any node, duplicated, reordered or lost, so relays A->B->C and
snapshots happen; ack exchanges, garbage collection, mailbox syncs and restarts in between.
Items also carry a counter ``n`` (``ADD n`` on any node; SET/REMOVE/put/delete reset it) and a
string set ``tags`` (element ADD/DELETE; a put replaces it).

At the end every clock is brought within bounds and a full pairwise exchange runs: every node
must have the same ``digest()`` and vv, and every node's visible items must equal the reference
model: all writes ever made, folded per attribute in version order (the LWW result); the
counter is the winning reset's value plus every acknowledged ADD that reset had not seen (its
writer's vv did not cover it: observed-reset), and each set element follows its own versions.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import engine
from replication import exchange as ex
from replication import files
from replication.segment import decode_segment

PKS, SKS, ATTRS = ["a", "b"], ["1", "2"], ["x", "y", "z", "n"]
MERGED = ("n", "tags")  # the counter and the set: checked against their own oracles
KEYS = st.tuples(st.sampled_from(PKS), st.sampled_from(SKS))
VALUES = st.dictionaries(st.sampled_from(ATTRS), st.integers(0, 3), max_size=3)
TAGS = st.frozensets(st.sampled_from(["red", "blue", "big"]), min_size=1, max_size=2)
OP = st.one_of(
    st.tuples(st.just("put"), KEYS, VALUES, st.just(())),
    st.tuples(st.just("put"), KEYS, st.fixed_dictionaries({"tags": TAGS}), st.just(())),
    st.tuples(st.just("update"), KEYS, VALUES, st.lists(st.sampled_from(ATTRS), max_size=2)),
    st.tuples(st.just("delete"), KEYS, st.just({}), st.just(())),
    st.tuples(st.just("add"), KEYS, st.fixed_dictionaries({"n": st.integers(-2, 3)}),
              st.just(())),
    st.tuples(st.just("tag"), KEYS, st.fixed_dictionaries({"tags": TAGS}), st.booleans()),
)
ABSENT = object()


def lww(
    ops: list[tuple[Any, str, tuple[str, str], dict[str, Any]]],
) -> dict[tuple[str, str], dict[str, Any]]:
    """The reference: per key, apply every write in version order (put/delete clear first)."""
    state: dict[tuple[str, str], dict[str, Any]] = {}
    for _, kind, key, delta in sorted(ops, key=lambda o: o[0]):
        attrs = state.setdefault(key, {})
        if kind in ("put", "delete"):
            attrs.clear()
        if kind == "put":
            attrs.update({n: v for n, v in delta["item"].items() if n not in MERGED})
        elif kind == "update":
            attrs.update({n: v for n, v in delta["set"].items() if n not in MERGED})
            for name in delta["remove"]:
                if name not in MERGED:
                    attrs[name] = ABSENT
    out = {}
    for key, attrs in state.items():
        seen = {n: v for n, v in attrs.items() if v is not ABSENT}
        if seen:
            out[key] = seen
    return out


class Event(NamedTuple):
    """One write as the oracles need it: what the feed says, plus what its writer had seen."""

    version: Any
    kind: str
    key: tuple[str, str]
    delta: dict[str, Any]
    origin: int
    seq: int
    seen_vv: dict[int, int]     # the writer's version vector just before the write
    missing: bool               # the writer saw no item under this key


def _observed(e: Event, by: Event) -> bool:
    return e.seq <= by.seen_vv.get(e.origin, 0)


def counter(events: list[Event]) -> Any:
    """The counter ``n`` of one key: the last reset's value plus the ADDs it had not seen.

    A write observed an ADD if its writer's vv covered it, or covered a reset that had
    observed it (that reset's value absorbed the ADD, and carries it along)."""
    adds = [e for e in events if e.kind == "update" and "n" in e.delta.get("add", {})]
    memo: dict[int, set[int]] = {}

    def resets_n(e: Event) -> bool:
        if e.kind in ("put", "delete"):
            return True
        if "n" in e.delta["set"] or "n" in e.delta["remove"]:
            return True
        # a write on an item its writer sees as missing resets every counter it held
        return e.missing and any(id(a) in seen_by(e) for a in adds)

    def seen_by(e: Event) -> set[int]:
        if id(e) not in memo:
            memo[id(e)] = set()  # (no cycles: a write only covers earlier ones)
            out = {id(a) for a in adds if _observed(a, e)}
            for r in events:
                if r is not e and _observed(r, e) and resets_n(r):
                    out |= seen_by(r)
            memo[id(e)] = out
        return memo[id(e)]

    resets = [e for e in events if resets_n(e)]
    base: Any = ABSENT
    seen: set[int] = set()
    if resets:
        last = max(resets, key=lambda e: e.version)
        seen = seen_by(last)
        if last.kind == "put":
            base = last.delta["item"].get("n", ABSENT)
        elif last.kind == "update":
            base = last.delta["set"].get("n", ABSENT)
    unseen = [a.delta["add"]["n"] for a in adds if id(a) not in seen]
    if not unseen:
        return base
    return sum(unseen) + (0 if base is ABSENT else base)


def tag_set(events: list[Event]) -> set[str]:
    """The set ``tags`` of one key: the last whole write, then each element by version."""
    whole = [e for e in events if e.kind in ("put", "delete")
             or "tags" in e.delta.get("set", {}) or "tags" in e.delta.get("remove", [])]
    last = max(whole, key=lambda e: e.version) if whole else None
    floor = last.version if last is not None else (0, 0)
    out = set(last.delta["item"].get("tags", ())) if last is not None and last.kind == "put" \
        else set()
    for e in sorted(events, key=lambda e: e.version):
        if e.kind != "update" or e.version < floor:
            continue
        out |= set(e.delta.get("add", {}).get("tags", ()))
        out -= set(e.delta.get("delete", {}).get("tags", ()))
    return out


class CounterReplicationModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.stores: list[engine.Store] = []

    @initialize(n=st.integers(3, 5))
    def setup(self, n: int) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="regiondb-model-"))
        self.box = self.root / "mailbox"
        self.clocks = [engine.ManualClock() for _ in range(n)]
        self.stores = [self._open(i) for i in range(n)]
        self.ops: list[tuple[Any, str, tuple[str, str], dict[str, Any]]] = []
        self.events: list[Event] = []
        self.local_txns = [0] * n
        self.inflight: list[bytes] = []
        self.old_vvs: list[dict[int, int]] = [{}]
        for i, s in enumerate(self.stores):
            s.create_table("orders", partition_key="pk", sort_key="sk")
            self.local_txns[i] += 1
        # Membership is configured up front, as peers are in a deployment: garbage collection
        # is only safe against nodes someone knows of (docs/replication.md).
        for a in self.stores:
            for b in self.stores:
                if a is not b:
                    ex.record_peer(b, a.node_id, *ex.local_state(a))

    def _open(self, i: int) -> engine.Store:
        return engine.open(self.root / f"n{i}", region=f"r{i}", durable=False,
                           wall_clock=self.clocks[i])

    def _node(self, i: int) -> int:
        return i % len(self.stores)

    def _record(self, i: int, position: int, seen_vv: dict[int, int],
                missing: set[tuple[str, str]]) -> None:
        for c in self.stores[i].changes(since=position):
            key = (c.key["pk"], c.key["sk"])
            self.ops.append((c.version, c.kind, key, c.delta))
            self.events.append(Event(c.version, c.kind, key, c.delta, c.origin, c.seq, seen_vv,
                                     key in missing))

    def _before(self, i: int, keys: list[tuple[str, str]]) -> tuple[int, dict[int, int],
                                                                    set[tuple[str, str]]]:
        s = self.stores[i]
        t = s.table("orders")
        return s.position(), s.version_vector(), {k for k in keys if t.get(*k) is None}

    @staticmethod
    def _op(b: Any, op: tuple[str, tuple[str, str], dict[str, Any], Any]) -> None:
        """Apply one generated op through ``b`` (a Table or a batch taking the table name)."""
        kind, (pk, sk), values, extra = op
        args: tuple[Any, ...] = () if hasattr(b, "name") else ("orders",)
        if kind == "put":
            b.put(*args, {"pk": pk, "sk": sk, **values})
        elif kind == "update":
            b.update(*args, pk, sk, set={k: v for k, v in values.items() if k not in extra},
                     remove=list(extra))
        elif kind == "add":
            b.update(*args, pk, sk, add=values)
        elif kind == "tag":
            b.update(*args, pk, sk, **{"add" if extra else "delete": values})
        else:
            b.delete(*args, pk, sk)

    # -- writes -----------------------------------------------------------------------

    @rule(node=st.integers(0, 4), op=OP)
    def write(self, node: int, op: tuple[str, tuple[str, str], dict[str, Any], Any]) -> None:
        i = self._node(node)
        pos, vv, missing = self._before(i, [op[1]])
        self._op(self.stores[i].table("orders"), op)
        self.local_txns[i] += 1
        self._record(i, pos, vv, missing)

    @rule(node=st.integers(0, 4),
          ops=st.lists(OP, min_size=2, max_size=3, unique_by=lambda o: o[1]))
    def batch(self, node: int, ops: list[tuple[str, tuple[str, str], dict[str, Any], Any]]) -> None:
        i = self._node(node)
        pos, vv, missing = self._before(i, [o[1] for o in ops])
        with self.stores[i].batch() as b:
            for op in ops:
                self._op(b, op)
        self.local_txns[i] += 1
        self._record(i, pos, vv, missing)

    @rule(node=st.integers(0, 4), ms=st.integers(0, 400))
    def clock_moves(self, node: int, ms: int) -> None:
        self.clocks[self._node(node)].advance(ms)

    # -- exchange ---------------------------------------------------------------------

    @rule(src=st.integers(0, 4), dst=st.integers(0, 4),
          mode=st.sampled_from(["now", "stale", "all"]),
          stale=st.integers(0, 1000), small=st.booleans())
    def export(self, src: int, dst: int, mode: str, stale: int, small: bool) -> None:
        peer = {"now": self.stores[self._node(dst)].version_vector(), "all": {},
                "stale": self.old_vvs[stale % len(self.old_vvs)]}[mode]
        kw = {"max_bytes": 400, "max_records": 3} if small else {}
        src_store = self.stores[self._node(src)]
        self.inflight += ex.segments_for(src_store, peer, **kw)  # type: ignore[arg-type]

    @rule(pick=st.integers(0, 10_000), dst=st.integers(0, 4), keep=st.booleans())
    def deliver(self, pick: int, dst: int, keep: bool) -> None:
        if not self.inflight:
            return
        data = self.inflight[pick % len(self.inflight)] if keep else \
            self.inflight.pop(pick % len(self.inflight))
        s = self.stores[self._node(dst)]
        with contextlib.suppress(ex.GapError):  # not yet bridgeable: may come again later
            ex.apply_segment(s, decode_segment(data))
        self.old_vvs.append(s.version_vector())

    @rule(pick=st.integers(0, 10_000))
    def lose(self, pick: int) -> None:
        if self.inflight:
            self.inflight.pop(pick % len(self.inflight))

    @rule(src=st.integers(0, 4), dst=st.integers(0, 4))
    def hear(self, src: int, dst: int) -> None:
        a, b = self.stores[self._node(src)], self.stores[self._node(dst)]
        if a is not b:
            ex.record_peer(b, a.node_id, *ex.local_state(a))

    @rule(node=st.integers(0, 4))
    def gc(self, node: int) -> None:
        ex.collect_garbage(self.stores[self._node(node)])

    @rule(node=st.integers(0, 4))
    def mailbox(self, node: int) -> None:
        files.sync_dir(self.stores[self._node(node)], self.box)

    @rule(node=st.integers(0, 4))
    def restart(self, node: int) -> None:
        i = self._node(node)
        self.stores[i].close()
        self.stores[i] = self._open(i)

    @invariant()
    def own_writes_are_all_kept(self) -> None:
        for i, s in enumerate(self.stores):
            assert s.version_vector().get(s.node_id, 0) == self.local_txns[i]

    # -- the end ----------------------------------------------------------------------

    def full_exchange(self) -> None:
        top = max(c() for c in self.clocks) + 1_000
        for c in self.clocks:
            c.set(top)
        n = len(self.stores)
        for _ in range(n + 2):
            for a in self.stores:
                for b in self.stores:
                    if a is not b:
                        for data in ex.segments_for(a, b.version_vector()):
                            ex.apply_segment(b, decode_segment(data))
                        ex.record_peer(a, b.node_id, *ex.local_state(b))
            if len({str(sorted(s.version_vector().items())) for s in self.stores}) == 1:
                break

    def check(self) -> None:
        self.full_exchange()
        digests = {s.digest() for s in self.stores}
        assert len(digests) == 1, "replicas diverged"
        assert len({str(sorted(s.version_vector().items())) for s in self.stores}) == 1
        model = lww(self.ops)
        expected = {}
        for k, v in model.items():
            item = {"pk": k[0], "sk": k[1], **v}
            events = [e for e in self.events if e.key == k]
            n, tags = counter(events), tag_set(events)
            if n is not ABSENT:
                item["n"] = n
            if tags:
                item["tags"] = tags
            expected[k] = item
        for s in self.stores:
            seen = {(it["pk"], it["sk"]): it for it in s.table("orders").scan()}
            assert seen == expected
        for s in self.stores:  # once everything is stable, GC changes nothing visible
            ex.collect_garbage(s)
        assert {s.digest() for s in self.stores} == digests

    def teardown(self) -> None:
        try:
            if self.stores:
                self.check()
        finally:
            for s in self.stores:
                s.close()
            if hasattr(self, "root"):
                shutil.rmtree(self.root, ignore_errors=True)


TestCounterReplicationModel = CounterReplicationModel.TestCase


class SlowCounterReplicationModel(CounterReplicationModel):
    pass


SlowCounterReplicationModel.TestCase.settings = settings(
    max_examples=300, stateful_step_count=120, deadline=None,
)
TestCounterReplicationModelSlow = pytest.mark.slow(SlowCounterReplicationModel.TestCase)
