"""The picture of a refinement (`resnas refine --plot`), as pycls's `sweep_analyze` draws one: a panel per
open dimension, error against the dimension's value (jittered) with the good range shaded and
the best model starred, and under it the error EDF split by value; a last panel sets the EDF of every model
beside that of the models inside the refined space (in-sample, so optimistic).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from .page import check_plot_file, html_table, save
from .plots import BEST, edf
from .refine import DimRefinement

__all__ = ["check_plot_file", "refine_figure", "refine_table", "save"]

GOOD = "#2ca02c"  # the good range's shade
SPLIT_BY_VALUE = 6  # observed values up to which a numeric dimension's EDF is split by value, else inside/outside
COLUMNS = 4


def refine_figure(dims: Sequence[DimRefinement], models: Sequence[tuple[dict, float, bool]], title: str):
    """`models`: (values by dimension, error, inside the refined space) of each ranked model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = len(dims) + 1
    cols = min(COLUMNS, panels)
    rows = math.ceil(panels / cols)
    fig = plt.figure(figsize=(4.4 * cols, 5.4 * rows + 0.8))
    outer = fig.add_gridspec(rows, cols, hspace=0.3, wspace=0.3)
    for i, d in enumerate(dims):
        inner = outer[divmod(i, cols)].subgridspec(2, 1, height_ratios=[3, 2], hspace=0.42)
        have = [(vals[d.name], err) for vals, err, _ in models if d.name in vals]
        _scatter(fig.add_subplot(inner[0]), d, have)
        _edfs(fig.add_subplot(inner[1]), d, have)
    _summary(fig.add_subplot(outer[divmod(len(dims), cols)]), models)
    fig.suptitle(
        f"{title}: where the good models lie (shaded: good range; dashed: bootstrap percentiles; star: best model)",
        fontsize=13,
    )
    height = fig.get_figheight()
    fig.subplots_adjust(top=1 - 0.9 / height, bottom=0.5 / height, left=0.06, right=0.98)
    return fig


def _positions(d: DimRefinement) -> dict[Any, float]:
    """Where each value sits on the x axis: evenly spaced, numbers in their order (a grid such as 1, 2, 4, 8
    would crowd its small values on a linear axis), categories as the template lists them."""
    ordered = sorted(d.values) if d.numeric else list(d.values)
    return {v: float(i) for i, v in enumerate(ordered)}


def _scatter(ax, d: DimRefinement, have: list[tuple[Any, float]]) -> None:
    at = _positions(d)
    rng = random.Random(0)  # the same jitter every time
    spans = [(min(at[v] for v in d.good), max(at[v] for v in d.good))] if d.numeric and d.good else []
    for lo, hi in spans or [(at[v], at[v]) for v in d.good]:  # a numeric range in one piece, else each category
        ax.axvspan(lo - 0.4, hi + 0.4, color=GOOD, alpha=0.18, linewidth=0)
    if d.numeric and d.low is not None and d.high is not None:
        grid = sorted(d.values)
        for x in (d.low, d.high):  # a percentile between two grid values sits between their places
            ax.axvline(float(np.interp(x, grid, range(len(grid)))), color=GOOD, linestyle="--", linewidth=1)
    xs = [at[v] + rng.uniform(-0.25, 0.25) for v, _ in have]  # jittered: the models of one value spread out
    ax.scatter(xs, [e for _, e in have], s=12, alpha=0.5, color="C0", linewidths=0)
    if have:
        k = min(range(len(have)), key=lambda j: have[j][1])
        ax.scatter([xs[k]], [have[k][1]], marker="*", s=160, color=BEST, zorder=3, edgecolors="white")
    shown = sorted(at, key=at.__getitem__)
    shown = shown[:: math.ceil(len(shown) / 12)]  # at most about 12 labels
    ax.set_xticks([at[v] for v in shown])
    ax.set_xticklabels([_label(v) for v in shown], fontsize=8)
    ax.set_xlim(-0.8, len(at) - 0.2)
    p = f", KS p={d.p:.2g}" if d.p is not None else ""
    ax.set_title(f"{d.name}: {d.verdict} {d.range_text() if d.narrowed else ''}\n(n={d.n}{p})", fontsize=10)
    ax.set_ylabel("validation error (%)", fontsize=8)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(alpha=0.3)


def _edfs(ax, d: DimRefinement, have: list[tuple[Any, float]]) -> None:
    """One EDF per value; past SPLIT_BY_VALUE values of a number, one per third of its grid."""
    seen = [v for v in (sorted(d.values) if d.numeric else d.values) if any(x == v for x, _ in have)]
    if len(seen) <= SPLIT_BY_VALUE:
        groups = [(_label(v), [e for x, e in have if x == v]) for v in seen]
    else:
        thirds = [seen[i * len(seen) // 3 : (i + 1) * len(seen) // 3] for i in range(3)]
        groups = [(f"{_label(t[0])}-{_label(t[-1])}", [e for x, e in have if x in t]) for t in thirds]
    for i, (label, errs) in enumerate(groups):
        xs, ys = edf(errs)
        ax.step(xs, ys, where="post", color=f"C{i}", label=f"{label} ({len(errs)})")
    ax.set_xlabel("validation error (%)", fontsize=8)
    ax.set_ylabel("EDF", fontsize=8)
    ax.set_ylim(0, 1.04)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    if groups:
        ax.legend(fontsize=7, loc="lower right", handlelength=1.2)


def _summary(ax, models: Sequence[tuple[dict, float, bool]]) -> None:
    everything = [e for _, e, _ in models]
    inside = [e for _, e, ins in models if ins]
    for errs, label, colour in ((everything, "every model", "C7"), (inside, "inside the refined space", GOOD)):
        if errs:
            xs, ys = edf(errs)
            ax.step(xs, ys, where="post", color=colour, linewidth=2, label=f"{label} ({len(errs)})")
    ax.set_title("EDF of error: the study vs its refined part\n(in-sample: optimistic; re-sample to test)", fontsize=10)
    ax.set_xlabel("validation error (%)", fontsize=8)
    ax.set_ylabel("share of models with at most this error", fontsize=8)
    ax.set_ylim(0, 1.04)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")


def refine_table(dims: Sequence[DimRefinement]) -> str:
    """The per-dimension table of an HTML page."""
    rows = [
        {
            "dimension": d.name,
            "values": ", ".join(_label(v) for v in d.values),
            "good range": d.range_text(),
            "n": d.n,
            "inside/outside": f"{d.inside}/{d.outside}",
            "KS p": "-" if d.p is None else f"{d.p:.2g}",
            "verdict": d.verdict,
            "why": d.reason,
        }
        for d in dims
    ]
    columns = ["dimension", "values", "good range", "n", "inside/outside", "KS p", "verdict", "why"]
    return html_table(rows, [(c, c) for c in columns])


def _label(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)
