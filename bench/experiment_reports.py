"""Run the built-in experiments and keep their reports: `resnas experiment run NAME --scale S` for each, then
under bench/results/ its picture (experiment-NAME-S.png), its printed report (.txt) and its figures with
the machine and the command (experiment-NAME-S-<cpu|gpu>.json).

The time an experiment took is read from its runs (first start to last finish), so a report made after
an interrupted or resumed run still says how long the training took, not how long this script waited.

    python bench/experiment_reports.py [NAME|FILE.yaml ...] [--scale quick|full] [--storage URL] [--gpus 0]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from machine import RESULTS, write

from nas_res.experiments import builtin_experiments
from nas_res.results.store import Store


def span_minutes(study: str, storage: str | None) -> float | None:
    """Minutes from the study's first run starting to its last run finishing."""
    store = Store(storage)
    try:
        runs = [r for r in store.runs(study) if r.wall_seconds]
    finally:
        store.dispose()
    if not runs:
        return None
    return (max(r.created + r.wall_seconds for r in runs) - min(r.created for r in runs)) / 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="Experiments, built-in names or files (default: every built-in one).")
    parser.add_argument("--scale", default="quick")
    parser.add_argument("--storage", default=None)
    parser.add_argument("--gpus", default=None)
    args = parser.parse_args()
    resnas = str(Path(sys.executable).with_name("resnas"))
    for name in args.names or builtin_experiments():
        label = Path(name).stem if name.endswith((".yaml", ".yml")) else name  # a file: named by its stem
        base = RESULTS / f"experiment-{label}-{args.scale}"
        extra = (["--storage", args.storage] if args.storage else []) + (["--gpus", args.gpus] if args.gpus else [])
        command = [resnas, "experiment", "run", name, "--scale", args.scale, *extra]
        started = time.time()
        ran = subprocess.run([*command, "--plot", f"{base}.png", "--json"], capture_output=True, text=True)
        if ran.returncode:
            sys.exit(f"{name}: {ran.stderr.strip().splitlines()[-1] if ran.stderr.strip() else ran.returncode}")
        report = json.loads(ran.stdout)
        text = subprocess.run(
            [resnas, "experiment", "report", name, "--scale", args.scale, *extra[:2]],
            capture_output=True,
            text=True,
            env={"COLUMNS": "220", "PATH": ""},
        ).stdout
        Path(f"{base}.txt").write_text(text)
        print(text)
        figures = {
            "verdict": report["verdict"],
            "verdicts": report["verdicts"],
            "training_minutes": span_minutes(report["study"], args.storage),
            "this_call_minutes": (time.time() - started) / 60,
            "arms": [{k: v for k, v in a.items() if k not in ("curves", "values")} for a in report["arms"]],
        }
        refinements = report["experiment"].get("refinements")
        if refinements:  # what refining found, per refine arm (its models' values are in the study)
            figures["refinements"] = {a: {k: v for k, v in f.items() if k != "models"} for a, f in refinements.items()}
        path = write(f"experiment-{label}-{args.scale}", figures, " ".join(["resnas", *command[1:]]))
        print(f"wrote {path}, {base}.png, {base}.txt")


if __name__ == "__main__":
    main()
