"""An experiment's picture: training curves per arm (mean over seeds, band from the lowest to the highest
seed) and each arm's final values seed by seed; for sampled design spaces, the EDF of error (pycls's
way of comparing spaces) raw and complexity-normalised (see `edf`).
"""

from __future__ import annotations

from ..results.page import html_table, save
from ..results.plots import _pyplot, edf, integer_ticks
from .checks import METRICS, SHOWN
from .edf import normalised_weights, weighted_edf

PALETTE = (  # tab10, reordered so twins and first arms get the strongest colours, then paler ones
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf", "#bcbd22",
    "#aec7e8", "#ff9896", "#98df8a", "#ffbb78",
)  # fmt: skip


def experiment_figure(report: dict, path: str) -> str:
    """Draw `report` (experiment_report's) into `path` (.png, or .html with the tables); returns the path."""
    plt = _pyplot()
    arms = report["arms"]
    vae = report["experiment"].get("task") == "vae"
    sampled = [a for a in arms if a["sampled"] and a["values"]["val_error"]]
    if sampled:
        fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
        _edf_panels(axes, sampled)
    else:
        fig, axes = plt.subplots(1, 3, figsize=(17, 5.2))
        metric = report["verdicts"][0]["metric"] if report["verdicts"] else "train_loss"
        _curves(axes[0], arms, "train_loss", "training loss (mean over seeds; band: min-max)")
        if vae:  # the first epochs' losses are several times the last ones': a log scale shows both
            _curves(axes[1], arms, "val_loss", "validation loss, -ELBO per image (mean over seeds)")
            for ax in axes[:2]:
                ax.set_yscale("log")
        else:
            _curves(axes[1], arms, "val_error", "validation error % (mean over seeds)")
        _finals(axes[2], arms, metric)
    exp = report["experiment"]
    fig.suptitle(f"{exp['title']}  [{report['study']}: {report['verdict']}]", fontsize=11)
    fig.tight_layout()
    columns = [("arm", "name"), ("label", "label"), ("runs", "runs"), ("FLOPs", "flops"), ("params", "params")]
    rows = []
    shown = SHOWN[report["experiment"].get("task", "classify")]
    for a in arms:
        row = {k: a[k] for k in ("name", "label", "runs", "flops", "params")}
        for m in shown:
            s = a["metrics"].get(m)
            row[m] = None if not s else s["mean"]
        rows.append(row)
    columns += [(METRICS[m], m) for m in shown]
    verdicts = [{"claim": v["claim"], "verdict": v["verdict"], "why": v["why"]} for v in report["verdicts"]]
    tables = html_table(rows, columns) + html_table(
        verdicts, [("claim", "claim"), ("verdict", "verdict"), ("why", "why")]
    )
    return str(save(fig, path, title=exp["title"], tables_html=tables, field="--plot"))


def _colours(arms: list[dict]) -> list[str]:
    """One colour per arm, shared by twins whose names differ only by plain/resnet (plain-20, resnet-20)."""
    twins = [a["name"].replace("plain", "").replace("resnet", "") for a in arms]
    order = list(dict.fromkeys(twins))
    return [PALETTE[order.index(t) % len(PALETTE)] for t in twins]


def _style(name: str) -> str:
    return "--" if "plain" in name else "-"  # plain nets dashed beside their residual twins


def _curves(ax, arms: list[dict], metric: str, title: str) -> None:
    colours = _colours(arms)
    for arm, colour in zip(arms, colours):
        curves = [c for c in arm["curves"][metric] if c and all(v is not None for v in c)]
        if not curves:
            continue
        n = min(len(c) for c in curves)
        epochs = list(range(1, n + 1))
        mean = [sum(c[e] for c in curves) / len(curves) for e in range(n)]
        low = [min(c[e] for c in curves) for e in range(n)]
        high = [max(c[e] for c in curves) for e in range(n)]
        ax.plot(epochs, mean, _style(arm["name"]), color=colour, marker="o", ms=3, label=arm["name"])
        ax.fill_between(epochs, low, high, color=colour, alpha=0.15, linewidth=0)
    integer_ticks(ax.xaxis)
    ax.set_xlabel("epoch")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if metric == "train_loss":
        ax.legend(fontsize=8)


def _finals(ax, arms: list[dict], metric: str) -> None:
    """Each seed's final value as a dot, the mean as a bar with its 95% interval."""
    names = [a["name"] for a in arms]
    for i, (arm, colour) in enumerate(zip(arms, _colours(arms))):
        xs = arm["values"].get(metric, [])
        s = arm["metrics"].get(metric)
        ax.scatter(xs, [i] * len(xs), color=colour, s=18, zorder=3)
        if s:
            lo = s["lo"] if s["lo"] is not None else s["mean"]
            hi = s["hi"] if s["hi"] is not None else s["mean"]
            ax.errorbar(s["mean"], i, xerr=[[s["mean"] - lo], [hi - s["mean"]]], fmt="|", color="black", ms=14)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(METRICS[metric])
    ax.set_title(f"{METRICS[metric]}: seeds (dots), mean and 95% interval", fontsize=10)
    ax.grid(alpha=0.3, axis="x")


def _edf_panels(axes, arms: list[dict]) -> None:
    weights = normalised_weights({a["name"]: a["flops_each"] for a in arms})
    for arm, colour in zip(arms, _colours(arms)):
        errors = arm["values"]["val_error"]
        xs, ys = edf(errors)
        axes[0].step(xs, ys, where="post", color=colour, label=f"{arm['name']} (n={len(errors)})")
        wx, wy = weighted_edf(errors, weights[arm["name"]] if len(errors) == len(arm["flops_each"]) else [])
        axes[1].step(wx, wy, where="post", color=colour, label=arm["name"])
        axes[2].scatter(arm["flops_each"][: len(errors)], errors, s=12, color=colour, label=arm["name"])
    for ax, title in zip(axes, ("EDF of validation error", "complexity-normalised EDF", "error vs FLOPs")):
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("share of models with error <= x")
    axes[0].set_xlabel("validation error %")
    axes[1].set_xlabel("validation error %")
    axes[2].set_xscale("log")
    axes[2].set_xlabel("FLOPs")
    axes[2].set_ylabel("validation error %")
    axes[0].legend(fontsize=8)


def refinement_figures(report: dict, path: str) -> list[str]:
    """For each refine arm, the picture `resnas refine` draws of its space arm's models (one panel per
    dimension: errors by value, the good range, EDFs by value), beside `path` as `STEM-ARM-refine.SUFFIX`."""
    from pathlib import Path

    from ..results.refine import DimRefinement
    from ..results.refine_plot import refine_figure, refine_table

    written = []
    for arm, found in (report["experiment"].get("refinements") or {}).items():
        dims = [DimRefinement.from_dict(d) for d in found["dims"]]
        models = [(m["values"], m["error"], m["inside"]) for m in found["models"]]
        title = f"{report['study']}: arm {found['parent']}, refined into arm {arm}"
        target = Path(path).with_name(f"{Path(path).stem}-{arm}-refine{Path(path).suffix}")
        written.append(
            str(save(refine_figure(dims, models, title), target, title=title, tables_html=refine_table(dims)))
        )
    return written
