"""Pictures of studies: comparison (EDF of error, error vs FLOPs with Pareto fronts) and Optuna's plots.

The EDF (empirical distribution of validation error over a study's trained models) is how pycls
compares design spaces: a curve further up and left means more good models, not just one lucky one.
"""

from __future__ import annotations

import base64
import html
import io
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, cast

from ..errors import ResnasError
from .report import pareto

if TYPE_CHECKING:
    from matplotlib.figure import Figure

KINDS = ("history", "pareto", "importance", "edf", "parallel")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    return plt


def edf(errors: list[float]) -> tuple[list[float], list[float]]:
    """Step points of the empirical distribution: share of models with error <= e."""
    xs = sorted(errors)
    return xs, [(i + 1) / len(xs) for i in range(len(xs))]


def compare_figure(boards: dict[str, list[dict]]):
    """Two panels: EDF of validation error per study; error vs FLOPs with each study's Pareto front."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    for i, (name, rows) in enumerate(boards.items()):
        colour = f"C{i}"
        errors = [100 - r["val_acc"] for r in rows]
        if not errors:
            continue
        xs, ys = edf(errors)
        left.step(xs, ys, where="post", color=colour, label=f"{name} (n={len(xs)})")
        right.scatter([r["flops"] / 1e6 for r in rows], errors, s=18, alpha=0.55, color=colour, label=name)
        front = pareto(rows)
        right.step(
            [r["flops"] / 1e6 for r in front],
            [100 - r["val_acc"] for r in front],
            where="post",
            color=colour,
            linewidth=1.6,
        )
    left.set(xlabel="validation error (%)", ylabel="cumulative share of models", title="EDF of validation error")
    right.set(
        xlabel="MFLOPs (fvcore convention, reference resolution)",
        ylabel="validation error (%)",
        title="error vs FLOPs, Pareto fronts",
        xscale="log",
    )
    from matplotlib.ticker import FuncFormatter, NullFormatter

    right.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    right.xaxis.set_minor_formatter(NullFormatter())
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def save(fig, path: str | Path, title: str = "", tables_html: str = "") -> Path:
    """PNG (or any matplotlib format) by suffix; `.html` is a self-contained page: the figure and tables."""
    plt = _pyplot()
    path = Path(path)
    try:
        if path.is_dir():
            raise ResnasError(f"{path} is a folder; give a file name such as {path / 'plot.png'}", field="plot")
        if not path.suffix:  # matplotlib would add .png and the message would name a file that is not there
            raise ResnasError(f"{path} has no suffix; end it in .png, .svg, .pdf or .html", field="plot")
        blocking = next((p for p in path.parents if p.exists()), None)
        if blocking is not None and not blocking.is_dir():
            raise ResnasError(f"cannot write {path}: {blocking} is a file, not a folder", field="plot")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ResnasError(
                f"cannot create the folder {path.parent} for {path} ({e.strerror or e})", field="plot"
            ) from None
        _write_figure(fig, path, title, tables_html)
    finally:
        plt.close(fig)
    return path


def _write_figure(fig, path: Path, title: str, tables_html: str) -> None:
    try:
        if path.suffix.lower() == ".html":
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=130)
            img = base64.b64encode(buf.getvalue()).decode()
            path.write_text(PAGE.format(title=html.escape(title), img=img, tables=tables_html))
        else:
            fig.savefig(path, dpi=130)
    except ValueError as e:
        raise ResnasError(f"cannot write {path}: {e} (use .png, .svg, .pdf or .html)", field="plot") from None
    except OSError as e:
        raise ResnasError(f"cannot write {path} ({e.strerror or e})", field="plot") from None


def html_table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """A sortable HTML table (click a header) of `rows`, columns as (title, key)."""
    head = "".join(f"<th>{html.escape(t)}</th>" for t, _ in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_text(r.get(k)))}</td>" for _, k in columns) + "</tr>" for r in rows
    )
    return f"<table class='sortable'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _text(v) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def study_figure(study, kind: str, rows: list[dict]):
    """Optuna's matplotlib plot of `kind` for a loaded study; EDF and single-objective Pareto are ours."""
    if kind not in KINDS:
        raise ResnasError(f"must be one of {', '.join(KINDS)}; got {kind!r}", field="--kind")
    plt = _pyplot()
    if kind == "edf" or (kind == "pareto" and len(study.directions) == 1):
        if not rows:
            raise ResnasError(f"study {study.study_name!r} has no trained model to plot yet", field="study")
        return compare_figure({study.study_name: rows})
    import optuna
    from optuna.visualization import matplotlib as ovm

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
            elif kind == "pareto":
                ax = ovm.plot_pareto_front(study, target_names=["val acc %", _second_name(study)])
            elif kind == "importance":
                ax = ovm.plot_param_importances(study, target=_first, target_name="val acc %")
            else:
                ax = ovm.plot_parallel_coordinate(study, target=_first, target_name="val acc %")
        except (ValueError, RuntimeError) as e:
            raise ResnasError(f"Optuna cannot draw {kind} for {study.study_name!r}: {e}", field="--kind") from None
    fig = cast("Figure", ax.figure if hasattr(ax, "figure") else plt.gcf())  # Optuna draws on a whole figure
    fig.set_size_inches(9, 5)
    fig.tight_layout()
    return fig


def _first(trial) -> float:
    return trial.values[0]


def _second_name(study) -> str:
    return {"accuracy+flops": "FLOPs", "accuracy+params": "params"}.get(study.user_attrs.get("objective"), "cost")


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}} th{{cursor:pointer;background:#f3f3f3}}
img{{max-width:100%}}</style></head>
<body><h1>{title}</h1><img src="data:image/png;base64,{img}" alt="{title}">{tables}
<script>
document.querySelectorAll('table.sortable th').forEach((th, i) => th.addEventListener('click', () => {{
  const body = th.closest('table').tBodies[0], up = th.dataset.up !== '1';
  const key = r => {{ const t = r.cells[i].textContent; const n = parseFloat(t); return isNaN(n) ? t : n; }};
  [...body.rows].sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (up ? 1 : -1))
    .forEach(r => body.appendChild(r));
  th.dataset.up = up ? '1' : '0';
}}));
</script></body></html>
"""
