"""An experiment's report: per arm, each metric's mean, sd and interval over its seeds (or models), the
training curves, the verdict of each check, and the paper's own figures beside ours.

It reads only the storage: the experiment's definition is stored with its study (run.py), so a report
can be made on another machine, or after the file has changed.
"""

from __future__ import annotations

import math

from ..arch.description import Arch
from ..errors import ResnasError
from ..results.record import Run
from ..results.store import Store
from ..results.uncertainty import PERCENT, seed_summary
from ..training.status import RunStatus
from .checks import FAILS, HOLDS, LEVEL, METRICS, UNSURE, Check, judge
from .good_range import judge_range
from .run import SNAPSHOT
from .spec import SCALES

CURVES = ("train_loss", "val_error", "val_loss")
# Where a metric's interval is kept (finalize's too): a rate in 0..100, a count or time not below 0. A loss
# is not bounded: a VAE's negative ELBO can be below 0.
BOUNDS = {m: PERCENT if m.endswith(("_acc", "_error")) else (0.0, math.inf) for m in METRICS if "loss" not in m}


def run_metrics(run: Run) -> dict[str, float]:
    """The final epoch's measurements of one finished run (and its test accuracy where evaluated)."""
    if not run.history:
        return {}
    last = run.history[-1]
    values = {
        "train_loss": last.get("train_loss"),
        "train_error": None if last.get("train_acc") is None else 100 - last["train_acc"],
        "val_loss": last.get("val_loss"),
        "val_acc": last.get("val_acc"),
        "val_error": None if last.get("val_acc") is None else 100 - last["val_acc"],
        "test_acc": run.test_acc,
        "test_error": None if run.test_acc is None else 100 - run.test_acc,
        "best_val_loss": min((e["val_loss"] for e in run.history if _finite(e.get("val_loss"))), default=None),
        "epochs": len(run.history),
        "train_seconds": sum(e.get("seconds") or 0.0 for e in run.history),
    }
    return {k: float(v) for k, v in values.items() if _finite(v)}


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


def study_of(name: str, scale: str) -> str:
    return name if any(name.endswith(f"-{s}") for s in SCALES) else f"{name}-{scale}"


def experiment_report(name: str, scale: str = "quick", *, storage: str | None = None) -> dict:
    """The report of experiment `name` at `scale` (or of its study, `NAME-SCALE`), from the storage."""
    study = study_of(name, scale)
    store = Store(storage)
    try:
        config = store.config_of(study)  # an unknown study: the message lists the ones there are
        snapshot = config.get(SNAPSHOT)
        if snapshot is None:
            raise ResnasError(f"study {study!r} is not an experiment (see resnas experiment list)", field="experiment")
        runs = store.runs(study)
    finally:
        store.dispose()
    return build_report(snapshot, runs, study)


def build_report(snapshot: dict, runs: list[Run], study: str) -> dict:
    """Arms' summaries, curves and verdicts from the stored definition and the study's runs."""
    by_key: dict[str, list[Run]] = {}
    for r in runs:
        by_key.setdefault(r.arch_key, []).append(r)
    paper = snapshot.get("paper") or {}
    arms, values_of, flops_of = [], {}, {}
    for arm in snapshot["arms"]:
        archs = [Arch.from_dict(a) for a in arm["archs"]]  # none yet for a refined arm whose parent is training
        mine = [r for a in archs for r in by_key.get(a.key, [])]
        done = [r for r in mine if r.status.ranks]
        measured = [run_metrics(r) for r in done]
        summary = {}
        values_of[arm["name"]] = {m: [x[m] for x in measured if m in x] for m in METRICS}
        flops_of[arm["name"]] = {m: [r.flops for r, x in zip(done, measured) if m in x] for m in METRICS}
        for m in METRICS:
            xs = values_of[arm["name"]][m]
            summary[m] = seed_summary(xs, within=BOUNDS.get(m)) if xs else None
        flops = [r.flops for r in done] or [0]
        params = [r.params for r in done] or [0]
        arms.append(
            {
                "name": arm["name"],
                "label": arm["label"],
                "sampled": arm["sampled"],
                "models": len(archs),
                "runs": len(done),
                "failed": sorted({_why(r) for r in mine if not r.status.ranks and r.status is not RunStatus.RUNNING}),
                "running": sum(1 for r in mine if r.status is RunStatus.RUNNING),
                "flops": round(sum(flops) / len(flops)),
                "params": round(sum(params) / len(params)),
                "depth": archs[0].depth if archs else None,
                "refines": arm.get("refines"),
                "metrics": summary,
                "values": values_of[arm["name"]],
                "curves": {m: [_curve(r, m) for r in done] for m in CURVES},
                "flops_each": [r.flops for r in done],
                "paper": (paper.get("values") or {}).get(arm["name"]),
            }
        )
    verdicts = []
    for raw in snapshot["checks"]:
        check = Check(**{**raw, "arms": tuple(raw["arms"])})
        values = {a: values_of.get(a, {}).get(check.metric, []) for a in check.arms}
        each = {a: flops_of.get(a, {}).get(check.metric, []) for a in check.arms}
        if check.kind == "good_range":
            verdict = judge_range(check, (snapshot.get("refinements") or {}).get(check.arms[0]))
        else:
            verdict = judge(check, values, LEVEL, each)
        verdicts.append(verdict.to_dict())
    return {
        "study": study,
        "experiment": {k: v for k, v in snapshot.items() if k not in ("arms", "checks")},
        "arms": arms,
        "verdicts": verdicts,
        "verdict": overall([v["verdict"] for v in verdicts]),
    }


def _why(run: Run) -> str:
    """A run without a result: how it ended, how far it got (an interrupted one keeps its epochs), and why."""
    got = f" after {run.epochs} of {run.recipe.get('epochs', '?')} epochs" if run.epochs else ""
    return f"{run.status.value}{got}: {run.reason}"[:160]


def overall(verdicts: list[str]) -> str:
    """The experiment's verdict: every claim holds, one does not, or some could not be told."""
    if verdicts and all(v == HOLDS for v in verdicts):
        return HOLDS
    return FAILS if FAILS in verdicts else UNSURE


def _curve(run: Run, metric: str) -> list[float | None]:
    out = []
    for epoch in run.history:
        if metric == "val_error":
            v = None if epoch.get("val_acc") is None else 100 - epoch["val_acc"]
        else:
            v = epoch.get(metric)
        out.append(None if v is None or not math.isfinite(v) else float(v))
    return out
