"""replication.stalls: a change a receiver refuses is reported loudly (issue 10 item 4)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

import engine
from engine import codec
from engine.keys import encode_value
from regiondb.cli import main as cli_main
from replication import exchange as ex
from replication.segment import decode_segment, encode_segment
from replication.stalls import stalls

MakeStore = Callable[..., engine.Store]
ORIGIN = 0x1234


def _bad_segment(sender: int, seq: int = 1) -> bytes:
    """A changes segment whose only record fails validation (a NaN value)."""
    key = encode_value("t") + encode_value(1)
    txn = codec.encode_txn(1 << 40, [["P", "t", key, {"k": 1, "v": float("nan")}, 0, 0]])
    _, data = encode_segment(kind="changes", sender=sender, region="r-x",
                             records=[(ORIGIN, seq, txn)], vv={ORIGIN: seq}, created_hlc=1)
    return data


def test_a_refused_change_is_logged_recorded_and_shown_by_status(
    make_store: MakeStore, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    b = make_store("b")
    with caplog.at_level(logging.ERROR, logger="replication.stalls"), \
            pytest.raises(engine.SegmentError, match="bad change record"):
        ex.apply_segment(b, decode_segment(_bad_segment(sender=0x99)))
    assert any("refused change 0000000000001234/1" in r.getMessage() for r in caplog.records)
    st = stalls(b)
    assert st[ORIGIN]["seq"] == 1 and st[ORIGIN]["sender"] == 0x99
    assert "finite" in st[ORIGIN]["reason"]
    assert b.version_vector().get(ORIGIN, 0) == 0  # nothing applied
    b.close()
    assert cli_main(["status", str(tmp_path / "b"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["stalled"]["0000000000001234"]["seq"] == 1
    assert cli_main(["status", str(tmp_path / "b")]) == 0
    assert "replication of node 0000000000001234 is stalled" in capsys.readouterr().out


def test_a_stall_resolves_once_the_origin_moves_past_it(make_store: MakeStore) -> None:
    b = make_store("b")
    with pytest.raises(engine.SegmentError):
        ex.apply_segment(b, decode_segment(_bad_segment(sender=0x99)))
    assert ORIGIN in stalls(b)
    b.create_table("t", partition_key="k")
    good = codec.encode_txn(1 << 40, [["P", "t", encode_value("t") + encode_value(1),
                                       {"k": 1}, 0, 0]])
    b.apply_changes([(ORIGIN, 1, good)])
    assert stalls(b) == {}
