"""The picture of a latency survey: measured latency against FLOPs, log-log, one colour per block family.

Nets on one diagonal run as many FLOPs per millisecond; a net above its neighbours is slow for its FLOPs
(grouped convolutions, depth, small maps), which is what a FLOPs budget cannot see.
"""

from __future__ import annotations

from pathlib import Path

from ..results.page import html_table, save

FAMILIES = {"basic": "#1f77b4", "bottleneck": "#2ca02c", "ResNeXt (C > 1)": "#d62728"}
LABELS = 40  # more points than this go unlabelled


def family(row: dict) -> str:
    if row["block"] == "basic":
        return "basic"
    return "bottleneck" if row["cxd"].startswith("1x") else "ResNeXt (C > 1)"


def latency_figure(rows: list[dict], title: str):
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6.5))
    for name, colour in FAMILIES.items():
        mine = [r for r in rows if family(r) == name]
        if not mine:
            continue
        xs = [r["flops"] for r in mine]
        ys = [r["latency_ms"] for r in mine]
        errs = [[r["latency_ms"] - r["low_ms"] for r in mine], [r["high_ms"] - r["latency_ms"] for r in mine]]
        ax.errorbar(xs, ys, yerr=errs, fmt="o", color=colour, label=name, markersize=5, capsize=2, alpha=0.85)
        predicted = [(r["flops"], r["predicted_ms"]) for r in mine if r.get("predicted_ms") is not None]
        if predicted:
            ax.scatter(
                [x for x, _ in predicted],
                [y for _, y in predicted],
                marker="x",
                color=colour,
                s=30,
                label=f"{name}: lookup table",
            )
    if len(rows) <= LABELS:
        for r in rows:
            ax.annotate(r["name"], (r["flops"], r["latency_ms"]), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("FLOPs (fvcore's count, batch 1)")
    ax.set_ylabel("latency per call (ms): median, 95% interval")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def write_latency_plot(rows: list[dict], path: str | Path, title: str) -> Path:
    """PNG (or .svg/.pdf) by suffix; .html: the picture with the sortable table."""
    columns = [
        ("net", "name"),
        ("FLOPs", "flops"),
        ("params", "params"),
        ("latency ms", "latency_ms"),
        ("low", "low_ms"),
        ("high", "high_ms"),
        ("images/s", "images_per_s"),
        ("table ms", "predicted_ms"),
        ("summary", "summary"),
    ]
    return save(latency_figure(rows, title), path, title, html_table(rows, columns), field="--plot")
