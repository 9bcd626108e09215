"""``python -m bench``: run the suite, write ``<stamp>.json``, ``<stamp>.md``, ``latest.md``, PNGs.

Usage: ``python -m bench [--quick | --smoke] [--out DIR]
[--only local,ycsb,replication,crsqlite,indexes] [--backends a,b] [--no-plots]``. Exit status 0
when a well-formed report was written (rows that failed are recorded in it, not fatal); 2 when
the report would be malformed.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .backends import ALL_BACKENDS, make_backend
from .crsqlite import run_crsqlite
from .data import mean_cbor_size, order_item, ycsb_record
from .indexes import run_indexes
from .local import WRITE_BACKENDS, run_local
from .plots import make_plots
from .repl import replication_api, run_replication
from .report import render_markdown, validate_result
from .sizes import SIZES
from .sysinfo import machine_info
from .targets import add_ratios, evaluate_targets
from .ycsb import YCSB_BACKENDS, run_ycsb

GROUPS = ["local", "ycsb", "replication", "crsqlite", "indexes"]
# groups a --smoke run leaves out unless named in --only (they fetch or build outside tools)
SMOKE_SKIPS = {"crsqlite"}
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="reduced sizes, under two minutes")
    mode.add_argument("--smoke", action="store_true",
                      help="tiny sizes (seconds): checks the suite runs and the report is sound")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results directory")
    ap.add_argument("--only", default=None,
                    help=f"comma-separated groups to run: {','.join(GROUPS)}")
    ap.add_argument("--backends", default=",".join(ALL_BACKENDS),
                    help="comma-separated backends to include (floors are needed for ratios)")
    ap.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    args = ap.parse_args(argv)
    if args.only is None:
        args.groups = [g for g in GROUPS if not (args.smoke and g in SMOKE_SKIPS)]
    else:
        args.groups = [g.strip() for g in args.only.split(",") if g.strip()]
    bad = [g for g in args.groups if g not in GROUPS]
    if bad:
        ap.error(f"unknown group(s) {', '.join(bad)}; choose from {', '.join(GROUPS)}")
    args.backend_list = [b.strip() for b in args.backends.split(",") if b.strip()]
    bad = [b for b in args.backend_list if b not in ALL_BACKENDS]
    if bad:
        ap.error(f"unknown backend(s) {', '.join(bad)}; choose from {', '.join(ALL_BACKENDS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the selected groups and write the results; return the exit status."""
    args = _parse(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    sizes = SIZES[mode]
    started = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")

    def progress(msg: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {msg}", file=sys.stderr, flush=True)

    progress(f"regiondb bench, {mode} run, groups {','.join(args.groups)}")
    machine = machine_info()
    rows: list[dict[str, Any]] = []
    chosen = args.backend_list
    if "local" in args.groups:
        rows += run_local(sizes, [b for b in WRITE_BACKENDS if b in chosen], progress)
    if "ycsb" in args.groups:
        rows += run_ycsb(sizes, [b for b in YCSB_BACKENDS if b in chosen], progress)
    if "replication" in args.groups:
        rows += run_replication(sizes, progress)
    if "crsqlite" in args.groups:
        rows += run_crsqlite(sizes, progress)
    if "indexes" in args.groups:
        rows += run_indexes(sizes, progress)
    backends = {b: make_backend(b) for b in ALL_BACKENDS}
    add_ratios(rows, {b: be.floor for b, be in backends.items() if be.floor})
    argv_shown = [a for a in (argv if argv is not None else sys.argv[1:])]
    result: dict[str, Any] = {
        "schema": "regiondb-bench/1",
        "timestamp": stamp,
        "mode": mode,
        "groups": args.groups,
        "command": "python -m bench" + ("" if not argv_shown else " " + shlex.join(argv_shown)),
        "machine": machine,
        "sizes": sizes.as_dict(),
        "item_cbor_bytes": {
            "order": mean_cbor_size([order_item(i, j) for i in range(10) for j in range(10)]),
            "ycsb": mean_cbor_size([ycsb_record("user6284781860667377211",
                                                __import__("random").Random(i))
                                    for i in range(10)]),
        },
        "backends": {b: be.guarantees for b, be in backends.items()},
        "replication_api": replication_api(),
        "rows": rows,
        "targets": evaluate_targets(rows),
        "plots": [],
        "plots_skipped": None,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    if args.no_plots:
        result["plots_skipped"] = "--no-plots given"
    else:
        result["plots"], result["plots_skipped"] = make_plots(result, args.out, stamp)
    result["elapsed_s"] = time.monotonic() - started
    problems = validate_result(result)
    result["problems"] = problems
    json_path = args.out / f"{stamp}.json"
    json_path.write_text(json.dumps(result, indent=1, default=str) + "\n")
    md = render_markdown(result)
    (args.out / f"{stamp}.md").write_text(md)
    (args.out / "latest.md").write_text(md)
    (args.out / "latest.json").write_text(json_path.read_text())
    progress(f"wrote {json_path} and {args.out / f'{stamp}.md'} (copy: latest.md)")
    for t in result["targets"]:
        status = {True: "met", False: "NOT MET", None: "n/a"}[t["met"]]
        value = "-" if t["value"] is None else f"{t['value']:.2f}"
        print(f"target {t['name']:<34} {value:>8}  goal {t['comparison']} {t['goal']:g}"
              f"  {status}{'  (' + t['reason'] + ')' if t.get('reason') else ''}")
    if problems:
        print("malformed result: " + "; ".join(problems), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
