"""A Store against a dict model (Hypothesis' DatabaseComparison pattern): puts, updates, deletes,
batches, conditions, reads, queries and reopening, with the visible state, the change log and the
digest checked after every step."""

from __future__ import annotations

import shutil
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import engine
from engine import codec
from engine.keys import encode_value

PKS = st.sampled_from(["a", "a\x00", "ab", "b"])
SKS = st.one_of(st.integers(-3, 3), st.sampled_from([Decimal("0.5"), 1.5, "s", b"\x00"]))
NAMES = st.sampled_from(["x", "y", "z"])
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=3), st.binary(max_size=2),
    st.floats(-2, 2, allow_nan=False), st.lists(st.integers(0, 2), max_size=2),
    st.frozensets(st.sampled_from(["p", "q"])),
)
ATTRS = st.dictionaries(NAMES, VALUES, max_size=3)

Key = tuple[Any, Any]


def _norm(sk: Any) -> Any:
    """The canonical form a sort key reads back as (numbers: int if integral, else Decimal)."""
    if isinstance(sk, (int, float, Decimal)) and not isinstance(sk, bool):
        d = Decimal(repr(sk)) if isinstance(sk, float) else Decimal(sk)
        return int(d) if d == d.to_integral_value() else d.normalize()
    return sk


def _order(key: Key) -> bytes:
    return encode_value(key[0]) + encode_value(key[1])


class StoreModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="regiondb-model-"))
        self.store = engine.open(self.dir / "s", region="model", durable=False)
        self.table = self.store.create_table("t", partition_key="pk", sort_key="sk")
        self.model: dict[Key, dict[str, Any]] = {}
        self.digests: dict[bytes, str] = {}
        self.txns = 1  # the create_table

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _item(self, pk: Any, sk: Any, attrs: dict[str, Any]) -> dict[str, Any]:
        return {**attrs, "pk": pk, "sk": _norm(sk)}

    # -- writes --------------------------------------------------------------------------------

    @rule(pk=PKS, sk=SKS, attrs=ATTRS)
    def put(self, pk: Any, sk: Any, attrs: dict[str, Any]) -> None:
        self.table.put({**attrs, "pk": pk, "sk": sk})
        self.model[(pk, _norm(sk))] = self._item(pk, sk, attrs)
        self.txns += 1

    @rule(pk=PKS, sk=SKS, setting=ATTRS, removing=st.lists(NAMES, max_size=2))
    def update(self, pk: Any, sk: Any, setting: dict[str, Any], removing: list[str]) -> None:
        removing = [n for n in removing if n not in setting]
        got = self.table.update(pk, sk, set=setting, remove=removing)
        key = (pk, _norm(sk))
        item = dict(self.model.get(key) or {"pk": pk, "sk": _norm(sk)})
        item.update(setting)
        for n in removing:
            item.pop(n, None)
        self.model[key] = item
        self.txns += 1
        assert got == item

    @rule(pk=PKS, sk=SKS)
    def delete(self, pk: Any, sk: Any) -> None:
        self.table.delete(pk, sk)
        self.model.pop((pk, _norm(sk)), None)
        self.txns += 1

    @rule(pk=PKS, sk=SKS, attrs=ATTRS, expect_absent=st.booleans())
    def conditional_put(self, pk: Any, sk: Any, attrs: dict[str, Any], expect_absent: bool) -> None:
        key = (pk, _norm(sk))
        ok = (key not in self.model) == expect_absent
        try:
            self.table.put({**attrs, "pk": pk, "sk": sk},
                           condition=lambda cur: (cur is None) == expect_absent)
        except engine.ConditionFailed:
            assert not ok
        else:
            assert ok
            self.model[key] = self._item(pk, sk, attrs)
            self.txns += 1

    @rule(ops=st.lists(st.tuples(st.sampled_from(["put", "update", "delete"]), PKS, SKS, ATTRS),
                       min_size=1, max_size=4),
          fail=st.booleans())
    def batch(self, ops: list[tuple[str, Any, Any, dict[str, Any]]], fail: bool) -> None:
        seen: set[Key] = set()
        ops = [o for o in ops if (o[1], _norm(o[2])) not in seen
               and not seen.add((o[1], _norm(o[2])))]  # type: ignore[func-returns-value]
        new = dict(self.model)
        try:
            with self.store.batch() as b:
                for kind, pk, sk, attrs in ops:
                    key = (pk, _norm(sk))
                    if kind == "put":
                        b.put(self.table, {**attrs, "pk": pk, "sk": sk})
                        new[key] = self._item(pk, sk, attrs)
                    elif kind == "update":
                        b.update(self.table, pk, sk, set=attrs)
                        new[key] = {**(new.get(key) or {"pk": pk, "sk": _norm(sk)}), **attrs}
                    else:
                        b.delete(self.table, pk, sk)
                        new.pop(key, None)
                if fail:
                    raise RuntimeError("abandon the batch")
        except RuntimeError:
            assert fail
            return
        self.model = new
        self.txns += 1

    @rule()
    def reopen(self) -> None:
        digest = self.store.digest()
        self.store.close()
        self.store = engine.open(self.dir / "s", durable=False)
        self.table = self.store.table("t")
        assert self.store.digest() == digest

    # -- reads ---------------------------------------------------------------------------------

    @rule(pk=PKS, sk=SKS)
    def get(self, pk: Any, sk: Any) -> None:
        assert self.table.get(pk, sk) == self.model.get((pk, _norm(sk)))

    @rule(pk=PKS, lo=st.integers(-3, 3), hi=st.integers(-3, 3), reverse=st.booleans(),
          limit=st.one_of(st.none(), st.integers(1, 3)))
    def query(self, pk: Any, lo: int, hi: int, reverse: bool, limit: int | None) -> None:
        lo, hi = min(lo, hi), max(lo, hi)
        expected = [v for k, v in sorted(self.model.items(), key=lambda kv: _order(kv[0]))
                    if k[0] == pk and isinstance(k[1], (int, Decimal)) and lo <= k[1] <= hi]
        if reverse:
            expected.reverse()
        if limit is not None:
            expected = expected[:limit]
        got = self.table.query(pk, between=(lo, hi), reverse=reverse, limit=limit)
        assert list(got) == expected

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def visible_state_equals_model(self) -> None:
        expected = [v for _, v in sorted(self.model.items(), key=lambda kv: _order(kv[0]))]
        assert list(self.table.scan()) == expected

    @invariant()
    def every_change_is_in_the_log(self) -> None:
        assert self.store.version_vector() == {self.store.node_id: self.txns}
        last: dict[Key, Any] = {}
        for change in self.store.changes():
            if change.kind != "create_table":
                last[(change.key["pk"], change.key["sk"])] = change.new_image
        assert {k: v for k, v in last.items() if v is not None} == self.model

    @invariant()
    def digest_is_a_function_of_the_visible_state(self) -> None:
        """Equal visible states give equal digests, and different ones different digests."""
        # the model's state in the store's canonical value encoding (so 1 and 1.0 are told
        # apart exactly as the store tells them apart), never the store's own state
        state = codec.canonical([[k[0], _norm(k[1]), v] for k, v in
                                 sorted(self.model.items(), key=lambda kv: _order(kv[0]))])
        digest = self.store.digest()
        seen = self.digests.setdefault(state, digest)
        assert seen == digest, "the same visible state gave two digests"
        owners = {s for s, d in self.digests.items() if d == digest}
        assert owners == {state}, "two different visible states gave one digest"


TestStoreModel = StoreModel.TestCase
