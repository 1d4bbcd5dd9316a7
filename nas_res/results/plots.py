"""Pictures of studies: comparison (EDF of error, error vs FLOPs with Pareto fronts), a two-objective
study's Pareto front, and Optuna's history, importance and parallel-coordinate plots made readable.

The EDF (empirical distribution of validation error over a study's trained models) is how pycls
compares design spaces: a curve further up and left means more good models, not just one lucky one.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Literal, cast

from ..errors import ResnasError
from .page import check_plot_file, html_table, save
from .report import pareto

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["KINDS", "check_plot_file", "compare_figure", "edf", "html_table", "kinds_for", "save", "study_figure"]

KINDS = ("history", "pareto", "importance", "edf", "parallel")
COSTS = {
    "accuracy+flops": ("flops", "FLOPs"),
    "accuracy+params": ("params", "params"),
    "accuracy+latency": ("latency_ms", "latency (ms, measured)"),
}
BEST = "#d62728"  # the best trial, wherever it is drawn: strong red on every background


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    return plt


def kinds_for(directions: int) -> tuple[str, ...]:
    """The plot kinds a study with this many objectives has: a Pareto front needs two."""
    return KINDS if directions > 1 else tuple(k for k in KINDS if k != "pareto")


def edf(errors: list[float]) -> tuple[list[float], list[float]]:
    """Step points of the empirical distribution, share of models with error <= e, from 0 at the
    lowest error (no model is better than the best) up to 1."""
    xs = sorted(errors)
    if not xs:
        return [], []
    return [xs[0], *xs], [0.0, *((i + 1) / len(xs) for i in range(len(xs)))]


def integer_ticks(axis) -> None:
    """Whole-number ticks on an axis of epochs or trial numbers, even over one point (matplotlib's integer
    locator falls back to 0.96, 0.98, ... when fewer than two integers are in view)."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def log_ticks(ax: Axes, values: list[float], axis: str = "x") -> None:
    """Readable tick labels on a log axis of counts (FLOPs, params) whatever their span. Decade ticks
    alone leave a range narrower than a decade unlabelled: the sparsest of 1, 1-2-5, 1-2-3-5 and every
    integer per decade that puts 3 labels on the axis is used, else the data's two ends are labelled."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    lo, hi = ax.get_xlim() if axis == "x" else ax.get_ylim()  # after drawing: the autoscaled view
    lo, hi = max(lo, min(values) / 10), max(hi, lo)  # counts are positive; a log axis never starts at 0
    inside: list[float] = []
    for subs in ((1,), (1, 2, 5), (1, 2, 3, 5), (1, 2, 3, 4, 5, 6, 7, 8, 9)):
        decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
        inside = [m * 10**e for e in decades for m in subs if lo <= m * 10**e <= hi]
        if len(inside) >= 3:
            break
    if len(inside) < 2:  # a span narrower than one step: label the data's ends
        inside = sorted({min(values), max(values)})
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(FixedLocator(inside))
    target.set_major_formatter(FuncFormatter(lambda v, _: _short(v)))
    target.set_minor_formatter(NullFormatter())


def _short(v: float) -> str:
    """A tick label in the project's units, as short as it can be: 2 M, 2.43 M, 1.2 G."""
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= size:
            return f"{v / size:.3g} {unit}"
    return f"{v:.3g}"


def compare_figure(boards: dict[str, list[dict]]):
    """Two panels: EDF of validation error per study; error vs FLOPs with each study's Pareto front."""
    from matplotlib.lines import Line2D

    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    flops = []
    for i, (name, rows) in enumerate(boards.items()):
        colour = f"C{i}"
        errors = [100 - r["val_acc"] for r in rows]
        if not errors:
            continue
        xs, ys = edf(errors)
        left.step(xs, ys, where="post", color=colour, label=f"{name} (n={len(errors)})")
        right.scatter([r["flops"] for r in rows], errors, s=18, alpha=0.55, color=colour, label=name)
        front = pareto(rows)
        xs_front, ys_front = [r["flops"] for r in front], [100 - r["val_acc"] for r in front]
        right.step(xs_front, ys_front, where="post", color=colour)
        right.scatter(xs_front, ys_front, s=46, facecolors="none", edgecolors=colour)  # a front of one point too
        flops += [r["flops"] for r in rows]
    left.set(xlabel="validation error (%)", ylabel="share of models with at most this error", ylim=(0, 1.04))
    left.set_title("EDF of validation error (up and left is better)")
    right.set(xlabel="FLOPs (fvcore convention, reference resolution)", ylabel="validation error (%)", xscale="log")
    right.set_title("error vs FLOPs, Pareto fronts (down and left is better)")
    if flops:
        log_ticks(right, flops)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    left.legend(fontsize=8, loc="lower right")
    handles, _ = right.get_legend_handles_labels()
    front_handle = Line2D([], [], color="0.3", label="Pareto front (circled, joined)")
    right.legend(handles=[*handles, front_handle], fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def pareto_figure(name: str, rows: list[dict], cost: str, label: str):
    """A two-objective study: validation accuracy against its cost, the front drawn and its trials named."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 5))
    front = pareto(rows, cost)
    on_front = {r["trial"] for r in front}
    rest = [r for r in rows if r["trial"] not in on_front]
    ax.scatter([r[cost] for r in rest], [r["val_acc"] for r in rest], s=22, color="C0", alpha=0.6, label="trial")
    xs, ys = [r[cost] for r in front], [r["val_acc"] for r in front]
    ax.step(xs, ys, where="post", color=BEST, linewidth=1.5)
    ax.scatter(xs, ys, s=36, color=BEST, zorder=3, label=f"Pareto front ({len(front)})")
    for r in front:
        ax.annotate(f"#{r['trial']}", (r[cost], r["val_acc"]), textcoords="offset points", xytext=(4, -11), fontsize=8)
    ax.set(xscale="log", xlabel=f"{label} (lower is better)", ylabel="validation accuracy % (higher is better)")
    ax.set_title(f"{name}: Pareto front of accuracy and {label}")
    log_ticks(ax, [r[cost] for r in rows])
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    return fig


def study_figure(study, kind: str, rows: list[dict]):
    """The plot of `kind` for a loaded Optuna study and its leaderboard rows: EDF and Pareto front are
    ours; history, importance and parallel coordinates are Optuna's, made readable."""
    if kind not in KINDS:
        raise ResnasError(f"must be one of {', '.join(KINDS)}; got {kind!r}", field="--kind")
    vae = study.user_attrs.get("objective") == "nelbo"
    if vae and kind in ("edf", "pareto"):  # both draw classification error
        raise ResnasError(
            f"study {study.study_name!r} is a VAE search: {kind} draws classification error, which a VAE has "
            "not; history, importance and parallel draw its validation -ELBO",
            field="--kind",
        )
    if kind not in kinds_for(len(study.directions)):
        raise ResnasError(
            f"study {study.study_name!r} has one objective (validation accuracy), so it has no Pareto front; "
            f"kinds for it: {', '.join(kinds_for(1))} (a search with --objective accuracy+flops has a front)",
            field="--kind",
        )
    if kind in ("edf", "pareto") and not rows:
        raise ResnasError(f"study {study.study_name!r} has no trained model to plot yet", field="study")
    if kind == "edf":
        return compare_figure({study.study_name: rows})
    if kind == "pareto":
        cost, label = COSTS.get(study.user_attrs.get("objective"), ("flops", "FLOPs"))
        return pareto_figure(study.study_name, [r for r in rows if r.get(cost) is not None], cost, label)
    return _optuna_figure(study, kind)


def _optuna_figure(study, kind: str):
    import optuna
    from optuna.visualization import matplotlib as ovm

    plt = _pyplot()
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(finished) < 2:
        raise ResnasError(
            f"study {study.study_name!r} has {len(finished)} completed trial(s); {kind} needs 2", field="study"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if kind == "history":
                ax = ovm.plot_optimization_history(study, target=_first, target_name="val acc %")
            elif kind == "importance":
                ax = ovm.plot_param_importances(study, target=_first, target_name="val acc %")
            else:
                ax = ovm.plot_parallel_coordinate(study, target=_first, target_name="val acc %")
        except (ValueError, RuntimeError) as e:
            raise ResnasError(f"Optuna cannot draw {kind} for {study.study_name!r}: {e}", field="--kind") from None
    fig = cast("Figure", ax.figure if hasattr(ax, "figure") else plt.gcf())  # Optuna draws on a whole figure
    fig.set_size_inches(10, 5.5)
    if kind == "history":
        _best_so_far(ax, finished)
    elif kind == "parallel":
        _readable_parallel(ax, finished)
    places: tuple[Literal["center", "left", "right"], ...] = ("center", "left", "right")  # Optuna: some left
    title = next((ax.get_title(loc) for loc in places if ax.get_title(loc)), kind)
    for loc in places:
        ax.set_title("", loc=loc)
    ax.set_title(f"{study.study_name}: {title.lower()}", pad=16)
    fig.tight_layout()
    return fig


def _best_so_far(ax: Axes, finished: list) -> None:
    """Optuna leaves out the best-so-far line when the target is given (ours always is): draw it."""
    xs, ys, best = [], [], -math.inf
    for t in sorted(finished, key=lambda t: t.number):
        best = max(best, _first(t))
        xs.append(t.number)
        ys.append(best)
    ax.step(xs, ys, where="post", color=BEST, linewidth=1.5, label="best so far")
    integer_ticks(ax.xaxis)  # trial numbers
    ax.legend(loc="lower right")


def _readable_parallel(ax: Axes, finished: list) -> None:
    """Optuna colours the best trial near-white and lays its feasibility legend over the title: colour
    from pale to dark blue, the best trial (every one tied for best) drawn on top in red and named, the
    legend below the axes."""
    from matplotlib.collections import LineCollection
    from matplotlib.colors import LinearSegmentedColormap

    lines = next(c for c in ax.collections if isinstance(c, LineCollection))
    lines.set_cmap(LinearSegmentedColormap.from_list("acc", ["#c6dbef", "#6baed6", "#08306b"]))
    lines.set_linewidth(1.4)
    values = lines.get_array()
    segments = lines.get_segments()
    legend = ax.get_legend()
    if legend is not None:
        legend.remove()  # "feasible / infeasible": every trial drawn here met the budget
    if values is not None and len(segments):
        top = float(values.max())
        for i in (i for i, v in enumerate(values) if v == top):
            ax.plot(segments[i][:, 0], segments[i][:, 1], color=BEST, linewidth=3, zorder=10, solid_capstyle="round")
        numbers = ", ".join(str(t.number) for t in finished if _first(t) == top)
        name = "trials" if "," in numbers else "trial"
        ax.plot([], [], color=BEST, linewidth=3, label=f"best ({top:.2f} % val acc): {name} {numbers}")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)


def _first(trial) -> float:
    return trial.values[0]
