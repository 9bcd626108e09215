"""The multi-node replication model: one harness for the stateful tests of
``test_replication_model.py`` and ``test_counter_model.py``.

A ``RuleBasedStateMachine`` drives 3-5 real stores (each with its own ``ManualClock``): random
puts, updates, deletes, counter ADDs and set element ADD/DELETEs, alone or in batches, on random
nodes; clocks that drift (past the maximum offset too, so clock-skew refusals happen); segments
exported for a peer's current vv, a stale vv or from scratch, then delivered to any node,
duplicated, reordered or lost, so relays A->B->C and snapshots happen; ack exchanges, garbage
collection, mailbox syncs and restarts in between.

The edges of membership (docs/replication.md, "The edges of membership"):

- a node's directory is **copied** and the copy opened later (after garbage collection: it
  takes a new id and holds state older than its peers' horizon);
- **newcomers** join with a first snapshot that is cut short;
- a node's directory is **backed up** (closed) and later **restored** over that node, after
  it wrote more: in place (``cp backup/data.mdb store/``: the inode and the node id stay; its
  lineage stamp tells at open that its peers may hold more of its id) or through ``regiondb
  restore`` (``reidentify(forked=False)`` up front). Either way the node takes a new id at
  once, keeps the old id's entries it holds and takes back from its peers what they hold
  beyond them; nothing is re-issued (the harness checks that no node writes on its own). A
  restore is made only while every write of the node has reached a live peer (a restore
  loses what no other node held).

Copies and newcomers count as members from the start (as a handshake or a state file makes
them) and write only once they have merged a whole snapshot.

At the end every clock is brought within bounds and a full pairwise exchange runs (or, in the
mailbox variant, ``sync_dir`` alone): every node must have the same ``digest()`` and vv, and
every node's visible items must equal the oracle built from the operations the test issued
(only the versions come from the store's change feed): per attribute last-writer-wins in
version order; the counter ``n`` the winning reset's value plus every ADD that reset had not
seen (observed-reset); each element of the set ``tags`` by its own versions.

(A restore noticed only at a first contact — the whole directory restored over a reused inode,
a ``durable=False`` store after a power loss — sets writes aside and re-issues them; that path
is exercised by ``tests/integration/test_restore.py``, docs/replication.md says its limits.)
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import engine
from engine import lineage as engine_lineage
from replication import exchange as ex
from replication import lineage, mailbox
from replication.segment import decode_segment

__all__ = ["OP", "Event", "MailboxReplicationModel", "ReplicationModel", "apply_op",
           "delta_of", "expected_items", "no_rule"]

PKS, SKS, ATTRS = ["a", "b"], ["1", "2"], ["x", "y", "z", "n"]
MERGED = ("n", "tags")  # the counter and the set: checked against their own oracles
KEYS = st.tuples(st.sampled_from(PKS), st.sampled_from(SKS))
VALUES = st.dictionaries(st.sampled_from(ATTRS), st.integers(0, 3), max_size=3)
TAGS = st.frozensets(st.sampled_from(["red", "blue", "big"]), min_size=1, max_size=2)
OP = st.one_of(
    st.tuples(st.just("put"), KEYS, VALUES, st.just(())),
    st.tuples(st.just("put"), KEYS, st.fixed_dictionaries({"tags": TAGS}), st.just(())),
    st.tuples(st.just("update"), KEYS, VALUES,
              st.lists(st.sampled_from(ATTRS), max_size=2).map(tuple)),
    st.tuples(st.just("delete"), KEYS, st.just({}), st.just(())),
    st.tuples(st.just("add"), KEYS, st.fixed_dictionaries({"n": st.integers(-2, 3)}),
              st.just(())),
    st.tuples(st.just("tag"), KEYS, st.fixed_dictionaries({"tags": TAGS}), st.booleans()),
)
ABSENT = object()
MAX_NODES = 7
RESTORES = ("in_place", "tool", "whole")

GenOp = tuple[str, tuple[str, str], dict[str, Any], Any]  # kind, key, values, remove | add?


class Event(NamedTuple):
    """One issued write as the oracles need it: the op, its version, what its writer had seen."""

    version: Any
    kind: str                   # put, update, delete (an ADD or a tag is an update)
    key: tuple[str, str]
    delta: dict[str, Any]       # item | set, remove, add, delete
    origin: int
    seq: int
    seen_vv: dict[int, int]     # the writer's version vector just before the write
    missing: bool               # the writer saw no item under this key
    seen_tips: dict[int, int] = {}  # the HLC at each of its positions (which fork it saw)


def delta_of(op: GenOp) -> tuple[str, dict[str, Any]]:
    """The feed kind and the delta of a generated op (what the oracles read)."""
    kind, (pk, sk), values, extra = op
    if kind == "put":
        return "put", {"item": {"pk": pk, "sk": sk, **values}}
    if kind == "delete":
        return "delete", {}
    if kind == "update":
        return "update", {"set": {k: v for k, v in values.items() if k not in extra},
                          "remove": list(extra)}
    if kind == "add":
        return "update", {"set": {}, "remove": [], "add": dict(values)}
    return "update", {"set": {}, "remove": [], ("add" if extra else "delete"): dict(values)}


def apply_op(b: Any, op: GenOp) -> None:
    """Apply one generated op through ``b`` (a Table, or a batch taking the table name)."""
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


# -- the oracles ----------------------------------------------------------------------------


def lww(events: list[Event]) -> dict[tuple[str, str], dict[str, Any]]:
    """Per key, every write in version order (put/delete clear first); counters and sets
    are left to their own oracles. Puts and updates write the key attributes too (they mark
    the item as present)."""
    state: dict[tuple[str, str], dict[str, Any]] = {}
    for e in sorted(events, key=lambda e: e.version):
        attrs = state.setdefault(e.key, {})
        if e.kind in ("put", "delete"):
            attrs.clear()
        if e.kind == "put":
            attrs.update({n: v for n, v in e.delta["item"].items() if n not in MERGED})
        elif e.kind == "update":
            attrs.update({"pk": e.key[0], "sk": e.key[1]})
            attrs.update({n: v for n, v in e.delta["set"].items() if n not in MERGED})
            for name in e.delta["remove"]:
                if name not in MERGED:
                    attrs[name] = ABSENT
    out = {}
    for key, attrs in state.items():
        seen = {n: v for n, v in attrs.items() if v is not ABSENT}
        if seen:
            out[key] = seen
    return out


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


def expected_items(events: list[Event]) -> dict[tuple[str, str], dict[str, Any]]:
    """The visible items every replica must hold once all ``events`` reached it."""
    expected = {}
    for k, v in lww(events).items():
        item = {"pk": k[0], "sk": k[1], **v}
        mine = [e for e in events if e.key == k]
        n, tags = counter(mine), tag_set(mine)
        if n is not ABSENT:
            item["n"] = n
        if tags:
            item["tags"] = tags
        expected[k] = item
    return expected


class Backup(NamedTuple):
    """A saved copy of a node's closed directory, to restore over that node later."""

    node: int
    path: Path
    node_id: int
    txns: int                   # the node's own transactions it held


class ReplicationModel(RuleBasedStateMachine):
    """The harness (module docstring); subclasses pick rules and settings."""

    def __init__(self) -> None:
        super().__init__()
        self.stores: list[engine.Store] = []

    @initialize(n=st.integers(3, 5))
    def setup(self, n: int) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="regiondb-model-"))
        self.box = self.root / "mailbox"
        self.clocks = [engine.ManualClock() for _ in range(n)]
        self.paths = [self.root / f"n{i}" for i in range(n)]
        self.regions = [f"r{i}" for i in range(n)]
        self.stores = [self._open(i) for i in range(n)]
        self.events: list[Event] = []
        self.local_txns = [0] * n
        self.ids = [s.node_id for s in self.stores]
        self.feed_pos = [0] * n     # the feed position up to which we accounted local writes
        self.inflight: list[bytes] = []
        self.old_vvs: list[dict[int, int]] = [{}]
        self.copies: list[tuple[Path, str]] = []  # saved directories, not opened yet
        self.backups: list[Backup] = []
        self.joining: set[int] = set()  # nodes that have not merged a whole snapshot yet
        self.unnoticed: set[int] = set()  # restored whole, the fork not noticed yet
        for i, s in enumerate(self.stores):
            s.create_table("orders", partition_key="pk", sort_key="sk")
            self.local_txns[i] += 1
            self.feed_pos[i] = s.position()
        # Membership is configured up front, as peers are in a deployment: garbage collection
        # is only safe against nodes someone knows of (docs/replication.md).
        for i in range(n):
            self._introduce(i)

    def _open(self, i: int) -> engine.Store:
        return engine.open(self.paths[i], region=self.regions[i], durable=False,
                           wall_clock=self.clocks[i])

    def _introduce(self, i: int) -> None:
        """Node ``i`` and every other node hear each other (a handshake, a state file)."""
        a = self.stores[i]
        for b in self.stores:
            if a is not b:
                ex.record_peer(b, a.node_id, *ex.local_state(a))
                ex.record_peer(a, b.node_id, *ex.local_state(b))

    def _node(self, i: int) -> int:
        return i % len(self.stores)

    def _writer(self, i: int) -> int | None:
        """The node to write on: ``i``, or ``None`` while it is still joining."""
        i = self._node(i)
        return None if i in self.joining else i

    # -- accounting ---------------------------------------------------------------------

    def _issue(self, i: int, ops: list[GenOp], run: Any) -> None:
        """Run ``run()`` (one local transaction of ``ops``) and record its events."""
        s = self.stores[i]
        t = s.table("orders")
        self._reissued(i)
        (vv, tips), missing = s.vv_hlcs(), {op[1] for op in ops if t.get(*op[1]) is None}
        run()
        self.local_txns[i] += 1
        self.events += self._events_since(i, ops, vv, missing, tips)

    def _events_since(self, i: int, ops: list[GenOp], vv: dict[int, int],
                      missing: set[tuple[str, str]], tips: dict[int, int]) -> list[Event]:
        """The events of the transaction node ``i`` just wrote: each op's kind and delta as
        the feed has them (a DELETE of set elements the writer did not hold is no element
        change there), its version, origin and seq."""
        changes = list(self.stores[i].changes(since=self.feed_pos[i]))
        self.feed_pos[i] = self.stores[i].position()
        assert len({(c.version, c.origin, c.seq) for c in changes}) == 1, changes
        assert len(changes) == len(ops), (changes, ops)
        return [self._event(c, vv, missing, tips) for c in changes]

    @staticmethod
    def _event(c: Any, vv: dict[int, int], missing: set[tuple[str, str]],
               tips: dict[int, int]) -> Event:
        key = (c.key["pk"], c.key["sk"])
        return Event(c.version, c.kind, key, c.delta, c.origin, c.seq, vv, key in missing,
                     tips)

    def _reissued(self, i: int) -> None:
        """Check what exchanges made node ``i`` write on its own: nothing but, when it
        noticed at a contact that it was restored (``whole`` restores), its writes since the
        restore relabeled as its new id's first entries (:meth:`_relabel`)."""
        s = self.stores[i]
        own = [c for c in s.changes(since=self.feed_pos[i]) if c.origin == s.node_id]
        if s.node_id != self.ids[i]:  # it re-identified: the new id wrote only relabels
            self.unnoticed.discard(i)
            self._relabel(self.ids[i], s.node_id, own)
            self.ids[i], self.local_txns[i] = s.node_id, len({c.seq for c in own})
            own = []
        assert not own, f"node {i} wrote on its own (re-issued?): {own}"
        self.feed_pos[i] = s.position()

    def _relabel(self, old: int, new: int, moved: list[Any]) -> None:
        """The oracle's side of a relabel: the forked events become the new id's, at the
        same HLCs; a writer that had seen forked entries had seen the new id's instead."""
        seqs = {c.version[0]: c.seq for c in moved}
        forked = [e for e in self.events if e.origin == old and e.version[0] in seqs]
        assert len(forked) == len(moved), (forked, moved)
        if not forked:
            return
        first = min(e.seq for e in forked)
        out = []
        for e in self.events:
            seen = e.seen_vv
            if seen.get(old, 0) >= first and e.seen_tips.get(old) in seqs:
                seen = {**seen, old: first - 1, new: seen[old] - first + 1}
            if e.origin == old and e.version[0] in seqs:
                e = e._replace(version=(e.version[0], new), origin=new,
                               seq=seqs[e.version[0]])
            out.append(e._replace(seen_vv=seen))
        self.events = out

    def _after_exchange(self) -> None:
        """Bring the accounting up to date with what exchanges made nodes do."""
        for i in range(len(self.stores)):
            self._reissued(i)

    # -- writes -------------------------------------------------------------------------

    @rule(node=st.integers(0, 6), op=OP)
    def write(self, node: int, op: GenOp) -> None:
        i = self._writer(node)
        if i is not None:
            self._issue(i, [op], lambda: apply_op(self.stores[i].table("orders"), op))

    @rule(node=st.integers(0, 6),
          ops=st.lists(OP, min_size=2, max_size=3, unique_by=lambda o: o[1]))
    def batch(self, node: int, ops: list[GenOp]) -> None:
        i = self._writer(node)
        if i is None:
            return

        def run() -> None:
            with self.stores[i].batch() as b:
                for op in ops:
                    apply_op(b, op)

        self._issue(i, ops, run)

    @rule(node=st.integers(0, 6), ms=st.integers(0, 400))
    def clock_moves(self, node: int, ms: int) -> None:
        self.clocks[self._node(node)].advance(ms)

    # -- exchange -----------------------------------------------------------------------

    def _apply(self, i: int, data: bytes) -> ex.SegmentReport | None:
        """Deliver one segment to node ``i`` (``None``: a gap it cannot bridge yet)."""
        s = self.stores[i]
        try:
            report = ex.apply_segment(s, decode_segment(data))
        except ex.GapError:
            return None
        finally:
            self._reissued(i)
        if report.snapshot_complete:
            self.joining.discard(i)
        return report

    @rule(src=st.integers(0, 6), dst=st.integers(0, 6),
          mode=st.sampled_from(["now", "stale", "all"]),
          stale=st.integers(0, 1000), small=st.booleans())
    def export(self, src: int, dst: int, mode: str, stale: int, small: bool) -> None:
        peer = {"now": self.stores[self._node(dst)].version_vector(), "all": {},
                "stale": self.old_vvs[stale % len(self.old_vvs)]}[mode]
        kw = {"max_bytes": 400, "max_records": 3} if small else {}
        src_store = self.stores[self._node(src)]
        self.inflight += ex.segments_for(src_store, peer, **kw)  # type: ignore[arg-type]

    @rule(pick=st.integers(0, 10_000), dst=st.integers(0, 6), keep=st.booleans())
    def deliver(self, pick: int, dst: int, keep: bool) -> None:
        if not self.inflight:
            return
        data = self.inflight[pick % len(self.inflight)] if keep else \
            self.inflight.pop(pick % len(self.inflight))
        i = self._node(dst)
        self._apply(i, data)
        self.old_vvs.append(self.stores[i].version_vector())

    @rule(pick=st.integers(0, 10_000))
    def lose(self, pick: int) -> None:
        if self.inflight:
            self.inflight.pop(pick % len(self.inflight))

    @rule(src=st.integers(0, 6), dst=st.integers(0, 6))
    def hear(self, src: int, dst: int) -> None:
        i, j = self._node(src), self._node(dst)
        if i != j:
            self._handshake(self.stores[j], self.stores[i])

    def _handshake(self, a: engine.Store, b: engine.Store) -> None:
        """``a`` hears ``b``'s state, as a handshake or a state file tells it: its ack row,
        and its tips (``a`` notices there if it was restored and its log forked)."""
        ex.record_peer(a, b.node_id, *ex.local_state(b))
        if lineage.check_peer(a, b.node_id, *b.vv_hlcs()):
            self._after_exchange()

    @rule(node=st.integers(0, 6))
    def gc(self, node: int) -> None:
        ex.collect_garbage(self.stores[self._node(node)])

    @rule()
    def gc_everywhere(self) -> None:
        """Everyone exchanges with everyone (twice: acks of acks), then collects garbage:
        tombstones every member has go."""
        for _, (i, a) in itertools.product(range(2), enumerate(self.stores)):
            for j, b in enumerate(self.stores):
                if i != j and j not in self.joining:
                    for data in ex.segments_for(a, b.version_vector()):
                        self._apply(j, data)
                    ex.record_peer(a, b.node_id, *ex.local_state(b))
        for s in self.stores:
            ex.collect_garbage(s)

    @rule(node=st.integers(0, 6))
    def mailbox(self, node: int) -> None:
        i = self._node(node)
        report = mailbox.sync_dir(self.stores[i], self.box)
        self._after_exchange()
        if any(f.report is not None and f.report.snapshot_complete for f in report.imported):
            self.joining.discard(i)

    @rule(node=st.integers(0, 6))
    def restart(self, node: int) -> None:
        i = self._node(node)
        self.stores[i].close()
        self.stores[i] = self._open(i)

    # -- the edges of membership --------------------------------------------------------

    def _add(self, path: Path, region: str) -> int:
        i = len(self.stores)
        self.paths.append(path)
        self.regions.append(region)
        self.clocks.append(engine.ManualClock(max(c() for c in self.clocks)))
        self.stores.append(self._open(i))
        self.local_txns.append(0)
        self.ids.append(self.stores[i].node_id)
        self.feed_pos.append(self.stores[i].position())
        self.joining.add(i)
        self._introduce(i)
        return i

    def _save(self, i: int) -> Path:
        """A copy of node ``i``'s directory, taken while it is closed."""
        self.stores[i].close()
        saved = Path(tempfile.mkdtemp(dir=self.root, prefix="saved-")) / "store"
        try:
            shutil.copytree(self.paths[i], saved)
        finally:
            self.stores[i] = self._open(i)
        return saved

    @rule(node=st.integers(0, 6))
    def save_copy(self, node: int) -> None:
        """Copy a node's directory (closed), to open it later as an old copy."""
        i = self._node(node)
        if len(self.copies) < 2:
            self.copies.append((self._save(i), self.regions[i]))

    @rule()
    def open_copy(self) -> None:
        """Open a saved copy: it takes a new id and joins, holding what it held then."""
        if not self.copies or len(self.stores) >= MAX_NODES:
            return
        saved, region = self.copies.pop(0)
        path = self.root / f"copy-{len(self.stores)}"
        saved.rename(path)
        i = self._add(path, region)
        assert self.stores[i].node_id not in {s.node_id for s in self.stores[:i]}

    @rule(parts=st.integers(0, 3))
    def newcomer(self, parts: int) -> None:
        """A brand-new node whose first snapshot stops after ``parts`` parts."""
        if len(self.stores) >= MAX_NODES:
            return
        src = self.stores[0]
        i = self._add(self.root / f"new-{len(self.stores)}", f"r{len(self.stores)}")
        for _, data in itertools.islice(
                ex.iter_segments(src, {}, force_snapshot=True, max_bytes=400, max_records=3),
                parts):
            self._apply(i, data)

    @rule(node=st.integers(0, 6), src=st.integers(0, 6))
    def reconcile(self, node: int, src: int) -> None:
        """A joining node takes a whole snapshot from a node that is not joining."""
        i, j = self._node(node), self._node(src)
        if i not in self.joining or j in self.joining:
            return
        for _, data in ex.iter_segments(self.stores[j], self.stores[i].version_vector(),
                                        force_snapshot=True, max_bytes=400, max_records=3):
            self._apply(i, data)

    # -- backups and restores -----------------------------------------------------------

    def _held_elsewhere(self, i: int) -> bool:
        """Whether every write node ``i`` made under its id has reached another live node."""
        me = self.stores[i].node_id
        mine = self.stores[i].version_vector().get(me, 0)
        return any(s.version_vector().get(me, 0) >= mine
                   for j, s in enumerate(self.stores) if j != i)

    @rule(node=st.integers(0, 6))
    def backup(self, node: int) -> None:
        """Back up a node's directory while it is closed (to restore it later)."""
        i = self._node(node)
        if len(self.backups) < 2 and i not in self.joining | self.unnoticed:
            s = self.stores[i]
            txns = s.version_vector().get(s.node_id, 0)
            self.backups.append(Backup(i, self._save(i), s.node_id, txns))

    @rule(pick=st.integers(0, 1), mode=st.sampled_from(RESTORES), peer=st.integers(0, 6))
    def restore(self, pick: int, mode: str, peer: int) -> None:
        """Restore a backup over its node: in place (``cp backup/data.mdb store/``: same inode,
        same id, noticed at open by the lineage stamp), the documented way (``regiondb
        restore``), or the whole directory with its stamp (noticed only at a first contact:
        the node writes under its old id until then). The node first sends what it holds to
        ``peer`` (its last sync before the disk died); with no backup yet, this move takes
        one."""
        if not self.backups:
            self.backup(pick + peer)
            return
        b = self.backups[pick % len(self.backups)]
        i, s = b.node, self.stores[b.node]
        j = self._node(peer)
        if s.node_id != b.node_id or i == j or j in self.joining or i in self.unnoticed:
            return  # (a second restore before the first was noticed: docs/operations.md)
        for data in ex.segments_for(s, self.stores[j].version_vector()):
            self._apply(j, data)
        if not self._held_elsewhere(i):
            return  # (a gap at the peer): only while its peers hold all it wrote under that id
        self.backups.remove(b)
        lost = s.version_vector().get(s.node_id, 0) > b.txns
        s.close()
        (self.paths[i] / "lock.mdb").unlink(missing_ok=True)
        shutil.copyfile(b.path / "data.mdb", self.paths[i] / "data.mdb")  # the inode stays
        stamp = engine_lineage.STAMP_FILE
        if mode == "tool":  # `regiondb restore` removes the stamp and re-identifies itself
            (self.paths[i] / stamp).unlink()
        elif mode == "whole":  # `rm -rf store && cp -a backup store`, the inode reused
            shutil.copyfile(b.path / stamp, self.paths[i] / stamp)
            # a restore takes time: the node's clock passes every HLC written so far
            self.clocks[i].set(max(c() for c in self.clocks) + 1)
            self.unnoticed.add(i)
        self.stores[i] = s = self._open(i)
        self.feed_pos[i] = s.position()
        if mode == "in_place":
            assert (s.node_id != b.node_id) == lost, "the restored node did not notice"
        elif mode == "tool":
            assert s.node_id == b.node_id
            s.reidentify("restored from a backup (model)", forked=False)
        else:
            assert s.node_id == b.node_id, "nothing tells a whole restore before a contact"
        assert s.pending_reissues() == 0
        self.local_txns[i] = b.txns if s.node_id == b.node_id else 0
        self.ids[i] = s.node_id

    @invariant()
    def own_writes_are_all_kept(self) -> None:
        for i, s in enumerate(self.stores):
            assert s.version_vector().get(s.node_id, 0) == self.local_txns[i]

    # -- the end ------------------------------------------------------------------------

    def full_exchange(self) -> None:
        top = max(c() for c in self.clocks) + 1_000
        for c in self.clocks:
            c.set(top)
        n = len(self.stores)
        for _ in range(n + 2):
            for i, a in enumerate(self.stores):
                for j, b in enumerate(self.stores):
                    if i != j:
                        for data in ex.segments_for(a, b.version_vector()):
                            self._apply(j, data)
                        self._handshake(a, b)
            if len({str(sorted(s.version_vector().items())) for s in self.stores}) == 1 \
                    and len({s.digest() for s in self.stores}) == 1:
                break

    def check(self) -> None:
        self.full_exchange()
        digests = {s.digest() for s in self.stores}
        assert len(digests) == 1, "replicas diverged"
        assert len({str(sorted(s.version_vector().items())) for s in self.stores}) == 1
        expected = expected_items(self.events)
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


class MailboxReplicationModel(ReplicationModel):
    """The same moves, but the replicas converge at the end through ``sync_dir`` alone."""

    def full_exchange(self) -> None:
        top = max(c() for c in self.clocks) + 1_000
        for c in self.clocks:
            c.set(top)
        for _ in range(len(self.stores) + 3):
            for s in self.stores:
                mailbox.sync_dir(s, self.box)
            self._after_exchange()
            if len({s.digest() for s in self.stores}) == 1 and \
                    len({str(sorted(s.version_vector().items())) for s in self.stores}) == 1:
                break


def no_rule(self: Any, *args: Any, **kwargs: Any) -> None:
    """Put in a subclass in place of a rule, to leave that move out of its runs."""
