"""Table incarnations: schema races recorded on both sides, delete_table replicated, late
changes of a deleted table dropped (issue 10 item 5)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import engine
from engine.schema import SCHEMA_ATTRIBUTE
from replication import exchange as ex
from replication.segment import decode_segment

MakeStore = Callable[..., engine.Store]


def ship(src: engine.Store, dst: engine.Store) -> None:
    for data in ex.segments_for(src, dst.version_vector()):
        ex.apply_segment(dst, decode_segment(data))


def test_schema_race_is_a_conflict_on_both_sides_and_converges(make_store: MakeStore) -> None:
    a, b = make_store("a"), make_store("b")
    a.create_table("orders", partition_key="customer_id", sort_key="order_id")
    b.create_table("orders", partition_key="id")
    ship(a, b)
    ship(b, a)
    assert a.table_defs() == b.table_defs()
    assert a.digest() == b.digest()
    winner = a.table("orders")
    for s in (a, b):
        [c] = [c for c in s.conflicts() if c.attribute == SCHEMA_ATTRIBUTE]
        assert c.table == "orders"
        assert c.winner_value == [winner.partition_key, winner.sort_key]
        assert c.value != c.winner_value
    # exactly one side lost its own definition
    assert sorted(c.local_lost for s in (a, b) for c in s.conflicts()) == [False, True]


def test_delete_table_replicates_removes_items_and_indexes(make_store: MakeStore) -> None:
    a, b = make_store("a"), make_store("b")
    t = a.create_table("orders", partition_key="id",
                       indexes=[engine.Index("by_status", partition_key="status")])
    for i in range(5):
        t.put({"id": i, "status": "NEW"})
    ship(a, b)
    assert len(list(b.table("orders").query("NEW", index="by_status"))) == 5
    a.delete_table("orders")
    assert a.tables() == []
    with pytest.raises(engine.TableNotFound):
        a.table("orders")
    with pytest.raises(engine.TableNotFound, match="deleted"):
        t.put({"id": 9})  # a Table object of the deleted table refuses writes (and reads)
    ship(a, b)
    assert b.tables() == []
    with pytest.raises(engine.TableNotFound):
        b.table("orders")
    assert a.digest() == b.digest()
    kinds = [c.kind for c in b.changes()]
    assert kinds[-1] == "delete_table"
    with pytest.raises(engine.TableNotFound):
        a.delete_table("orders")


def test_a_table_created_again_is_new_late_changes_of_the_old_are_dropped(
    make_store: MakeStore,
) -> None:
    # a's wall clock runs ahead of b's and moves on before the deletion, so the deletion is
    # later than b's late write whatever the node ids; a write concurrent with the deletion
    # and later than it (a clock far ahead) is the documented gap: operations do not name
    # their incarnation yet
    clock_a, clock_b = engine.ManualClock(1_700_000_000_100), engine.ManualClock()
    a, b = make_store("a", wall_clock=clock_a), make_store("b", wall_clock=clock_b)
    a.create_table("orders", partition_key="id").put({"id": 1, "v": "old"})
    ship(a, b)
    b.table("orders").put({"id": 2, "v": "late"})  # b has not seen the deletion yet
    clock_a.advance(1)
    a.delete_table("orders")
    t2 = a.create_table("orders", partition_key="pk", sort_key="sk")
    t2.put({"pk": "x", "sk": "y", "v": "new"})
    ship(b, a)  # b's late write of the old table arrives after the new table exists
    ship(a, b)
    for s in (a, b):
        items = list(s.table("orders").scan())
        assert items == [{"pk": "x", "sk": "y", "v": "new"}], s
    assert a.digest() == b.digest()


def test_one_table_created_in_two_regions_with_one_schema_is_one_table(
    make_store: MakeStore,
) -> None:
    a, b = make_store("a"), make_store("b")
    a.create_table("orders", partition_key="id").put({"id": 1})
    b.create_table("orders", partition_key="id").put({"id": 2})  # a later incarnation
    ship(a, b)
    ship(b, a)
    for s in (a, b):
        assert sorted(i["id"] for i in s.table("orders").scan()) == [1, 2]
        assert not list(s.conflicts())
    assert a.digest() == b.digest()


def test_a_late_write_from_a_clock_ahead_is_not_merged_into_the_new_table(
    make_store: MakeStore,
) -> None:
    """b's clock runs ahead of a's: its write to the old table, concurrent with a's deletion
    and re-creation, carries a version above the new incarnation's. The write names the
    incarnation it was written to, so it is dropped on both sides all the same."""
    clock_a = engine.ManualClock(1_700_000_000_000)
    clock_b = engine.ManualClock(1_700_000_000_300)  # ahead, within the maximum offset
    a, b = make_store("a", wall_clock=clock_a), make_store("b", wall_clock=clock_b)
    a.create_table("orders", partition_key="id").put({"id": 1, "v": "old"})
    ship(a, b)
    a.delete_table("orders")
    t2 = a.create_table("orders", partition_key="id")
    t2.put({"id": 3, "v": "new"})
    b.table("orders").put({"id": 2, "v": "late"})  # b has not seen the deletion
    late = next(c for c in b.changes() if c.key == {"id": 2})
    [new] = [d for d in a.table_defs() if d.name == "orders"]
    assert late.version > new.version  # later than the re-creation
    ship(b, a)
    ship(a, b)
    for s in (a, b):
        assert list(s.table("orders").scan()) == [{"id": 3, "v": "new"}], s
    assert a.digest() == b.digest()


def test_a_transaction_names_the_incarnations_it_wrote_to(make_store: MakeStore) -> None:
    from engine import codec

    a = make_store("a")
    a.create_table("orders", partition_key="id")
    a.create_table("users", partition_key="id")
    with a.batch() as batch:
        batch.put("orders", {"id": 1})
        batch.delete("users", 7)
    [(_, _, raw)] = a.log_range(a.node_id, 2)
    _, ops = codec.decode_txn(raw)
    versions = {d.name: d.version for d in a.table_defs()}
    assert {op.table: op.inc for op in ops} == versions
    # a transaction from before incarnations travelled has none: the older rule applies
    _, old_ops = codec.decode_txn(codec.encode_txn(5, [["D", "users", ops[1].key, 0, 0]]))
    assert old_ops[0].inc is None
    with pytest.raises(engine.ValidationError, match="incarnation"):
        codec.decode_txn(codec.encode_txn(5, [["D", "users", ops[1].key, 0, 0]],
                                          {"users": (1, 2), "orders": (3, 4)}))


def test_the_hlc_at_the_head_of_a_transaction_reads_with_incarnations() -> None:
    """Inbound lag and the log read a transaction's HLC from its first bytes; a transaction
    naming its tables' incarnations starts with a three-element array head."""
    from engine import codec
    from engine.changelog import txn_hlc

    for hlc in (111411200000000003, 5, 300, 70_000):
        for incs in (None, {"orders": (5, 6)}):
            raw = codec.encode_txn_parts(hlc, [], incs)
            assert txn_hlc(raw) == hlc
            assert txn_hlc(b"\0" * 7 + raw, 7) == hlc
    for odd in (b"", b"\x82", b"\x81\x05", b"\x82\x1b\x00", b"\x82\x60"):
        assert txn_hlc(odd) == 0


@pytest.mark.parametrize("first", ["a", "b"])
def test_items_of_a_losing_key_schema_are_listed_and_rekeyed(
    make_store: MakeStore, first: str
) -> None:
    """The schema race through sync, both orders: the loser's items are the same orphans on
    both sides; re-keying moves those that carry the winning key attributes (never over an
    item of the winning schema) and both sides end the same, everything reachable by get."""
    a = make_store("a", wall_clock=engine.ManualClock(1_700_000_000_000))
    b = make_store("b", wall_clock=engine.ManualClock(1_700_000_000_010))
    a.create_table("orders", partition_key="customer_id", sort_key="order_id")
    b.create_table("orders", partition_key="id")  # later: wins
    a.table("orders").put({"customer_id": "c1", "order_id": "o1", "id": "x1", "v": 1})
    a.table("orders").put({"customer_id": "c2", "order_id": "o2", "v": 2})  # no "id"
    a.table("orders").put({"customer_id": "c3", "order_id": "o3", "id": "x3", "v": 3})
    b.table("orders").put({"id": "x3", "v": 30})  # the winner's item under that key
    for src, dst in ([(a, b), (b, a)] if first == "a" else [(b, a), (a, b)]):
        ship(src, dst)
    for s in (a, b):
        assert s.table("orders").partition_key == "id"
        assert sorted(i["v"] for i in s.schema_orphans("orders")) == [1, 2, 3]
    assert a.rekey_orphans("orders") == 1  # x1 moves; c2 has no id; x3 is taken
    ship(a, b)
    ship(b, a)
    assert a.digest() == b.digest()
    for s in (a, b):
        assert s.table("orders").get("x1") == {"customer_id": "c1", "order_id": "o1",
                                               "id": "x1", "v": 1}
        assert s.table("orders").get("x3") == {"id": "x3", "v": 30}
        assert sorted(i["v"] for i in s.schema_orphans("orders")) == [2, 3]
    assert b.rekey_orphans("orders") == 0
