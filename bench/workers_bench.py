"""Does a CPU search with several workers train as fast per worker as one worker alone?

Runs the same small search (plain-vs-residual under 20 MFLOPs on digits, random sampler, no pruning)
with 1 worker and with N workers, each time with the default thread split (cores // workers, or
OMP_NUM_THREADS), and compares the median training seconds per epoch of a trial: the time a worker
spends in `train()` (Optuna and the coordinator excluded), from the run records. Each configuration
trains the same architectures (same sampler seed), so per-trial times compare like for like.

    python bench/workers_bench.py [--workers 2] [--trials 8] [--epochs 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe, write

from nas_res.results import Store
from nas_res.search import Coordinator, plan
from nas_res.training.threads import plan_threads


def one(workers: int, trials: int, epochs: int, folder: Path, threads: int | None = None) -> dict:
    """One search; per trial, the seconds in train() divided by its epochs."""
    name = f"w{workers}t{threads or 0}"
    storage = f"sqlite:///{folder / f'{name}.db'}"
    options = dict(space="plain-vs-residual", budget="20MFLOPs", dataset="digits", trials=trials, epochs=epochs)
    options |= dict(sampler="random", pruner="none", seed=0, workers=workers, storage=storage, study=name)
    options |= dict(threads=threads)
    config, _ = plan(options)
    started = time.perf_counter()
    Coordinator(config).run()
    wall = time.perf_counter() - started
    runs = [r for r in Store(storage).runs(config.study) if r.train_seconds and r.epochs]
    per_epoch = {r.arch_key: r.train_seconds / r.epochs for r in runs}
    return {
        "workers": workers,
        "threads_each": plan_threads(threads, workers),
        "trials": len(runs),
        "median_s_per_epoch": statistics.median(per_epoch.values()),
        "wall_s": wall,
        "per_arch": per_epoch,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--epochs", type=int, default=2)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        many = one(args.workers, args.trials, args.epochs, Path(tmp))
        share = many["threads_each"]
        alone_same = one(1, args.trials, args.epochs, Path(tmp), threads=share)  # the same threads, no neighbour
        alone = one(1, args.trials, args.epochs, Path(tmp))  # every core to itself

    def slowdown(base: dict) -> float | None:
        common = set(base["per_arch"]) & set(many["per_arch"])
        return statistics.median(many["per_arch"][k] / base["per_arch"][k] for k in common) if common else None

    figures = {
        "several": {k: v for k, v in many.items() if k != "per_arch"},
        "alone_same_threads": {k: v for k, v in alone_same.items() if k != "per_arch"},
        "alone_all_cores": {k: v for k, v in alone.items() if k != "per_arch"},
        # per architecture, a worker's time beside the others over its time alone (1.0: no slower)
        "slowdown_vs_alone_same_threads": slowdown(alone_same),
        "slowdown_vs_alone_all_cores": slowdown(alone),
    }
    for name in ("several", "alone_same_threads", "alone_all_cores"):
        f = figures[name]
        print(
            f"{name}: {f['workers']} worker(s) x {f['threads_each']} thread(s): median "
            f"{f['median_s_per_epoch']:.3f} s per epoch of a trial, {f['trials']} trials in {f['wall_s']:.1f} s"
        )
    for key in ("slowdown_vs_alone_same_threads", "slowdown_vs_alone_all_cores"):
        if figures[key] is not None:
            print(f"{key}: {figures[key]:.2f}x")
    command = "python bench/workers_bench.py " + " ".join(sys.argv[1:])
    print(write("workers", figures, command.strip()))
    print(describe()["cpu"])


if __name__ == "__main__":
    main()
