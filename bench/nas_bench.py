"""Does resnas's search find a better net than ResNet-20, at no more FLOPs, faster than random trials?

The protocol, fixed before any result was seen (Lindauer & Hutter's checklist):
- Data: Fashion-MNIST (real, offline); 5,000 validation images carved from the training split (seed 0),
  the same for every method; the 10,000 test images only for the final verdict.
- Space and budget: `small-resnext`; the budget is ResNet-20 fitted to 1 channel at 28 px (31,112,896
  FLOPs), so no winner has more FLOPs than the hand pick.
- Proxy: each candidate trains on the same seeded class-balanced 2,000-image subset for 3 epochs (the
  `fast` recipe, training seed = pipeline seed; EcoNAS: more images, fewer epochs).
- Methods, each in a SQLite file of its own (nothing reused across methods or seeds):
    resnas         the new default: TPE after a feasible random start-up, ASHA, zoo references first
    resnas-no-ref  the same without references
    random-asha    uniform over the untried nets under the budget, ASHA
    random         the same without pruning
    old-default    Optuna's TPE as it is with Hyperband (resnas's default before this benchmark)
- Equal compute: every search trains 40 x 3 x 2,000 = 240,000 proxy images (epochs actually trained,
  pruned trials counting what they trained, references included); a search resumes with more trials
  until it has, and its anytime curve is cut at that compute. Pipeline seeds 0, 1, 2 (sampler seed and
  proxy training seed).
- Final verdict: each method's top 2 by proxy are re-trained by `finalize` with the `default` recipe for
  10 epochs on the whole training split (55,000 images: 60,000 less the 5,000 validation ones), training
  seeds 0 and 1, and evaluated on the test split; the winner is the best by final *validation* mean.
  ResNet-20 (the same fitted net) goes through the very same finalize. Reported: test mean +- sd,
  McNemar on the 10,000 test images between each winner and ResNet-20 (discordant counts pooled over the
  paired training seeds), P(winner > ResNet-20) over (pipeline seed, training seed) pairs, FLOPs,
  params, end-to-end seconds.
- Target (the issue's): the default's winner beats ResNet-20 at <= its FLOPs and beats random search's
  winner (random, same compute) in >= 2 of 3 pipeline seeds.

    python bench/nas_bench.py [--phase search|final|all] [--seeds 0,1,2] [--methods resnas,random,...]
        [--work DIR] [--minutes M] [--gpus 0] [--scale 1.0]

Everything resumes: run it again with the same --work and it trains only what is missing. The study
files of the runs reported so far are kept in bench/results/nas-bench-studies/ (SQLite, a few hundred
KB each, with seconds.json and the log), because a session's --work folder does not outlive it; to go
on from them: `mkdir -p W && cp bench/results/nas-bench-studies/* W/ && python bench/nas_bench.py --work W`,
and copy the files back (`sqlite3 W/X.db ".backup bench/results/nas-bench-studies/X.db"`) when you stop.
--minutes starts no search trial and no final re-training after M minutes (one under way runs to its
end); the figures written are then marked partial. --scale multiplies the proxy compute (for a quick
look on a GPU: --scale 0.25); a scaled run is not the protocol.

Protocol 2 (`--protocol 2`), declared on 2026-12-07 before any of its runs, after protocol 1 found the
default's proxy-phase edge did not survive full training and measured why (its proxy's Kendall tau with
final test accuracy was 0.14 over 12 re-trained nets; bench/proxy_fidelity.py). Everything above holds
(data, space, budget, validation images, seeds, final verdict, report, target), except:
- Proxy: 5,000 class-balanced images x 5 epochs (`fast`), `resnas search`'s own CPU default, the proxy
  bench/proxy_fidelity.py's declared rule kept (Kendall 0.38 on the same nets). Equal compute: 40 x 5 x
  5,000 = 1,000,000 proxy images a search.
- Two more methods, to say whether the default's proxy edge is its references or its sampler:
    random-asha-ref  random + ASHA with the zoo references first
    hyperband-ref    the default's TPE (feasible start-up) with Hyperband, the zoo references first
  A partial run reaches them in this order: resnas, random, random-asha-ref, hyperband-ref, random-asha,
  resnas-no-ref, old-default.
- Its own work folder (default /work/nas-bench-2; ResNet-20's proxy and final runs there too) and
  results (bench/results/nas-bench-2-cpu.json, nas-bench-2-anytime.png, nas-bench-2-fidelity.png); run
  from a worktree frozen at the commit that declared it, as protocol 1 was.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import write
from nas_bench_fidelity import plot_fidelity, proxy_fidelity, retrained
from nas_bench_report import plot_anytime, summarise

import nas_res
from nas_res import cost, load_space, zoo
from nas_res.results import Store
from nas_res.training.recipe import PRESETS

DATASET, SPACE, VAL, SPLIT_SEED = "fashion-mnist", "small-resnext", 5000, 0
PROXY_TRIALS = 40
TOP, FINAL_SEEDS, FINAL_EPOCHS = 2, 2, 10
METHODS = {
    "resnas": {"sampler": "tpe", "pruner": "asha", "reference": True},
    "random": {"sampler": "random", "pruner": "none", "reference": False},
    "random-asha": {"sampler": "random", "pruner": "asha", "reference": False},
    "resnas-no-ref": {"sampler": "tpe", "pruner": "asha", "reference": False},
    "old-default": {"sampler": "optuna-tpe", "pruner": "hyperband", "reference": False},
    "random-asha-ref": {"sampler": "random", "pruner": "asha", "reference": True},
    "hyperband-ref": {"sampler": "tpe", "pruner": "hyperband", "reference": True},
}
FIRST, LAST = ("resnas", "random"), ("random-asha", "resnas-no-ref", "old-default")
PROTOCOLS = {  # methods in the order a partial run reaches them: the target's two first
    1: {"images": 2000, "epochs": 3, "methods": FIRST + LAST},
    2: {"images": 5000, "epochs": 5, "methods": FIRST + ("random-asha-ref", "hyperband-ref") + LAST},
}
BASELINE = "resnet20_cifar"


def log(*parts: object) -> None:
    print(time.strftime("%H:%M:%S"), *parts, flush=True)


def baseline_arch():
    """ResNet-20 as the space builds it (1 channel, 28 px, 10 classes): the net the search races."""
    space = load_space(SPACE)
    params = space.params_of(zoo.get(BASELINE))
    assert params is not None, f"{BASELINE} is a point of {SPACE}"
    from optuna.trial import FixedTrial

    return space.suggest(FixedTrial(params))


def runs_of(storage: str, study: str) -> list:
    store = Store(storage, must_exist=False)
    try:
        return store.runs(study) if study in store.study_names() else []
    finally:
        store.dispose()


def trained_images(runs: list, images: int) -> int:
    return sum(r.epochs for r in runs if not r.reused) * images


def anytime(runs: list, images: int, cap: int) -> list[list[float]]:
    """(cumulative proxy images, incumbent's proxy val %) after each trained run, in trial order, up to `cap`."""
    points, spent, best = [], 0, -math.inf
    for r in sorted(runs, key=lambda r: r.trial):
        if r.reused or r.epochs == 0:
            continue
        spent += r.epochs * images
        if spent > cap:
            break
        if r.status.ranks and r.best_val_acc is not None:
            best = max(best, r.best_val_acc)
        if best > -math.inf:
            points.append([spent, best])
    return points


class Clock:
    """Seconds spent per (seed, method, phase), kept in the work folder so that resumed runs add up."""

    def __init__(self, work: Path):
        self.path = work / "seconds.json"
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {}

    def add(self, key: str, seconds: float) -> None:
        self.data[key] = self.data.get(key, 0.0) + seconds
        self.path.write_text(json.dumps(self.data, indent=1))

    def get(self, key: str) -> float:
        return self.data.get(key, 0.0)


def common(args, seed: int) -> dict:
    return {
        "space": SPACE,
        "budget": str(args.budget),
        "dataset": DATASET,
        "val_size": VAL,
        "split_seed": SPLIT_SEED,
        "train_size": args.proxy_images,
        "recipe": PRESETS["fast"].replace(seed=seed),
        "epochs": args.proxy_epochs,
        "seed": seed,
        "gpus": args.gpus,
        "keep_checkpoints": "best:2",
    }


def search(args, work: Path, clock: Clock, seed: int, method: str, deadline: float) -> bool:
    """One method's search at one seed until it has trained its compute (True), or time ran out."""
    storage, cap = f"sqlite:///{work / f's{seed}-{method}.db'}", args.cap
    m = METHODS[method]
    while True:
        runs = runs_of(storage, method)
        spent = trained_images(runs, args.proxy_images)
        if spent >= cap:
            return True
        left = deadline - time.time()
        if left < 60:
            return False
        counted = sum(1 for r in runs if r.status.counts)
        more = max(1, math.ceil((cap - spent) / (args.proxy_epochs * args.proxy_images)))
        log(f"seed {seed} {method}: {spent:,} of {cap:,} proxy images trained; {more} more trial(s)")
        started = time.time()
        state = nas_res.run_search(
            **common(args, seed),
            study=method,
            storage=storage,
            checkpoints=str(work / f"s{seed}-{method}-ckpt"),
            trials=counted + more,
            timeout=left,
            sampler=m["sampler"],
            pruner=m["pruner"],
            reference=None if m["reference"] else False,
        )
        clock.add(f"{seed}/{method}/search", time.time() - started)
        if state.stopped_by and state.stopped_by != "timeout":
            log(f"seed {seed} {method}: stopped: {state.stopped_by}")
            return True


def final(args, work: Path, clock: Clock, seed: int | None, method: str, deadline: float) -> bool:
    """`finalize` a study (a method's search at a seed, or the baseline's one-trial proxy study); False when
    the deadline came first (a re-training under way runs to its end; the rest waits for the next run)."""
    left = deadline - time.time()
    if left < 60:
        return False
    study = method if seed is not None else "baseline"
    db = f"s{seed}-{method}.db" if seed is not None else "baseline.db"
    storage = f"sqlite:///{work / db}"
    started = time.time()
    done = nas_res.finalize_study(
        study,
        top=TOP if seed is not None else 1,
        seeds=FINAL_SEEDS,
        recipe="default",
        epochs=FINAL_EPOCHS,
        train_size="all",
        test=True,
        storage=storage,
        checkpoints=str(work / f"{db[:-3]}-final-ckpt"),
        gpus=args.gpus,
        keep_checkpoints="best:2",
        reference=False,  # the protocol, fixed before its runs: ResNet-20 is re-trained once, as `baseline`
        timeout=None if math.isinf(left) else left,
    )
    if done["state"].trial_seconds:  # a visit that re-trained nothing (a finished study) costs nothing
        clock.add(f"{seed if seed is not None else 'baseline'}/{method}/final", time.time() - started)
    for line in done["notes"]:  # e.g. a re-trained net left untested for want of its weights
        log(f"{db} {study}: {line}")
    return done["state"].stopped_by != "timeout"


def baseline_proxy(args, work: Path, clock: Clock) -> None:
    """ResNet-20 as a one-trial study on the seed-0 proxy, so that `finalize` can re-train it as it does the rest."""
    storage = f"sqlite:///{work / 'baseline.db'}"
    if runs_of(storage, "baseline"):
        return
    started = time.time()
    nas_res.train_archs(
        [baseline_arch()],
        study="baseline",
        seeds=(0,),
        storage=storage,
        checkpoints=str(work / "baseline-ckpt"),
        **common(args, 0),
    )
    clock.add("baseline/proxy", time.time() - started)


def settings(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, with the protocol's proxy, methods, compute, work folder and results name filled in."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--protocol", type=int, choices=sorted(PROTOCOLS), default=1, help="1 (2,000 x 3) or 2 (5,000 x 5)")
    p.add_argument("--phase", choices=("search", "final", "all"), default="all")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--methods", default=None, help="a subset, in the protocol's order by default")
    p.add_argument("--work", default=None, help="/work/nas-bench (protocol 1), /work/nas-bench-2 (2)")
    p.add_argument("--minutes", type=float, default=None, help="start no trial after this long")
    p.add_argument("--gpus", default=None, help="GPU indices, e.g. 0")
    p.add_argument("--scale", type=float, default=1.0, help="x the proxy compute (1.0 is the protocol)")
    p.add_argument("--trials", type=int, default=PROXY_TRIALS, help="trials' worth of compute a search (40)")
    p.add_argument("--name", default=None, help="results file name (bench/results/NAME-cpu|gpu.json)")
    args = p.parse_args(argv)
    proto = PROTOCOLS[args.protocol]
    suffix = "" if args.protocol == 1 else f"-{args.protocol}"
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.methods = args.methods.split(",") if args.methods else list(proto["methods"])
    unknown = [m for m in args.methods if m not in proto["methods"]]
    if unknown:
        p.error(f"unknown method(s) {unknown} in protocol {args.protocol}; known: {', '.join(proto['methods'])}")
    args.work = args.work or f"/work/nas-bench{suffix}"
    args.name = args.name or f"nas-bench{suffix}"
    args.gpus = [int(g) for g in args.gpus.split(",")] if args.gpus else None
    args.proxy_epochs = proto["epochs"]
    args.proxy_images = max(64, round(proto["images"] * args.scale))
    args.cap = args.trials * args.proxy_epochs * args.proxy_images
    args.final_nets, args.final_seeds = TOP, FINAL_SEEDS
    args.budget = cost(baseline_arch().replace(in_channels=1, classes=10)).flops
    return args


def main() -> None:
    args = settings()
    seeds, methods = args.seeds, args.methods
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    clock = Clock(work)
    deadline = time.time() + args.minutes * 60 if args.minutes else math.inf
    log(f"protocol {args.protocol}; budget {args.budget:,} FLOPs ({BASELINE}); proxy {args.proxy_images} images x "
        f"{args.proxy_epochs} epochs; compute {args.cap:,} images a search; work {work}")  # fmt: skip
    complete = True
    if args.phase in ("search", "all"):
        for seed in seeds:  # seed-major: a partial run has every method at the first seeds
            for method in methods:
                complete &= search(args, work, clock, seed, method, deadline)
    if args.phase in ("final", "all") and complete and time.time() < deadline:
        baseline_proxy(args, work, clock)
        for seed, method in [(None, BASELINE)] + [(s, m) for s in seeds for m in methods]:
            if not final(args, work, clock, seed, method, deadline):
                break
    figures = summarise(args, work, clock, seeds, methods, runs_of, anytime)
    results = Path(__file__).resolve().parent / "results"
    png = plot_anytime(figures, results / f"{args.name}-anytime.png")
    figures["picture"] = str(png.name)
    points = retrained(work, seeds, methods, runs_of)
    if points:  # the proxy's rank fidelity over what the final phase re-trained so far
        figures["proxy_fidelity"] = {**proxy_fidelity(points), "points": points}
        fid = figures["proxy_fidelity"]
        proxy = f"{args.proxy_epochs} epochs on {args.proxy_images:,} images"
        png_path = results / f"{args.name}-fidelity.png"
        fid["picture"] = plot_fidelity(points, fid, png_path, figures["partial"], proxy).name
    command = "python bench/nas_bench.py " + " ".join(sys.argv[1:])
    log(f"wrote {write(args.name, figures, command)} and {png}")


if __name__ == "__main__":
    main()
