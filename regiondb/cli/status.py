"""``regiondb status``: one store's identity, clock, version vector, log floor, conflicts,
what each known peer acknowledged, and the live figures of a ``serve`` running beside it."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import engine
from engine.clock import logical as clock_logical
from engine.clock import physical_ms
from replication.stalls import stalls
from replication.vv import load_acks

from .args import open_store
from .live import peers_text, process_started
from .output import PROG, SERVE_STATUS, emit, hex_id, size_text, vv_json, write_line

_LIVE_STALE_S = 30.0  # a serve-status.json older than this is from a server that hangs


def _acks(store: engine.Store, vv: dict[int, int]) -> list[dict[str, Any]]:
    """Known peers, what each acknowledged, and how many of our changes it still lacks
    (from replication's ack table)."""
    rows = []
    for node, acked in sorted(load_acks(store).items()):
        behind = sum(max(0, seq - acked.get(origin, 0)) for origin, seq in vv.items())
        rows.append({"node_id": hex_id(node), "acked": vv_json(acked), "behind": behind})
    return rows


def _live(path: Path) -> dict[str, Any] | None:
    """What a ``regiondb serve`` running on this store last reported, if it still runs.

    Not trusted when the file is stale, when no process has its pid, or when the process that
    has it now started at another time than the one that wrote the file (the pid was reused).
    """
    try:
        status = json.loads((path / SERVE_STATUS).read_text())
        pid = int(status["pid"])
        os.kill(pid, 0)
        if time.time() - float(status.get("updated", 0)) > _LIVE_STALE_S:
            return None
        recorded = status.get("pid_started")
        if recorded is not None and process_started(pid) != recorded:
            return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return dict(status)


def _hlc_text(hlc: int) -> str:
    """A packed HLC (:mod:`engine.clock`) as UTC time, logical counter and raw value."""
    if not hlc:
        return "(no writes yet)"
    ms, logical = physical_ms(hlc), clock_logical(hlc)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))
    return f"{stamp}.{ms % 1000:03d} UTC, logical {logical}  (hlc {hlc})"


def _writes_refused(stats: dict[str, Any]) -> str | None:
    """Why local writes fail right now (the HLC far ahead of the wall clock), or ``None``."""
    ahead = stats["clock_ahead_ms"]
    if ahead <= stats["max_clock_offset_ms"]:
        return None
    return (f"the clock is {ahead:,} ms ahead of this machine's wall clock (maximum offset "
            f"{stats['max_clock_offset_ms']:,} ms): local writes fail with ClockSkewError "
            "until the wall clock catches up (docs/operations.md)")


def cmd_status(args: argparse.Namespace) -> int:
    """``status DIR``: everything about one replica, for people or (``--json``) scripts."""
    with open_store(args) as store:
        stats = store.stats()
        vv = store.version_vector()
        floors = store.log_floor()
        acks = _acks(store, vv)
        forgotten = sorted(store.forgotten())
        tables = store.tables()
        stalled = stalls(store)
        reidentified = store.lineage_events()
        set_aside = store.pending_reissues()
    live = _live(Path(args.dir))
    info = {
        "path": stats["path"], "region": stats["region"], "node_id": hex_id(stats["node_id"]),
        "durable": stats["durable"], "tables": tables, "items": stats["items"],
        "log_entries": stats["log_entries"], "file_bytes": stats["file_bytes"],
        "map_size": stats["map_size"], "hlc": stats["hlc"],
        "clock_ahead_ms": stats["clock_ahead_ms"],
        "writes_refused": _writes_refused(stats), "vv": vv_json(vv),
        "log_floor": vv_json(floors), "conflicts": stats["conflicts_total"],
        "conflicts_stored": stats["conflicts_stored"], "peers": acks,
        "forgotten": [hex_id(n) for n in forgotten],
        "stalled": {hex_id(o): {**e, "sender": hex_id(e["sender"])} for o, e in stalled.items()},
        "reidentified": [{**e, "old": hex_id(e["old"]), "new": hex_id(e["new"])}
                         for e in reidentified],
        "set_aside_writes": set_aside,
        "server": live,
        "engine_build": engine.native_summary(),
    }
    if args.json:
        emit(info)
        return 0
    me = stats["node_id"]
    vv_text = ", ".join(f"{hex_id(k)}{' (this node)' if k == me else ''}: {v:,}"
                        for k, v in sorted(vv.items()))
    write_line(f"store      {info['path']}")
    write_line(f"region     {info['region']}   node {info['node_id']}"
               + ("" if info["durable"] else "   (non-durable)"))
    write_line(f"tables     {', '.join(tables) or '(none)'}")
    write_line(f"items      {info['items']:,} (tombstones included)   "
               f"log entries {info['log_entries']:,}   file {size_text(info['file_bytes'])} "
               f"(map {size_text(info['map_size'])})")
    write_line(f"clock      {_hlc_text(stats['hlc'])}")
    if info["writes_refused"]:
        write_line(f"  WARNING  {info['writes_refused']}")
    write_line(f"vv         {vv_text or '(empty)'}")
    if floors:
        write_line("log floor  " + ", ".join(f"{hex_id(k)}: {v:,}"
                                             for k, v in sorted(floors.items())))
    write_line(f"engine     {info['engine_build']}")
    write_line(f"conflicts  {info['conflicts']:,} recorded ({info['conflicts_stored']:,} kept; "
               f"`{PROG} conflicts {args.dir}` lists them)")
    if acks:
        write_line("peers      (what each acknowledged, and how many changes it still lacks)")
        for row in acks:
            acked = ", ".join(f"{k}: {v:,}" for k, v in row["acked"].items()) or "nothing"
            write_line(f"  {row['node_id']}  behind {row['behind']:,}  acked {acked}")
    else:
        write_line("peers      (none known yet)")
    if forgotten:
        write_line("forgotten  " + ", ".join(info["forgotten"]))
    for e in reidentified:
        write_line(f"  WARNING  re-identified: node {hex_id(e['old'])} became "
                   f"{hex_id(e['new'])}: {e['reason']}")
    if set_aside:
        write_line(f"  WARNING  {set_aside:,} writes set aside by the re-identification wait "
                   "for a sync to compare them with the peers' copies (then re-issued)")
    for origin, e in sorted(stalled.items()):
        write_line(f"  WARNING  replication of node {hex_id(origin)} is stalled: its change "
                   f"{e['seq']:,} (from {hex_id(e['sender'])}) was refused: {e['reason']}")
    if live:
        where = [f"on {live['address'][0]}:{live['address'][1]}"] if live.get("address") \
            else []
        if live.get("nats"):  # regiondb serve --nats (regiondb.cli.fleet)
            where.append(f"on NATS cluster {live.get('cluster')} via {', '.join(live['nats'])}")
        write_line(f"server     running (pid {live['pid']}) {' and '.join(where)}"
                   + (f", replicating with {', '.join(live['peers_configured'])}"
                      if live.get("peers_configured") else ""))
        for row in live.get("peers") or []:
            write_line(f"  live     {peers_text([row])}  (p50/p99 ms)")
    else:
        write_line(f"server     not running (lag is measured by `{PROG} serve --peer ...`)")
    return 0
