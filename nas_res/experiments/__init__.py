"""Experiments: a claim from the residual-learning papers, arms that test it, seeds, and a verdict.

exp, state = run_experiment("degradation", "quick")     # train every arm x seed (resumable)
report = experiment_report("degradation", "quick")      # table, curves and verdicts, from the storage
"""

from typing import TYPE_CHECKING

from ..lazy import export_lazily

export_lazily(
    __name__,
    {
        **dict.fromkeys(("KINDS", "METRICS", "Check", "judge"), ".checks"),
        "experiment_report": ".report",
        **dict.fromkeys(("prepare_experiment", "run_experiment"), ".run"),
        **dict.fromkeys(("SCALES", "Arm", "Experiment", "builtin_experiments", "load_experiment"), ".spec"),
    },
)

if TYPE_CHECKING:  # what the names are, for type checkers and editors (see nas_res.lazy)
    from .checks import KINDS, METRICS, Check, judge
    from .report import experiment_report
    from .run import prepare_experiment, run_experiment
    from .spec import SCALES, Arm, Experiment, builtin_experiments, load_experiment

__all__ = [
    "KINDS",
    "METRICS",
    "SCALES",
    "Arm",
    "Check",
    "Experiment",
    "builtin_experiments",
    "experiment_report",
    "judge",
    "load_experiment",
    "prepare_experiment",
    "run_experiment",
]
