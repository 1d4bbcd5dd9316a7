"""Search benchmarks: orchestration overhead, Hyperband's savings, TPE against random sampling.

1. Overhead: near-empty trials (a few 4x4 synthetic images, one epoch) through the real coordinator
   and a worker process; per trial, the wall time from asking Optuna to the finished tell and stored
   run, minus the time the worker spent inside `train()`. Target: median <= 50 ms.
2. Pruning: the same small search on digits (bench/small-space.yaml, fixed seeds) with Hyperband and
   with no pruning: total trained epochs and the best validation accuracy each reached.
3. Samplers: best validation accuracy after N trials for TPE and random sampling, several seeds
   (no pruning, so only the sampler differs).
Every search has its own SQLite file, so no result is reused across them.

    python bench/search_bench.py [--trials 16] [--epochs 3] [--val-size 0.3] [--seeds 3] [--only overhead|searches]
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

from nas_res.data.splits import parse_val_size
from nas_res.results import Store
from nas_res.search import Coordinator, plan


def run(tmp: Path, name: str, **options):
    storage = f"sqlite:///{tmp / (name + '.sqlite')}"
    config, _ = plan({"study": name, "storage": storage, "checkpoints": str(tmp / name), **options})
    start = time.perf_counter()
    state = Coordinator(config).run()
    wall = time.perf_counter() - start
    runs = Store(storage).runs(name)
    best_so_far, best = [], 0.0
    for r in sorted(runs, key=lambda r: r.trial):
        best = max(best, r.best_val_acc or 0.0)
        best_so_far.append(best)
    return {
        "wall_seconds": wall,
        "trained_epochs": sum(r.epochs for r in runs if not r.reused),
        "best_val_acc": best,
        "best_so_far": best_so_far,
        "counts": state.counts,
        "overheads_ms": [1000 * o for o in state.overheads],
    }


def overhead(tmp: Path, trials: int) -> dict:
    o = run(
        tmp,
        "overhead",
        space="plain-vs-residual",
        dataset="synthetic:1x4x4:2:64",
        val_size=16,
        trials=trials,
        epochs=1,
        pruner="none",
        sampler="random",
    )
    ms = o["overheads_ms"]
    figures = {
        "trials": len(ms),
        "median_ms": statistics.median(ms),
        "p90_ms": statistics.quantiles(ms, n=10)[-1],
        "min_ms": min(ms),
        "max_ms": max(ms),
        "target_median_ms": 50,
        "note": "per trained trial: ask to stored run, minus the worker's time inside train()",
    }
    print(
        f"orchestration overhead per trial: median {figures['median_ms']:.1f} ms, p90 {figures['p90_ms']:.1f} ms "
        f"over {len(ms)} trained trials (target <= 50 ms)",
        flush=True,
    )
    return figures


def searches(tmp: Path, args) -> dict:
    common = dict(space=args.space, dataset="digits", trials=args.trials, epochs=args.epochs, val_size=args.val_size)
    results: dict = {"tpe+hyperband": [], "tpe+none": [], "random+none": []}
    for seed in range(args.seeds):
        for label in results:
            sampler, pruner = label.split("+")
            r = run(tmp, f"{label.replace('+', '-')}-{seed}", sampler=sampler, pruner=pruner, seed=seed, **common)
            results[label].append(r)
            print(
                f"seed {seed} {label:>14}: best val acc {r['best_val_acc']:.2f}%, trained epochs "
                f"{r['trained_epochs']}, {r['wall_seconds']:.0f} s, {r['counts']}",
                flush=True,
            )
    summary = {
        label: {
            "best_val_acc": [r["best_val_acc"] for r in rs],
            "mean_best_val_acc": statistics.mean(r["best_val_acc"] for r in rs),
            "trained_epochs": [r["trained_epochs"] for r in rs],
            "mean_trained_epochs": statistics.mean(r["trained_epochs"] for r in rs),
            "wall_seconds": [r["wall_seconds"] for r in rs],
            "best_so_far": [r["best_so_far"] for r in rs],
        }
        for label, rs in results.items()
    }
    for label, s in summary.items():
        print(
            f"{label:>14}: mean best val acc {s['mean_best_val_acc']:.2f}% {s['best_val_acc']}, "
            f"mean trained epochs {s['mean_trained_epochs']:.1f} {s['trained_epochs']}"
        )
    return {
        "space": Path(args.space).name,
        "dataset": "digits",
        "val_size": args.val_size,
        "trials": args.trials,
        "epochs": args.epochs,
        "seeds": args.seeds,
        "searches": summary,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--epochs", type=int, default=3, help="short enough that not every net saturates digits")
    p.add_argument("--val-size", type=parse_val_size, default=0.3, help="larger than the default 10%% split")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--overhead-trials", type=int, default=40)
    p.add_argument("--space", default=str(Path(__file__).resolve().parent / "small-space.yaml"))
    p.add_argument("--only", choices=("overhead", "searches"), help="run one part (results go to their own file)")
    args = p.parse_args()
    figures: dict = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if args.only != "searches":
            figures["overhead"] = overhead(tmp, args.overhead_trials)
        if args.only != "overhead":
            figures.update(searches(tmp, args))
    name = {"overhead": "search-overhead", "searches": f"search-{args.trials}trials"}.get(args.only, "search")
    print("machine:", describe())
    print("written:", write(name, figures, "python bench/search_bench.py " + " ".join(sys.argv[1:])))


if __name__ == "__main__":
    main()
