"""Result JSON -> Markdown report: targets, local rows, YCSB, replication, machine, method."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["render_markdown", "validate_result"]

_MET = {True: "met", False: "**not met**", None: "n/a"}


def _num(v: Any, digits: int = 0) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, (int, float)):
        return f"{v:,.{digits}f}"
    return str(v)


def _lat(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}"


def _ratio(v: Any) -> str:
    return "–" if v is None else f"{v:.2f}×"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _targets(result: dict[str, Any]) -> list[str]:
    rows = []
    for t in result["targets"]:
        value = t["value"]
        shown = "–" if value is None else (f"{value:.2f}" + ("" if "ms" in t["name"] else "×"))
        goal = f"{t['comparison']} {t['goal']:g}" + ("" if "ms" in t["name"] else "×")
        note = t.get("reason") or t.get("detail", "")
        rows.append([t["name"], shown, goal, _MET[t["met"]], note])
    return _table(["target", "value", "goal", "status", "note"], rows)


def _local(result: dict[str, Any]) -> list[str]:
    rows = []
    local = [r for r in result["rows"] if r.get("group") == "local"]
    row_order = list(dict.fromkeys(r.get("row", "*") for r in local))
    backend_order = list(dict.fromkeys(r["backend"] for r in local))
    local.sort(key=lambda r: (row_order.index(r.get("row", "*")),
                              backend_order.index(r["backend"])))
    for r in local:
        if r.get("error"):
            rows.append([r.get("title", r.get("row", "*")), f"`{r['backend']}`",
                         f"error: {r['error'][:80]}", "", "", "", "", "", ""])
            continue
        rows.append([
            r["title"], f"`{r['backend']}`", _num(r["throughput"]), r["unit"],
            _lat(r["latency_us"]["p50"]), _lat(r["latency_us"]["p99"]),
            _ratio(r.get("ratio_floor")), _ratio(r.get("ratio_sqlite_normal")),
            _ratio(r.get("ratio_sqlite_full")),
        ])
    return _table(["row", "backend", "throughput", "unit", "p50 µs", "p99 µs", "÷ floor",
                   "÷ SQLite NORMAL", "÷ SQLite FULL"], rows)


def ycsb_label(r: dict[str, Any]) -> str:
    """A YCSB row's workload name, with its client threads when more than one (``A×4``)."""
    threads = r.get("threads", 1)
    return f"{r['workload']}×{threads}" if threads > 1 else str(r["workload"])


def _ycsb(result: dict[str, Any]) -> list[str]:
    rows = []
    for r in result["rows"]:
        if r.get("group") != "ycsb":
            continue
        name = "load" if r["phase"] == "load" else ycsb_label(r)
        if r.get("error"):
            rows.append([name, f"`{r['backend']}`", f"error: {r['error'][:80]}", ""])
            continue
        lat = "; ".join(f"{k} {_lat(v['p50_us'])} / {_lat(v['p95_us'])} / {_lat(v['p99_us'])}"
                        for k, v in r["per_op"].items())
        rows.append([name, f"`{r['backend']}`", _num(r["throughput"]), lat])
    return _table(["workload", "backend", "ops/s (median chunk)",
                   "per op: p50 / p95 / p99 µs"], rows)


def _replication(result: dict[str, Any]) -> list[str]:
    rows = []
    reps = [r for r in result["rows"] if r.get("group") == "replication"]
    for r in reps:
        if r.get("error"):
            rows.append([r.get("title", r["row"]), f"`{r['backend']}`", "–", "",
                         f"error: {r['error'][:100]}"])
            continue
        if not r.get("available"):
            rows.append([r.get("title", r["row"]), f"`{r['backend']}`", "–", r.get("unit", ""),
                         f"not available: {r.get('reason')}"])
            continue
        note = []
        if r["row"] == "live_lag":
            note.append(f"p50 {r['p50_ms']:.2f} ms, p95 {r['p95_ms']:.2f} ms, "
                        f"{r['arrivals']:,} arrivals at {r['achieved_rate']:,.0f} writes/s")
        if r["row"] == "catchup_nats":
            tcp = next((f for f in reps if f["row"] == "catchup_tcp"
                        and f["backend"] == "regiondb" and f.get("value")), None)
            if tcp and r.get("value"):
                note.append(f"{r['value'] / tcp['value']:.2f}× TCP catch-up")
        if "ratio_to_item" in r:
            note.append(f"{r['ratio_to_item']:.2f}× item CBOR ({r['item_cbor_bytes']:.0f} B)")
        floor = next((f for f in reps if f["row"] == r["row"]
                      and not f["backend"].startswith("regiondb") and f.get("available")), None)
        if r["backend"] == "regiondb" and floor and r.get("value") and floor.get("value"):
            note.append(f"{r['value'] / floor['value']:.2f}× floor (`{floor['backend']}`)")
        if r.get("converged") is not None:
            note.append(f"converged={r['converged']}")
        digits = 2 if r.get("unit") == "ms" else (0 if r.get("unit") != "bytes" else 1)
        rows.append([r.get("title", r["row"]), f"`{r['backend']}`", _num(r["value"], digits),
                     r.get("unit", ""), "; ".join(note)])
    return _table(["row", "backend", "value", "unit", "note"], rows)


CORE_GROUPS = ("local", "ycsb", "replication")
GROUP_TITLES = {"crsqlite": "cr-sqlite, the closest embedded peer, in the same run",
                "indexes": "Secondary indexes: write cost, query speed, backfill"}


def _generic(result: dict[str, Any], group: str) -> list[str]:
    """Rows of any further group (``row, backend, value, unit, note``), in run order.

    A row may carry ``note`` (text) and ``ratio``/``ratio_to`` (its value over another
    backend's, measured in the same run); unavailable rows say why.
    """
    rows = []
    for r in result["rows"]:
        if r.get("group") != group:
            continue
        title, backend = r.get("title", r.get("row")), f"`{r.get('backend')}`"
        if r.get("error"):
            rows.append([title, backend, "–", "", f"error: {str(r['error'])[:100]}"])
            continue
        if not r.get("available", True) or r.get("value") is None:
            rows.append([title, backend, "–", r.get("unit", ""),
                         f"not available: {r.get('reason')}"])
            continue
        note = [r["note"]] if r.get("note") else []
        if r.get("ratio") is not None:
            note.append(f"{r['ratio']:.2f}× `{r.get('ratio_to')}`")
        digits = 2 if r.get("unit") in ("ms", "µs") or abs(r["value"]) < 100 else 0
        rows.append([title, backend, _num(r["value"], digits), r.get("unit", ""),
                     "; ".join(note)])
    return _table(["row", "backend", "value", "unit", "note"], rows)


def _extra_groups(result: dict[str, Any]) -> list[str]:
    groups: list[str] = []
    for r in result["rows"]:
        g = r.get("group")
        if g not in CORE_GROUPS and g not in groups:
            groups.append(g)
    lines: list[str] = []
    for g in groups:
        lines += ["", f"## {GROUP_TITLES.get(str(g), str(g).capitalize())}", "",
                  *_generic(result, g)]
    return lines


def render_markdown(result: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    m, s = result["machine"], result["sizes"]
    lines = [
        f"# regiondb benchmark — {result['timestamp']} ({result['mode']} run)",
        "",
        f"Reproduce: `{result['command']}` (from the repository root, in the project venv; "
        "`make bench` runs the full suite). Method and fairness: `bench/README.md`.",
        "",
        f"Machine: {m['cpu_model']}, {m['cores']} cores, {m['memory_gib']} GiB RAM, "
        f"Linux {m['kernel']}; load average at start {m['load_average']}. "
        f"Stores in `{m['temp_dir']}` on {m['temp_fs']}.",
        f"Software: Python {m['python']}, py-lmdb {m['lmdb_binding']} (LMDB {m['lmdb_library']}),"
        f" cbor2 {m['cbor2']}, SQLite {m['sqlite']}; regiondb at git `{m['git_revision']}`"
        f" ({m.get('regiondb_build', {}).get('summary', 'build unknown')}).",
        f"Wall time of this run: {result['elapsed_s']:.0f} s.",
        "",
        "## Targets",
        "",
        *_targets(result),
        "",
        "## Local operations",
        "",
        f"Order items of {result['item_cbor_bytes']['order']:.0f} B CBOR; "
        f"{s['customers']} partitions × {s['orders_per_customer']} items prepopulated; "
        f"{s['rounds']} rounds per write row and {3 * s['rounds']} per read row "
        "(interleaved across backends), throughput is the median round, latency percentiles "
        f"pool every operation of every round. Single writes / updates / deletes: "
        f"{s['single_writes']} per round; batches: {s['batches']} × {s['batch_size']} per round; "
        f"point reads: {s['gets']} per round; queries: {s['queries']} per round; threads: "
        f"{s['threads']} threads sharing {s['thread_writes']} writes per round. "
        "Latency of a batch row is per batch, of a scan row per full scan. `÷ floor` compares "
        "`regiondb` with `raw_lmdb` and `regiondb_nosync` with `raw_lmdb_nosync`.",
        "",
        *_local(result),
        "",
        "## YCSB",
        "",
        f"{s['ycsb_records']:,} records of {result['item_cbor_bytes']['ycsb']:.0f} B CBOR "
        f"(10 fields × 100 B), {s['ycsb_ops']:,} operations per workload, zipfian 0.99 "
        "(scrambled), `latest` for D, scan length uniform 1..100 for E; load, then A, B, C, F, D, "
        f"E on the same data. Each phase timed in {s['ycsb_chunks']} chunks: throughput is the "
        "median chunk. Every write is a durable single-item transaction where the backend is "
        "durable.",
        "",
        *_ycsb(result),
        "",
        "## Replication",
        "",
        f"{s['repl_changes']:,} changes (one order item each), {s['repl_rounds']} round(s), "
        f"median reported; live lag: 3 node processes, {s['lag_rate']:,} writes/s for "
        f"{s['lag_seconds']:g} s on one, arrival lag measured on the two others.",
        "",
        *_replication(result),
        *_extra_groups(result),
        "",
        "## Durability of each backend",
        "",
        *_table(["backend", "guarantees"],
                [[f"`{k}`", v] for k, v in result["backends"].items()]),
        "",
        "## Plots",
        "",
    ]
    if result["plots"]:
        lines += [f"![{p}]({p})" for p in result["plots"]]
    else:
        lines.append(f"Plots skipped: {result.get('plots_skipped') or 'none produced'}.")
    errors = [r for r in result["rows"] if r.get("error")]
    if errors:
        lines += ["", "## Errors", ""]
        for r in errors:
            where = r.get("row") or r.get("workload")
            lines.append(f"- {r['group']} `{where}` on `{r['backend']}`: {r['error']}")
    return "\n".join(lines) + "\n"


def validate_result(result: dict[str, Any]) -> list[str]:
    """Problems that make a result malformed (empty list when it is well-formed)."""
    problems = []
    for key in ("timestamp", "mode", "command", "machine", "sizes", "rows", "targets"):
        if key not in result:
            problems.append(f"missing key {key!r}")
    for t in result.get("targets", []):
        if not {"name", "value", "goal", "met"} <= t.keys():
            problems.append(f"target missing fields: {t}")
        elif t["met"] is not None and not isinstance(t["met"], bool):
            problems.append(f"target {t['name']!r}: met must be true, false or null")
    if not any(r.get("group") == "local" and not r.get("error") for r in result.get("rows", [])) \
            and "local" in result.get("groups", []):
        problems.append("no local row succeeded")
    return problems
