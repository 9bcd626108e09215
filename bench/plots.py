"""PNG plots of a result (matplotlib is optional: without it, plots are skipped and said so)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .report import ycsb_label

__all__ = ["make_plots"]

_COLORS = {
    "regiondb": "#1f77b4", "regiondb_nosync": "#aec7e8", "raw_lmdb": "#2ca02c",
    "raw_lmdb_nosync": "#98df8a", "sqlite_normal": "#ff7f0e", "sqlite_full": "#d62728",
}


def _grouped_bars(ax: Any, groups: list[str], series: dict[str, list[float | None]]) -> None:
    n = max(1, len(series))
    width = 0.8 / n
    for i, (name, values) in enumerate(series.items()):
        xs = [g + (i - (n - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, [v or 0.0 for v in values], width, label=name, color=_COLORS.get(name))
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=20, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)


def make_plots(result: dict[str, Any], out_dir: Path, stem: str) -> tuple[list[str], str | None]:
    """Write the plots next to the report; return their file names, or why none were made."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [], "matplotlib is not installed (pip install 'regiondb[bench]')"
    names: list[str] = []
    local = [r for r in result["rows"] if r.get("group") == "local" and not r.get("error")]
    rows = list(dict.fromkeys(r["row"] for r in local))
    backends = list(dict.fromkeys(r["backend"] for r in local))
    by = {(r["row"], r["backend"]): r for r in local}
    if local:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 5))
        _grouped_bars(ax1, rows, {b: [by[(r, b)]["throughput"] if (r, b) in by else None
                                      for r in rows] for b in backends})
        ax1.set_title("local operations: throughput (log scale, higher is better)")
        ax1.set_ylabel("ops/s (items/s for batch and scan)")
        _grouped_bars(ax2, rows, {b: [by[(r, b)]["latency_us"]["p99"] if (r, b) in by else None
                                      for r in rows] for b in backends})
        ax2.set_title("local operations: p99 latency (log scale, lower is better)")
        ax2.set_ylabel("µs (per batch / per scan for those rows)")
        fig.tight_layout()
        name = f"{stem}-local.png"
        fig.savefig(out_dir / name, dpi=110)
        plt.close(fig)
        names.append(name)
    ycsb = [r for r in result["rows"] if r.get("group") == "ycsb" and not r.get("error")]
    if ycsb:
        wl = list(dict.fromkeys(ycsb_label(r) for r in ycsb))
        yb = list(dict.fromkeys(r["backend"] for r in ycsb))
        yby = {(ycsb_label(r), r["backend"]): r["throughput"] for r in ycsb}
        fig, ax = plt.subplots(figsize=(9, 4.5))
        _grouped_bars(ax, wl, {b: [yby.get((w, b)) for w in wl] for b in yb})
        ax.set_title("YCSB throughput per workload (log scale)")
        ax.set_ylabel("ops/s")
        fig.tight_layout()
        name = f"{stem}-ycsb.png"
        fig.savefig(out_dir / name, dpi=110)
        plt.close(fig)
        names.append(name)
    return names, None
