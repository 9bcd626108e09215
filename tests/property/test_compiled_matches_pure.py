"""Hypothesis: the compiled (mypyc) hot modules behave exactly as their pure-Python sources.

The ``.py`` sources are the reference. Each is loaded a second time, from its file, as a module
of a shadow package (``importlib.util.spec_from_file_location``), so the pure and the compiled
code run side by side in one process; the shadow modules import each other (their relative
imports resolve inside the shadow package) and share the real ``engine.errors`` and
``engine.clock`` (not compiled), so exceptions compare by class. Every check runs one call in
both and compares the outcome: the result (type name and ``repr``, which for states, ops and
exts spells every field in order) or the exception (class and message).

Inputs are valid and invalid: values, names, keys, key encodings, transactions (well-formed,
mutated bytes, arbitrary CBOR), item states and their merges, state encodings, op ``ext``
maps, version vectors. Parameters that carry caller, file or peer data are typed ``Any`` or
``object`` in the compiled modules, so both builds run the same checks on them; the others
are internal and checked by ``mypy --strict`` at every call site, so they get valid input here.

Skipped, saying why, when the modules are not compiled (a pure-Python install).
"""

from __future__ import annotations

import importlib.util
import struct
import sys
import types
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import engine
from engine import clock, compiled, errors

pytestmark = pytest.mark.skipif(
    not engine.native(), reason=f"the hot modules are not compiled: {engine.native_summary()}")

SHADOW = "_regiondb_pure_reference"


def _load_pure() -> dict[str, types.ModuleType]:
    """The pure-Python sources of the compiled modules, as a shadow package."""
    if SHADOW in sys.modules:
        return {n: sys.modules[f"{SHADOW}.{n}"] for n in _stems()}
    pkg = types.ModuleType(SHADOW)
    pkg.__path__ = []  # a package with nothing on disk: its modules are registered by hand
    sys.modules[SHADOW] = pkg
    sys.modules[f"{SHADOW}.errors"] = errors
    sys.modules[f"{SHADOW}.clock"] = clock
    out = {}
    for stem in _stems():  # dependency order: checks, keys, item, codec, mergewire, bounded
        path = Path(engine.__file__).with_name(f"{stem}.py")
        spec = importlib.util.spec_from_file_location(f"{SHADOW}.{stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        out[stem] = module
    return out


def _stems() -> list[str]:
    return [name.rsplit(".", 1)[1] for name in compiled.COMPILED_MODULES]


PURE = _load_pure() if engine.native() else {}
FAST = {stem: sys.modules[f"engine.{stem}"] for stem in _stems()} if engine.native() else {}


def test_the_modules_compared_are_what_they_claim() -> None:
    for stem in _stems():
        assert not FAST[stem].__file__.endswith(".py"), stem  # an extension module
        assert PURE[stem].__file__.endswith(f"{stem}.py"), stem
        assert PURE[stem] is not FAST[stem]
    assert PURE["codec"].ItemState is PURE["item"].ItemState  # the shadows import each other
    assert set(engine.native()) == set(compiled.COMPILED_MODULES)


def outcome(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, ...]:
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the exception is the outcome compared
        return ("raised", type(exc), str(exc))
    return ("returned", type(result).__name__, repr(result))


def same(module: str, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
    """Call ``module.name`` pure and compiled; assert one outcome; return it."""
    want = outcome(getattr(PURE[module], name), *args, **kwargs)
    got = outcome(getattr(FAST[module], name), *args, **kwargs)
    assert got == want, f"{module}.{name}{args!r:.300}: compiled {got!r:.400} != pure {want!r:.400}"
    return want


class Weird(float):
    """A float subclass with its own repr (subclasses take the same path in both builds)."""

    def __repr__(self) -> str:
        return "Weird()"


class Shout(str):
    pass


LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2**7990, max_value=2**8010),
    st.floats(), st.decimals(), st.text(max_size=4),
    st.sampled_from(["\ud800", "a\x00b", "é", "\U0001f600", Shout("s"), Weird(1.5),
                     Decimal("-0"), Decimal("1e400"), Decimal("NaN"), 2**64, -(2**63), True]),
    st.binary(max_size=4), st.frozensets(st.integers(-9, 9), max_size=3),
    st.sets(st.one_of(st.integers(-3, 3), st.text(max_size=2), st.floats(0, 2)), max_size=3),
    st.builds(object), st.builds(bytearray, st.binary(max_size=2)),
    st.tuples(st.integers(0, 2)),
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=3), st.integers(0, 3), st.none()), inner,
                        max_size=3),
    ),
    max_leaves=8,
)
NAMES = st.one_of(st.sampled_from(["a", "b", "pk", "sk", "", "x" * 256, "\ud800", "é" * 200]),
                  st.text(max_size=4), st.integers(0, 3), st.none(), st.binary(max_size=2))


def _nest(value: Any, depth: int) -> Any:
    for _ in range(depth):
        value = [value]
    return value


DEEP = st.builds(_nest, LEAVES, st.integers(28, 34))
ITEMS = st.dictionaries(NAMES, st.one_of(VALUES, DEEP), max_size=4)


# -- checks ---------------------------------------------------------------------------------

ANY = st.one_of(VALUES, st.integers(-2, 2**64 + 2), st.sampled_from([2**64 - 1, 2**64, -1, 0]))


@given(ANY)
def test_checks(value: Any) -> None:
    for name in ("is_u64", "is_node_id"):
        same("checks", name, value)
    same("checks", "check_u64", value, "what")
    same("checks", "check_node_id", value, "what")
    same("checks", "check_limit", value)
    same("checks", "check_vv", value)


HASHABLE = st.one_of(st.integers(-2, 2**64 + 2), st.text(max_size=2), st.none(), st.booleans(),
                     st.sampled_from([2**64 - 1, 2**64, 0, 1.0]))


@given(st.dictionaries(HASHABLE, ANY, max_size=3))
def test_check_vv_maps(value: Any) -> None:
    same("checks", "check_vv", value, "peer vv")


# -- values, names, captures ----------------------------------------------------------------


@given(st.one_of(VALUES, DEEP))
@example(Weird(float("inf")))
@example({"a": {1: 2}})
def test_values(value: Any) -> None:
    same("codec", "check_value", value, "item.attr")
    same("codec", "capture", value)
    same("codec", "dumps_checked", value, "value")
    same("codec", "check_attrs", {"v": value}, "orders", _in_table=True)
    if outcome(PURE["codec"].canonical, value)[0] == "returned":
        same("codec", "canonical", value)


@given(ITEMS)
@example({1: 2})
@example({"": 1})
def test_attribute_maps(attrs: dict[Any, Any]) -> None:
    same("codec", "check_attrs", attrs, "orders", _in_table=True)
    same("codec", "check_attrs", attrs, "table 'orders' update")


@given(NAMES, NAMES, st.one_of(st.none(), NAMES))
def test_names_and_key_schemas(name: Any, pk: Any, sk: Any) -> None:
    same("codec", "check_attr_name", name, "where")
    same("codec", "check_table_name", name)
    same("codec", "check_key_schema", name, pk, sk)
    for projection in ("ALL", "KEYS_ONLY", [pk], (pk, sk), name, None):
        same("codec", "check_index_spec", "t", name, pk, sk, projection)


# -- keys ------------------------------------------------------------------------------------

KEY_VALUES = st.one_of(
    st.text(max_size=5), st.binary(max_size=5), st.integers(), st.floats(), st.decimals(),
    st.sampled_from([Weird(2.5), Shout("k"), True, None, [1], Decimal("-1e-400"), 10**90]),
)


@given(KEY_VALUES, st.one_of(st.none(), KEY_VALUES))
@example(Weird(float("inf")), None)
@example(Weird(2.5), Weird(-0.0))
def test_key_encodings(pk: Any, sk: Any) -> None:
    enc = same("keys", "encode_value", pk, "pk")
    same("keys", "check_key_value", pk, "pk")
    same("keys", "encode_prefix", pk)
    same("keys", "item_key", b"\x30t\x00\x01", pk, sk, "pk", None if sk is None else "sk")
    if enc[0] == "returned":
        raw = FAST["keys"].encode_value(pk, "pk")
        same("keys", "decode_value", raw, 0)
        same("keys", "decode_key", b"\x30t\x00\x01" + raw)
        same("keys", "decode_key", b"\x30t\x00\x01" + raw + raw + raw)


@given(st.binary(max_size=24), st.integers(0, 4))
@example(b"\x22\x80\x00\x00\x01\x31", 0)
@example(b"\x30a\x00\x02", 0)
def test_key_decodings_of_any_bytes(data: bytes, pos: int) -> None:
    same("keys", "decode_value", data, pos)
    same("keys", "decode_key", data)


# -- transactions ----------------------------------------------------------------------------

KEY = b"\x30orders\x00\x01\x30c1\x00\x01\x30o1\x00\x01"
OPS = st.one_of(
    st.builds(lambda a, s: ["P", "orders", KEY, a, s, 1], ITEMS, st.integers(0, 2**64)),
    st.builds(lambda a, r: ["U", "orders", KEY, a, r, 1, 2], ITEMS, st.lists(NAMES, max_size=2)),
    st.builds(lambda h: ["D", "orders", KEY, h, 2], st.integers(-1, 3)),
    st.just(["T", "orders", "pk", "sk"]), st.just(["T", "bad name!", "pk", None]),
    st.just(["L", "orders", "ttl"]), st.just(["X", "orders", "byStatus"]),
    st.just(["I", "orders", "byStatus", "status", None, "ALL"]),
    st.just(["R", "orders", 5, 6]),
    st.builds(lambda e: ["P", "orders", KEY, {"pk": "c1"}, 0, 0, e],
              st.dictionaries(st.sampled_from("asdotx"), VALUES, max_size=3)),
    st.builds(lambda k: ["P", "orders", k, {"pk": 1}, 0, 0], st.binary(max_size=20)),
    st.lists(VALUES, max_size=4),
)


@given(st.integers(-1, 2**64), st.lists(OPS, max_size=3))
def test_transactions(hlc: int, ops: list[Any]) -> None:
    try:
        raw = cbor2.dumps([hlc, ops])
    except (TypeError, ValueError, cbor2.CBOREncodeError):
        return  # not encodable at all: nothing to decode
    same("codec", "decode_txn", raw)
    if same("codec", "decode_txn", raw)[0] == "returned":
        same("codec", "decode_txn", raw, trusted=True)


@given(st.lists(OPS, min_size=1, max_size=2), st.data())
def test_mutated_transactions(ops: list[Any], data: st.DataObject) -> None:
    try:
        raw = bytearray(cbor2.dumps([7, ops]))
    except (TypeError, ValueError, cbor2.CBOREncodeError):
        return
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    same("codec", "decode_txn", bytes(raw[:cut]))
    same("codec", "loads_untrusted", bytes(raw))


@given(st.binary(max_size=40))
def test_any_bytes_as_cbor(data: bytes) -> None:
    same("codec", "decode_txn", data)
    same("codec", "decode_state_untrusted", data, "snapshot item")
    same("bounded", "check_bounded", data)
    same("bounded", "loads_bounded", data)
    same("bounded", "loads_bounded", bytearray(data), max_depth=2, max_items=5)


@given(st.one_of(VALUES, DEEP))
def test_bounded_decoding_of_values(value: Any) -> None:
    try:
        raw = cbor2.dumps(value)
    except (TypeError, ValueError, cbor2.CBOREncodeError, RecursionError):
        return
    same("bounded", "check_bounded", raw)
    same("bounded", "check_bounded", raw, max_depth=3, max_items=6, max_bignum_bytes=4)
    same("bounded", "loads_bounded", raw)
    same("bounded", "loads_bounded", memoryview(raw))


def test_bounded_refuses_non_bytes_alike() -> None:
    for data in ("text", 5, None, [b"x"]):
        same("bounded", "loads_bounded", data)


@given(st.integers(0, 2**64 - 1), st.lists(st.tuples(st.text(max_size=3), ITEMS,
                                                         st.integers(0, 2**64 - 1)), max_size=3))
def test_put_encodings(hlc: int, puts: list[tuple[str, dict[Any, Any], int]]) -> None:
    version = (hlc, 3)
    pure, fast = PURE["codec"].PutEncoder(version), FAST["codec"].PutEncoder(version)
    parts = []
    for table, attrs, seen_hlc in puts:
        try:
            attrs_cbor = cbor2.dumps(attrs)
        except (TypeError, ValueError, cbor2.CBOREncodeError, RecursionError):
            continue
        seen = (seen_hlc, 5) if seen_hlc else (0, 0)
        same("codec", "put_state_bytes", version, attrs_cbor, seen)
        same("codec", "put_op_bytes", table, KEY, attrs_cbor, seen)
        assert fast.state(attrs_cbor, seen) == pure.state(attrs_cbor, seen)
        op = pure.op(table, KEY, attrs_cbor, seen)
        assert fast.op(table, KEY, attrs_cbor, seen) == op
        parts.append(op)
    same("codec", "encode_txn_parts", hlc, parts)
    same("codec", "decode_txn", FAST["codec"].encode_txn_parts(hlc, parts) if parts else b"")


# -- item states, merges, state encodings ----------------------------------------------------

STATE_NAMES = ["pk", "a", "b", "n", "s"]
PLAIN = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(
    [0.0, -0.0, 1.0, 1.5, Decimal("1"), Decimal("1.0"), "x", "y", b"x", frozenset({"e"})]))
NUMS = st.one_of(st.integers(-3, 3), st.sampled_from([Decimal("0.5"), 1.5, 1.0]))
ELEMS = st.sampled_from(["a", "b", 1, 1.0, Decimal("1.0"), 2, b"a"])
VERSIONS = st.tuples(st.integers(1, 6), st.integers(1, 3))


@st.composite
def recipes(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """Deltas as plain data, built into states by each implementation on its own."""
    out = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["put", "update", "delete"]))
        attrs = draw(st.dictionaries(st.sampled_from(STATE_NAMES), PLAIN, max_size=3))
        remove = draw(st.lists(st.sampled_from(STATE_NAMES), max_size=2))
        ext = (
            draw(st.dictionaries(st.sampled_from(["n"]), st.tuples(NUMS, NUMS), max_size=1)),
            draw(st.dictionaries(st.sampled_from(["s"]), st.frozensets(ELEMS, max_size=2),
                                 max_size=1)),
            draw(st.dictionaries(st.sampled_from(["s"]), st.frozensets(ELEMS, max_size=2),
                                 max_size=1)),
            draw(st.dictionaries(st.sampled_from(["n"]), st.dictionaries(
                st.integers(1, 3), st.tuples(st.integers(1, 6), NUMS), max_size=2), max_size=1)),
        )
        out.append((kind, attrs, remove, draw(VERSIONS), draw(st.one_of(
            st.just((0, 0)), VERSIONS)), ext))
    return out


def _deltas(item: types.ModuleType, recipe: list[tuple[Any, ...]]) -> list[Any]:
    out = []
    for kind, attrs, remove, version, seen, (add, adds, dels, observed) in recipe:
        ext = item.WriteExt(add, adds, dels, observed)
        if kind == "put":
            out.append(item.put_delta(attrs, version, seen, ext))
        elif kind == "update":
            out.append(item.update_delta(
                {k: v for k, v in attrs.items() if k not in remove}, remove, version, seen, ext))
        else:
            out.append(item.delete_delta(version, seen, ext))
    return out


def _run_both(fn: Callable[[types.ModuleType, types.ModuleType], Any]) -> Any:
    want = outcome(fn, PURE["item"], PURE["codec"])
    got = outcome(fn, FAST["item"], FAST["codec"])
    assert got == want, f"compiled {got!r:.600} != pure {want!r:.600}"
    return want


@given(recipes(), recipes())
def test_item_merges_and_state_encodings(local: list[Any], incoming: list[Any]) -> None:
    def merged(item: types.ModuleType, codec: types.ModuleType) -> Any:
        states = []
        state = None
        for delta, (_, _, _, version, seen, _) in zip(_deltas(item, local + incoming),
                                                      local + incoming, strict=True):
            state, lost = item.merge_change(state, delta, version, seen, codec.canonical)
            raw = codec.encode_state(state)
            back = codec.decode_state(raw)
            states.append((state, lost, raw, back, item.visible(state), item.max_version(state),
                           codec.visible_from_raw(raw), codec.max_version_raw(raw),
                           codec.decode_state_untrusted(raw, "snapshot"),
                           item.purge(state, version), item.counter_names(state),
                           {n: item.attribute_value(state, n) for n in STATE_NAMES}))
        a = item.ItemState()
        for d in _deltas(item, local):
            a = item.merge(a, d, codec.canonical)
        b = item.ItemState()
        for d in _deltas(item, incoming):
            b = item.merge(b, d, codec.canonical)
        return states, item.merge(a, b, codec.canonical), item.merge(b, a, codec.canonical)

    _run_both(merged)


@given(recipes(), st.dictionaries(st.sampled_from(["n", "z"]), NUMS, max_size=2),
       st.one_of(st.none(), st.lists(st.sampled_from(STATE_NAMES), max_size=2)))
def test_write_plans(recipe: list[Any], add: dict[str, Any], reset: list[str] | None) -> None:
    def planned(item: types.ModuleType, codec: types.ModuleType) -> Any:
        state = None
        for d in _deltas(item, recipe):
            state = item.merge(state or item.ItemState(), d, codec.canonical)
        return item.plan_write(state, 2, add=add, add_elems={"s": ["a", 1.0]},
                               del_elems={"t": [b"x"]}, reset=reset)

    _run_both(planned)


@given(st.one_of(NUMS, ELEMS, VALUES), st.one_of(NUMS, ELEMS, VALUES))
@example(0, Weird(1.5))  # a float subclass counts by its value, not by what it prints
def test_numbers_and_elements(a: Any, b: Any) -> None:
    same("item", "set_element", a)
    same("item", "num_add", a, b)


# -- counter and set wire forms --------------------------------------------------------------

EXT_PARTS = st.one_of(
    st.dictionaries(st.sampled_from(["n", "", 1]), st.one_of(
        st.lists(NUMS, min_size=2, max_size=2), VALUES), max_size=2),
    VALUES,
)


@given(st.dictionaries(st.sampled_from("asdotq"), st.one_of(EXT_PARTS, st.just(True)),
                       max_size=3), st.booleans())
@example({"a": {"n": [1, 1]}, "t": True}, False)
@example({"o": {"n": [[1, 2, 3], [1, 3, 4]]}}, False)
@example({"s": {"s": ["a", "a"]}, "d": {"s": [1]}}, False)
def test_op_exts(obj: dict[str, Any], trusted: bool) -> None:
    outcome_ = same("mergewire", "op_ext", obj, "table 'orders'", False)
    if outcome_[0] == "returned":  # trusted: only what the checks let through
        same("mergewire", "op_ext", obj, "table 'orders'", True)


@given(st.dictionaries(st.one_of(st.text(max_size=2), st.integers(0, 2)), st.one_of(
    st.lists(st.one_of(st.integers(0, 9), st.lists(st.one_of(ELEMS, st.integers(0, 9),
                                                             st.booleans()), max_size=4)),
             max_size=5), VALUES), max_size=2))
@example({"n": [1, 2, [[1, 2, 3]], [[1, 2, 3]], [["a", 1, 2, True]]]})
def test_state_exts(ext: dict[Any, Any]) -> None:
    same("mergewire", "check_state_ext", ext, (1, 1), "item")


def test_struct_errors_are_the_same() -> None:  # the decoders' struct.error paths
    for raw in (b"\x22\x00\x00", b"\x20\xff", b"\x22" + struct.pack(">I", 2**31) + b"1\x00"):
        same("keys", "decode_value", raw, 0)
