"""Issue item 10: every entry point refuses bad input with ValidationError (or the specific error)
naming the problem, and changes nothing — digest(), version_vector() and the log stay as they were.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine
from engine.keys import encode_value
from engine.store import TableDef

NODE = 0xFEED


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[engine.Store, engine.Table, engine.Table]]:
    with engine.open(tmp_path / "s", region="r", durable=False) as s:
        orders = s.create_table("orders", partition_key="pk", sort_key="sk")
        users = s.create_table("users", partition_key="id")
        orders.put({"pk": "c1", "sk": "o1", "n": 1})
        users.put({"id": "u1", "tags": {"a"}})
        yield s, orders, users


def _fingerprint(s: engine.Store) -> tuple[Any, ...]:
    return (s.digest(), s.version_vector(), s.position(), s.tables(), s.log_floor(),
            s.conflict_count(), sorted(s.forgotten()))


def _refused(
    s: engine.Store, call: Callable[[], Any], error: type[Exception] = engine.ValidationError,
    match: str | None = None,
) -> Exception:
    before = _fingerprint(s)
    with pytest.raises(error, match=match) as info:
        result = call()
        if hasattr(result, "__next__"):
            list(result)
    assert _fingerprint(s) == before, "a refused call changed the store"
    return info.value


# -- engine.open -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"region": "a b"}, "region"),
        ({"region": ""}, "region"),
        ({"region": "x" * 65}, "region"),
        ({"region": 5}, "region"),
        ({"region": "r", "map_size": 100}, "map_size"),
        ({"region": "r", "map_size": 1.5e9}, "map_size"),
        ({"region": "r", "map_size": True}, "map_size"),
        ({"region": "r", "max_clock_offset": -1}, "max_clock_offset"),
        ({"region": "r", "max_clock_offset": "1"}, "max_clock_offset"),
        ({"region": "r", "max_clock_offset": float("nan")}, "max_clock_offset"),
        ({"region": "r", "max_conflicts": -1}, "max_conflicts"),
        ({"region": "r", "durable": "yes"}, "durable"),
        ({"region": "r", "create": 1}, "create"),
        ({"region": "r", "wall_clock": 5}, "wall_clock"),
        ({}, "region="),
    ],
)
def test_open_bad_arguments(tmp_path: Path, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(engine.ValidationError, match=match):
        engine.open(tmp_path / "s", **kwargs)
    assert not (tmp_path / "s" / "data.mdb").exists()


def test_open_bad_path(tmp_path: Path) -> None:
    with pytest.raises(engine.ValidationError, match="path"):
        engine.open(5, region="r")  # type: ignore[arg-type]


# -- tables ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("",), {"partition_key": "k"}, "table name"),
        (("a b",), {"partition_key": "k"}, "table name"),
        (("x" * 256,), {"partition_key": "k"}, "table name"),
        ((None,), {"partition_key": "k"}, "table name"),
        (("t",), {"partition_key": ""}, "partition_key"),
        (("t",), {"partition_key": 1}, "partition_key"),
        (("t",), {"partition_key": "k", "sort_key": "k"}, "must differ"),
        (("t",), {"partition_key": "k", "sort_key": b"s"}, "sort_key"),
    ],
)
def test_create_table_bad(world: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                          match: str) -> None:
    s, _, _ = world
    _refused(s, lambda: s.create_table(*args, **kwargs), match=match)


def test_create_table_schema_error(world: Any) -> None:
    s, _, _ = world
    _refused(s, lambda: s.create_table("orders", partition_key="pk"), engine.SchemaError,
             "orders")


@pytest.mark.parametrize("name", [1, None, b"orders", ("orders",)])
def test_table_bad_name(world: Any, name: Any) -> None:
    s, _, _ = world
    _refused(s, lambda: s.table(name), match="table name")


def test_table_missing(world: Any) -> None:
    s, _, _ = world
    _refused(s, lambda: s.table("nope"), engine.TableNotFound, "nope")


# -- items -------------------------------------------------------------------------------------

BAD_ITEMS: list[tuple[Any, str]] = [
    ([("pk", "c1")], "must be a dict"),
    ("pk", "must be a dict"),
    ({"sk": "o"}, "lacks its partition key 'pk'"),
    ({"pk": "c"}, "lacks its sort key 'sk'"),
    ({"pk": None, "sk": "o"}, "'pk' must be str, number or bytes"),
    ({"pk": True, "sk": "o"}, "'pk'.*bool"),
    ({"pk": "c", "sk": [1]}, "'sk'.*list"),
    ({"pk": float("nan"), "sk": "o"}, "finite"),
    ({"pk": "x" * 600, "sk": "o"}, "511"),
    ({"pk": "\ud800", "sk": "o"}, "Unicode"),
    ({"pk": "c", "sk": "o", "": 1}, "attribute names"),
    ({"pk": "c", "sk": "o", 5: 1}, "attribute names"),
    ({"pk": "c", "sk": "o", "a" * 256: 1}, "longer than 255"),
    ({"pk": "c", "sk": "o", "v": float("inf")}, "'v'.*finite"),
    ({"pk": "c", "sk": "o", "v": Decimal("NaN")}, "'v'.*finite"),
    ({"pk": "c", "sk": "o", "v": (1, 2)}, "'v'.*tuple"),
    ({"pk": "c", "sk": "o", "v": object()}, "'v'.*object"),
    ({"pk": "c", "sk": "o", "v": {1: 2}}, "'v'.*map keys"),
    ({"pk": "c", "sk": "o", "v": {"a": [1, {"b": {1j}}]}}, r"'v'\.a\[1\]\.b.*set elements"),
    ({"pk": "c", "sk": "o", "v": {"a", 1}}, "one kind"),
    ({"pk": "c", "sk": "o", "v": 2**9000}, "too large"),
    ({"pk": "c", "sk": "o", "v": "\udcff"}, "Unicode"),
]


@pytest.mark.parametrize(("item", "match"), BAD_ITEMS)
def test_put_bad_item(world: Any, item: Any, match: str) -> None:
    s, orders, _ = world
    _refused(s, lambda: orders.put(item), match=match)
    with s.batch() as b:  # the same through a batch: refused when added, batch stays empty
        _refused(s, lambda: b.put(orders, item), match=match)
    assert len(b) == 0


@pytest.mark.parametrize(
    ("key", "match"),
    [((None, "o"), "'pk'"), (("c", None), "needs a sort key"), ((1.5j, "o"), "'pk'"),
     (("c", {"x"}), "'sk'"), ((b"x" * 600, "o"), "511"), ((Decimal("Infinity"), "o"), "finite"),
     ((Decimal("1e3000000000"), "o"), "out of range")],
)
def test_key_based_calls_bad_key(world: Any, key: tuple[Any, Any], match: str) -> None:
    s, orders, _ = world
    _refused(s, lambda: orders.get(*key), match=match)
    _refused(s, lambda: orders.update(*key, set={"a": 1}), match=match)
    _refused(s, lambda: orders.delete(*key), match=match)
    with s.batch() as b:
        _refused(s, lambda: b.update(orders, *key, set={"a": 1}), match=match)
        _refused(s, lambda: b.delete(orders, *key), match=match)


def test_sort_key_given_to_table_without_one(world: Any) -> None:
    s, _, users = world
    _refused(s, lambda: users.get("u1", "x"), match="has no sort key")
    _refused(s, lambda: users.delete("u1", "x"), match="has no sort key")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"set": [("a", 1)]}, "set= must be a dict"),
        ({"set": {"pk": "c9"}}, "key attribute"),
        ({"remove": ["sk"]}, "key attribute"),
        ({"remove": "abc"}, "remove= must be a list"),
        ({"remove": 5}, "remove= must be a list"),
        ({"remove": [1]}, "attribute names"),
        ({"remove": [""]}, "attribute names"),
        ({"set": {"a": 1}, "remove": ["a"]}, "both set and removed"),
        ({"set": {"a": float("nan")}}, "'a'.*finite"),
        ({"condition": 5}, "condition must be a ConditionExpression string, a callable"),
        ({"condition": "yes"}, "Invalid ConditionExpression: Syntax error; token: \"<EOF>\""),
    ],
)
def test_update_bad(world: Any, kwargs: dict[str, Any], match: str) -> None:
    s, orders, _ = world
    _refused(s, lambda: orders.update("c1", "o1", **kwargs), match=match)


def test_conditions_bad(world: Any) -> None:
    s, orders, _ = world
    _refused(s, lambda: orders.put({"pk": "c", "sk": "o"}, condition=1), match="condition")
    _refused(s, lambda: orders.delete("c1", "o1", condition=[]), match="condition")
    _refused(s, lambda: orders.delete("c1", "o1", condition=lambda cur: False),
             engine.ConditionFailed, "condition failed")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"limit": 0}, "limit"), ({"limit": -1}, "limit"), ({"limit": "3"}, "limit"),
        ({"limit": True}, "limit"), ({"reverse": "yes"}, "reverse"),
        ({"begins_with": 1}, "begins_with"), ({"between": (1,)}, "between"),
        ({"between": "ab"}, "between"), ({"between": ("b", "a")}, "above high"),
        ({"between": ("a", None)}, "'sk'"), ({"gt": [1]}, "'sk'"),
        ({"gt": "a", "gte": "a"}, "at most one"), ({"lt": "a", "lte": "a"}, "at most one"),
        ({"begins_with": "a", "gt": "a"}, "cannot be combined"),
        ({"between": ("a", "b"), "lt": "c"}, "cannot be combined"),
    ],
)
def test_query_bad(world: Any, kwargs: dict[str, Any], match: str) -> None:
    s, orders, _ = world
    _refused(s, lambda: orders.query("c1", **kwargs), match=match)


def test_query_bad_partition_and_sortless_conditions(world: Any) -> None:
    s, orders, users = world
    _refused(s, lambda: orders.query(None), match="'pk'")
    _refused(s, lambda: orders.query(["c1"]), match="'pk'")
    _refused(s, lambda: users.query("u1", begins_with="a"), match="no sort key")


@pytest.mark.parametrize("limit", [0, -5, "1", 1.0, True])
def test_scan_bad_limit(world: Any, limit: Any) -> None:
    s, orders, _ = world
    _refused(s, lambda: orders.scan(limit=limit), match="limit")


def test_batch_bad(world: Any) -> None:
    s, orders, _ = world
    _refused(s, lambda: s.batch().put("nope", {"id": 1}), engine.TableNotFound)
    _refused(s, lambda: s.batch().put(5, {"id": 1}), match="table name")

    def twice() -> None:
        with s.batch() as b:
            b.put(orders, {"pk": "x", "sk": 1})
            b.delete(orders, "x", 1)

    _refused(s, twice, match="twice")

    def failing_condition() -> None:
        with s.batch() as b:
            b.put(orders, {"pk": "x", "sk": 1})
            b.delete(orders, "c1", "o1", condition=lambda cur: cur is None)

    _refused(s, failing_condition, engine.ConditionFailed)


# -- feed, conflicts, log ----------------------------------------------------------------------


@pytest.mark.parametrize("since", [-1, "0", 1.0, None, True, 2**64])
def test_changes_and_conflicts_bad_since(world: Any, since: Any) -> None:
    s, _, _ = world
    _refused(s, lambda: s.changes(since=since), match="since")  # raised at the call
    _refused(s, lambda: s.conflicts(since=since), match="since")


@pytest.mark.parametrize("limit", [0, -1, "2", True])
def test_changes_bad_limit(world: Any, limit: Any) -> None:
    s, _, _ = world
    _refused(s, lambda: s.changes(limit=limit), match="limit")


@pytest.mark.parametrize(
    ("args", "match"),
    [(("x", 0), "origin"), ((0, 0), "origin"), ((2**64, 0), "origin"), ((True, 0), "origin"),
     ((NODE, -1), "after"), ((NODE, "1"), "after"), ((NODE, 0, 0), "limit")],
)
def test_log_range_bad(world: Any, args: tuple[Any, ...], match: str) -> None:
    s, _, _ = world
    _refused(s, lambda: s.log_range(*args), match=match)


@pytest.mark.parametrize("node", ["x", 0, -1, 2**64, True, None])
def test_forget_bad(world: Any, node: Any) -> None:
    s, _, _ = world
    _refused(s, lambda: s.forget(node), match="node id")


def test_forget_self(world: Any) -> None:
    s, _, _ = world
    _refused(s, lambda: s.forget(s.node_id), match="itself")


@pytest.mark.parametrize(
    ("stable", "match"),
    [([1], "mapping"), ({"x": 1}, "node id"), ({0: 1}, "node id"), ({NODE: -1}, "seq"),
     ({NODE: "1"}, "seq")],
)
def test_compact_bad(world: Any, stable: Any, match: str) -> None:
    s, _, _ = world
    _refused(s, lambda: s.compact(stable), match=match)


def test_meta_bad(world: Any) -> None:
    s, _, _ = world
    _refused(s, lambda: s.set_meta("x", object()), match="cannot be encoded")
    _refused(s, lambda: s.set_meta(5, 1), match="meta name")
    _refused(s, lambda: s.get_meta(None), match="meta name")


# -- apply_changes -----------------------------------------------------------------------------

KEY = encode_value("orders") + encode_value("c1") + encode_value("o1")


def _txn(*ops: list[Any], hlc: int = 1 << 16) -> bytes:
    return cbor2.dumps([hlc, list(ops)])


BAD_RECORDS: list[tuple[Any, str]] = [
    ([[NODE, 1, _txn(["D", "orders", KEY, 0, 0])]], "not \\(origin, seq, txn\\)"),
    ([(NODE, 1)], "not \\(origin, seq, txn\\)"),
    ([(0, 1, _txn(["D", "orders", KEY, 0, 0]))], "bad origin"),
    ([(NODE, 0, _txn(["D", "orders", KEY, 0, 0]))], "bad origin, seq"),
    ([(NODE, 1, "text")], "payload"),
    ([(NODE, 1, b"")], "bad CBOR"),
    ([(NODE, 1, b"\xff\xfe")], "bad CBOR"),
    ([(NODE, 1, _txn())], "no operations"),
    ([(NODE, 1, _txn(["D", "orders", KEY + b"x" * 600, 0, 0]))], "511"),
    ([(NODE, 1, _txn(["T", "a/b", "k", None]))], "table name"),
    ([(NODE, 1, _txn(["T", "ok", "k" * 300, None]))], "longer than 255"),
    ([(NODE, 1, _txn(["T", "ok", "k", "k"]))], "sort key equals"),
    ([(NODE, 1, _txn(["P", "orders", KEY, {"a": cbor2.CBORTag(99, 1)}, 0, 0]))], "'a'"),
    ([(NODE, 1, _txn(["P", "orders", KEY, {"a": 1}, -1, 0]))], "seen hlc"),
    ([(NODE, 1, _txn(["U", "orders", KEY, {}, [5], 0, 0]))], "attribute names"),
    # one bad record spoils the whole call, however many good ones precede it
    ([(NODE, 1, _txn(["D", "orders", KEY, 0, 0])), (NODE, 2, b"junk")], "bad CBOR"),
]


@pytest.mark.parametrize(("records", "match"), BAD_RECORDS)
def test_apply_changes_malformed(world: Any, records: Any, match: str) -> None:
    s, _, _ = world
    _refused(s, lambda: s.apply_changes(records), match=match)


@pytest.mark.parametrize("records", [5, None, b"abc", "abc", {NODE: 1}])
def test_apply_changes_not_records(world: Any, records: Any) -> None:
    s, _, _ = world
    _refused(s, lambda: s.apply_changes(records), match="records|record 0")


# -- merge_snapshot ------------------------------------------------------------------------------


def _state(hlc: int = 1 << 16, node: int = NODE, **attrs: Any) -> bytes:
    return cbor2.dumps([hlc, node, attrs, {}])


BAD_SNAPSHOTS: list[tuple[Any, Any, Any, str]] = [
    ([1], [], [], "vv must be a mapping"),
    ({0: 1}, [], [], "node id"),
    ({NODE: -1}, [], [], "seq"),
    ({"x": 1}, [], [], "node id"),
    ({}, 5, [], "tables must be an iterable"),
    ({}, [1], [], "not a TableDef"),
    ({}, [TableDef("a/b", "k", None)], [], "table name"),
    ({}, [TableDef("t", "", None)], [], "partition_key"),
    ({}, [TableDef("t", "k", "k")], [], "sort key equals"),
    ({}, [TableDef("t", "k", None, (-1, 0))], [], "version"),
    ({}, [], 5, "items must be an iterable"),
    ({}, [], [1], "not a \\(key, state\\) pair"),
    ({}, [], [(b"", _state())], "valid length"),
    ({}, [], [("k", _state())], "valid length"),
    ({}, [], [(KEY, "state")], "state is not bytes"),
    ({}, [], [(b"\x99", _state())], "malformed key"),
    ({}, [], [(encode_value("a/b") + encode_value(1), _state())], "table name"),
    ({}, [], [(KEY, b"\xff")], "malformed item state"),
    ({}, [], [(KEY, cbor2.dumps([1, 2, 3]))], "malformed item state"),
    ({}, [], [(KEY, _state(v=float("nan")))], "finite"),
    ({}, [], [(KEY, _state()), (KEY, b"junk")], "malformed item state"),
]


@pytest.mark.parametrize(("vv", "tables", "items", "match"), BAD_SNAPSHOTS)
def test_merge_snapshot_malformed(world: Any, vv: Any, tables: Any, items: Any, match: str) -> None:
    s, _, _ = world
    _refused(s, lambda: s.merge_snapshot(vv, tables, items), match=match)


def test_merge_snapshot_from_the_future(world: Any) -> None:
    s, _, _ = world
    far = ((s._wall() + 3_600_000) << 16)
    err = _refused(s, lambda: s.merge_snapshot({NODE: 1}, [], [(KEY, _state(hlc=far, x=1))]),
                   engine.ClockSkewError, "ahead")
    assert err.skew_ms >= 3_600_000 - 1000  # type: ignore[attr-defined]


# -- hypothesis garbage --------------------------------------------------------------------------

anything = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.binary(),
              st.decimals(), st.complex_numbers(), st.just(object()), st.just(Ellipsis),
              st.just(float("nan"))),
    lambda inner: st.one_of(st.lists(inner), st.tuples(inner, inner),
                            st.dictionaries(st.one_of(st.text(), st.integers()), inner),
                            st.frozensets(st.one_of(st.integers(), st.text(), st.booleans()))),
    max_leaves=8,
)
encodable = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.binary(),
              st.decimals(), st.just(cbor2.CBORTag(1, 0)), st.just(cbor2.undefined)),
    lambda inner: st.one_of(st.lists(inner),
                            st.dictionaries(st.one_of(st.text(), st.integers()), inner),
                            st.frozensets(st.one_of(st.integers(), st.text()))),
    max_leaves=8,
)
garbage_settings = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@garbage_settings
@given(item=anything)
def test_garbage_items(world: Any, item: Any) -> None:
    s, orders, _ = world
    before = _fingerprint(s)
    try:
        orders.put(item)
    except engine.ValidationError:
        assert _fingerprint(s) == before
    else:  # garbage that happens to be a valid item is simply written
        assert isinstance(item, dict) and orders.get(item["pk"], item["sk"]) is not None


@garbage_settings
@given(pk=anything, sk=anything, value=anything)
def test_garbage_keys_and_values(world: Any, pk: Any, sk: Any, value: Any) -> None:
    s, orders, _ = world
    for call in (lambda: orders.get(pk, sk), lambda: list(orders.query(pk, gt=sk)),
                 lambda: orders.update(pk, sk, set={"v": value}),
                 lambda: orders.put({"pk": "garbage", "sk": 1, "v": value})):
        before = _fingerprint(s)
        try:
            call()
        except engine.ValidationError:
            assert _fingerprint(s) == before


@garbage_settings
@given(payload=st.binary(max_size=300), seq=st.integers(1, 3))
def test_garbage_txn_payloads(world: Any, payload: bytes, seq: int) -> None:
    s, _, _ = world
    before = _fingerprint(s)
    try:
        report = s.apply_changes([(NODE, seq, payload)])
    except engine.ValidationError:
        assert _fingerprint(s) == before
    else:  # random bytes that decode as a valid txn: applied, or held as a gap
        assert report.applied + report.held == 1


txn_like = st.builds(
    lambda hlc, ops: cbor2.dumps([hlc, ops]),
    st.one_of(st.integers(-5, 2**65), encodable),
    st.lists(st.one_of(
        st.tuples(st.sampled_from(["P", "U", "D", "T", "X"]), encodable, encodable, encodable,
                  encodable, encodable).map(list),
        st.builds(lambda t, a, s1, s2: ["P", t, KEY, a, s1, s2],
                  st.sampled_from(["orders", "users", ""]), encodable, encodable, encodable),
        encodable), max_size=3),
)


@garbage_settings
@given(payload=txn_like)
def test_garbage_structured_txns(world: Any, payload: bytes) -> None:
    s, _, _ = world
    before = _fingerprint(s)
    try:
        s.apply_changes([(NODE, 1, payload)])
    except engine.ValidationError:
        assert _fingerprint(s) == before
