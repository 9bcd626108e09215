"""The engine's fast paths keep the slow paths' behaviour: the clock carried by the log, the
lock-free read gate, the cheap validators and the put-into-missing-item merge."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import engine
from engine import codec
from engine.env import _Gate
from engine.item import put_delta
from engine.keys import encode_value

# -- the clock: carried by the log's last entry between record writes ------------------------


def test_clock_survives_compaction_of_the_last_local_entries(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with engine.open(path, region="r") as s:
        t = s.create_table("t", partition_key="k")
        for i in range(5):
            t.put({"k": i})
        pos, seq, hlc = s.position(), s.version_vector()[s.node_id], s.stats()["hlc"]
        assert s.compact({s.node_id: seq}) == (6, 0)  # every entry, the last one included
        assert s.position() == pos and s.version_vector()[s.node_id] == seq
        assert s.stats()["hlc"] == hlc
        t.put({"k": 99})
        assert s.position() == pos + 1
        assert [q for _, q, _ in s.log_range(s.node_id, seq)] == [seq + 1]
        assert s.stats()["hlc"] > hlc
    with engine.open(path) as s:
        assert s.position() == pos + 1 and s.version_vector()[s.node_id] == seq + 1


def test_clock_after_remote_changes_then_local_writes(tmp_path: Path) -> None:
    clock = engine.ManualClock()
    ahead = engine.ManualClock(clock() + 300)  # within the maximum offset
    with engine.open(tmp_path / "a", region="a", wall_clock=clock) as a, \
            engine.open(tmp_path / "b", region="b", wall_clock=ahead) as b:
        b.create_table("t", partition_key="k").put({"k": 1})
        ta = a.create_table("t", partition_key="k")
        ta.put({"k": 2})
        a.apply_changes(b.log_range(b.node_id, 0))
        remote_top = max(c.version[0] for c in a.changes() if c.origin == b.node_id)
        ta.put({"k": 3})
        mine = [c for c in a.changes() if c.origin == a.node_id]
        assert [c.seq for c in mine] == [1, 2, 3]
        assert mine[-1].version[0] > remote_top  # observed versions stay below new ones
        assert a.position() == 5


@pytest.mark.parametrize("old", [b"1", b"2"])
def test_older_store_is_upgraded_and_unknown_formats_refused(tmp_path: Path, old: bytes) -> None:
    path = tmp_path / "s"
    with engine.open(path, region="r") as s:
        s.create_table("t", partition_key="k").put({"k": 1})
        env = s._e()
        env.write(lambda txn: txn.put(b"format", old, db=env.meta))
    with engine.open(path) as s:
        env = s._e()
        assert env.read(lambda txn: txn.get(b"format", db=env.meta)) == b"3"
        assert s.table("t").get(1) == {"k": 1}
        env.write(lambda txn: txn.put(b"format", b"4", db=env.meta))
    with pytest.raises(engine.ValidationError, match="format b'4' is not supported"):
        engine.open(path)


# -- the read gate ----------------------------------------------------------------------------


def test_gate_exclusive_waits_for_active_threads_and_holds_back_new_ones() -> None:
    gate = _Gate()
    events: list[str] = []
    reader_in, reader_go = threading.Event(), threading.Event()

    def reader() -> None:
        me = threading.get_ident()
        assert gate.enter(me)
        reader_in.set()
        reader_go.wait(5)
        events.append("reader leaves")
        gate.leave(me)

    def resizer() -> None:
        with gate.exclusive():
            events.append("exclusive")
            time.sleep(0.05)
            events.append("exclusive ends")

    r = threading.Thread(target=reader)
    r.start()
    assert reader_in.wait(5)
    x = threading.Thread(target=resizer)
    x.start()
    deadline = time.monotonic() + 5
    while not gate._wanted and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(0.02)
    assert events == []  # the resize waits for the reader

    def late() -> None:
        me = threading.get_ident()
        gate.enter(me)
        events.append("late enters")
        gate.leave(me)

    late_t = threading.Thread(target=late)
    late_t.start()
    reader_go.set()
    for t in (r, x, late_t):
        t.join(5)
    assert events[:3] == ["reader leaves", "exclusive", "exclusive ends"]
    assert events[3] == "late enters"  # held back until the exclusive section ended


def test_gate_nested_entry_stays_registered() -> None:
    gate = _Gate()
    me = threading.get_ident()
    assert gate.enter(me)
    assert not gate.enter(me)  # nested: tolerated
    gate.leave(me, False)
    assert me in gate._active
    gate.leave(me)
    assert not gate._active


def test_reads_race_map_growth(tmp_path: Path) -> None:
    with engine.open(tmp_path / "s", region="r", map_size=1 << 20) as s:
        t = s.create_table("t", partition_key="k")
        t.put({"k": "x", "v": 1})
        stop = threading.Event()
        errors: list[BaseException] = []

        def read() -> None:
            try:
                while not stop.is_set():
                    assert t.get("x") == {"k": "x", "v": 1}
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        readers = [threading.Thread(target=read) for _ in range(3)]
        for r in readers:
            r.start()
        blob = b"\x00" * 50_000
        for i in range(100):  # ~5 MB: the 1 MiB map doubles several times
            t.put({"k": f"big{i}", "b": blob})
        stop.set()
        for r in readers:
            r.join(10)
        assert not errors
        assert s.stats()["map_size"] > 1 << 20


# -- validators -------------------------------------------------------------------------------

_scalars = st.one_of(
    st.text(max_size=5), st.integers(min_value=-(2**70), max_value=2**70), st.floats(),
    st.decimals(), st.binary(max_size=4), st.booleans(), st.none(),
    st.sampled_from([object(), 1j, bytearray(b"x"), "\ud800", 2**9000]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=3), st.integers()), inner, max_size=3),
        st.frozensets(st.one_of(st.text(max_size=3), st.integers()), max_size=3),
    ),
    max_leaves=12,
)


def _slow_ok(attrs: dict[str, Any]) -> bool:
    try:
        for name, value in attrs.items():
            codec.check_attr_name(name)
            codec.check_value(value, name)
    except engine.ValidationError:
        return False
    return True


@given(st.dictionaries(st.text(min_size=0, max_size=4), _values, max_size=4))
def test_check_attrs_agrees_with_check_value(attrs: dict[str, Any]) -> None:
    try:
        codec.check_attrs(attrs, "t")
        fast_ok = True
    except engine.ValidationError:
        fast_ok = False
    assert fast_ok == _slow_ok(attrs)


def test_check_attrs_depth_limit() -> None:
    deep: Any = 1
    for _ in range(codec.MAX_DEPTH):
        deep = [deep]
    codec.check_attrs({"a": deep}, "t")
    with pytest.raises(engine.ValidationError, match="nested deeper"):
        codec.check_attrs({"a": [deep]}, "t")


@pytest.mark.parametrize("key, ok", [
    (encode_value("t") + encode_value("a"), True),
    (encode_value("t") + encode_value("a") + encode_value(Decimal("1.5")), True),
    (encode_value("t") + encode_value(1) + encode_value(b"\x00b"), True),
    (encode_value("t") + encode_value("a") + encode_value("b") + encode_value("c"), False),
    (encode_value("t"), False),
    (encode_value("t") + b"0abc", False),
    (encode_value("t") + encode_value("a") + b"\x99", False),
    (encode_value("u") + encode_value("a"), False),
])
def test_txn_key_checks(key: bytes, ok: bool) -> None:
    raw = codec.encode_txn(5, [["D", "t", key, 0, 0]])
    put = codec.encode_txn(5, [["P", "t", key, {"x": 1}, 0, 0]])
    for txn in (raw, put):
        if ok:
            assert codec.decode_txn(txn)[1][0].key == key
        else:
            with pytest.raises(engine.ValidationError):
                codec.decode_txn(txn)


def test_table_name_cache_does_not_admit_bad_names() -> None:
    codec.check_table_name("good")
    codec.check_table_name("good")
    for bad in ("", "a b", "x" * 256, 5, None):
        with pytest.raises(engine.ValidationError):
            codec.check_table_name(bad)


# -- writes -----------------------------------------------------------------------------------


def test_put_encoder_matches_the_general_encoders() -> None:
    key = encode_value("t") + encode_value("k")
    attrs = codec.dumps({"k": "k", "x": [1, {"y": 2.5}]})
    for v, seen in [((5, 9), (0, 0)), ((2**60, 2**63), (2**40, 7)), ((1, 1), (1, 0))]:
        enc = codec.PutEncoder(v)
        assert enc.state(attrs, seen) == codec.put_state_bytes(v, attrs, seen)
        assert enc.op("t", key, attrs, seen) == codec.put_op_bytes("t", key, attrs, seen)
        assert enc.state(attrs, seen) == codec.encode_state(
            put_delta(codec.loads(attrs), v, seen))


def test_batch_by_table_name_and_object(tmp_path: Path) -> None:
    with engine.open(tmp_path / "s", region="r") as s:
        t = s.create_table("t", partition_key="k")
        u = s.create_table("u", partition_key="k", sort_key="n")
        with s.batch() as b:
            for i in range(5):
                b.put("t", {"k": i})
                b.put("u", {"k": "p", "n": i})
            b.put(t, {"k": 10})
            with pytest.raises(engine.TableNotFound):
                b.put("nope", {"k": 1})
        assert len(list(t.scan())) == 6 and len(list(u.query("p"))) == 5


def test_remote_put_into_missing_and_existing_items_converge(tmp_path: Path) -> None:
    with engine.open(tmp_path / "a", region="a") as a, engine.open(tmp_path / "b", region="b") as b:
        ta = a.create_table("t", partition_key="k")
        ta.put({"k": 1, "x": 1})
        ta.put({"k": 1, "x": 2, "y": {"z": [1]}})  # a put over an existing item
        ta.put({"k": 2, "x": 3})
        b.apply_changes(a.log_range(a.node_id, 0))
        assert b.digest() == a.digest()
        env_a, env_b = a._e(), b._e()
        for k in (1, 2):
            key = encode_value("t") + encode_value(k)
            assert env_b.get(key, env_b.items) == env_a.get(key, env_a.items)
        images = [c.new_image for c in b.changes() if c.kind == "put"]
        assert images == [{"k": 1, "x": 1}, {"k": 1, "x": 2, "y": {"z": [1]}}, {"k": 2, "x": 3}]
