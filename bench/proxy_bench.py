"""Does resnas's search find a better network than a hand-picked one, at equal compute, and can its
ranking be trusted? Fashion-MNIST (real data, offline), one FLOPs budget: the baseline's own.

Per pipeline seed s (the search's sampler seed and the proxy's training seed):
 1. "tpe": resnas's default search (TPE sampler + Hyperband pruning) on the proxy (a seeded,
    class-balanced subset of the training split, few epochs), then `finalize_study` (re-train the top K
    with the final recipe on the final training set, evaluate on the test split).
 2. "random": random sampling without pruning, same space, budget, proxy and recipe, given as many
    trials as make it train as many proxy epochs as the TPE search did (within one trial: the count of
    epochs the runs actually trained, pruned trials counting what they trained); then the same finalize.
 3. "baseline": the hand-picked zoo net (resnet20_cifar, fitted to the data's channels and the space's
    reference resolution), trained as a one-trial study on the same proxy and then re-trained by the very
    same `finalize_study` (same recipe, same training seeds, same test evaluation). Its re-training does
    not depend on s (finalize trains seeds 0..S-1 whatever the search seed), so it is trained once; it
    takes --baseline-seeds seeds, the first --final-seeds of which pair with the searches' finals.
The budget is the baseline's FLOPs at the space's reference resolution, so any winner has no more FLOPs.
Every search (and the baseline) has its own SQLite file: nothing is reused across methods or seeds.

The verdict is the issue's, stated before any number: the TPE winner's test accuracy (mean over the
pipeline seeds) is above the baseline's at the same training seeds, at no more FLOPs, and above the
random-search winner's in at least 2 of the pipeline seeds (a tie is not a win). The Zalando benchmark
rows (README of Debian's dataset-fashion-mnist) are printed beside ours: full-length trainings, mostly
with augmentation, not comparable runs.

    python bench/proxy_bench.py [--space plain-vs-residual] [--proxy-images 5000] [--proxy-epochs 3]
        [--trials 12] [--top 3] [--final-epochs 10] [--final-images all] [--final-seeds 1]
        [--baseline-seeds 3] [--seeds 3] [--work DIR]

Sizes default to the issue's intent; on a 2-core CPU the defaults take many hours (a full-split epoch of a
~30 MFLOPs net is 1-2 min there). Give --work to keep (and resume) the studies; a rerun with the same
options trains nothing again.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe, write

import nas_res
from nas_res import Budget, Recipe, cost, load_space, zoo
from nas_res.data import parse_train_size, parse_val_size
from nas_res.results import Store
from nas_res.results.fidelity import verdict as fidelity_verdict

DATASET = "fashion-mnist"
ZALANDO_README = Path("/usr/share/doc/dataset-fashion-mnist/README.md.gz")
# (label, how to find the row in the README's table), in the order printed; "2 Conv" rows give a range
ZALANDO_ROWS = (
    ("ResNet18", r"^ResNet18\b"),
    ("MobileNet", r"^MobileNet\b"),
    ("DenseNet-BC 768K params", r"^DenseNet-BC 768K"),
    ("WRN-28-10", r"^WRN-28-10$"),
    ("WRN40-4 8.9M params", r"^WRN40-4"),
)


def log(*parts: object) -> None:
    print(time.strftime("%H:%M:%S"), *parts, flush=True)


def trained_epochs(storage: str, study: str) -> dict:
    """What a study's runs actually trained: epochs (pruned runs count theirs), runs by status."""
    store = Store(storage)
    try:
        runs = store.runs(study)
    finally:
        store.dispose()
    by_status: dict[str, int] = {}
    for r in runs:
        by_status[r.status.value] = by_status.get(r.status.value, 0) + 1
    return {
        "epochs": sum(r.epochs for r in runs if not r.reused),
        "runs": len(runs),
        "reused": sum(1 for r in runs if r.reused),
        "by_status": by_status,
        "train_seconds": sum(r.train_seconds or 0.0 for r in runs if not r.reused),
    }


def test_by_seed(storage: str, study: str) -> dict[int, float]:
    """The final study's test accuracy per training seed (one architecture: the baseline's)."""
    store = Store(storage)
    try:
        runs = store.runs(f"{study}.final")
    finally:
        store.dispose()
    return {int(r.recipe.get("seed", 0)): r.test_acc for r in runs if r.test_acc is not None}


def progress(label: str):
    """An on_update callback printing one line per finished trial."""
    seen = {"n": -1}

    def on_update(state) -> None:
        if state.counted != seen["n"]:
            seen["n"] = state.counted
            best = f", best val {state.best.value:.2f}% ({state.best.summary})" if state.best else ""
            log(f"  {label}: {state.counted}/{state.target} trials{best}")

    return on_update


def final_rows(result: dict) -> list[dict]:
    keep = (
        "final_rank", "proxy_rank", "proxy_val_acc", "summary", "arch_key", "flops", "params", "seeds",
        "val_mean", "val_sd", "test_mean", "test_sd", "tested", "epochs",
    )  # fmt: skip
    return [{k: r.get(k) for k in keep} for r in result["final"]]


def fidelity_figures(fid: dict) -> dict:
    out = {"n": fid["n"]}
    for name in ("proxy", "flops", "params"):
        f = fid[name]
        out[name] = {k: f.get(k) for k in ("n", "spearman", "spearman_p", "kendall", "kendall_p", "note")}
    out["verdict"] = fidelity_verdict(fid)
    return out


def search_and_finalize(args, common: dict, work: Path, seed: int, method: str, trials: int) -> dict:
    """One search on the proxy and its finalize, in a SQLite file of its own."""
    sampler, pruner = {"tpe": ("tpe", "hyperband"), "random": ("random", "none")}[method]
    storage = f"sqlite:///{work / f's{seed}-{method}.db'}"
    started = time.perf_counter()
    state = nas_res.run_search(
        **common,
        study=method,
        storage=storage,
        checkpoints=str(work / f"s{seed}-{method}-ckpt"),
        trials=trials,
        recipe=Recipe(seed=seed),
        epochs=args.proxy_epochs,
        sampler=sampler,
        pruner=pruner,
        seed=seed,
        on_update=progress(f"seed {seed} {method} search"),
    )
    search_s = time.perf_counter() - started
    spent = trained_epochs(storage, method)
    log(
        f"seed {seed} {method}: {spent['runs']} trials trained {spent['epochs']} proxy epochs in {search_s:.0f} s "
        f"{spent['by_status']}, counts {state.counts}{', ' + state.stopped_by if state.stopped_by else ''}"
    )
    board = nas_res.leaderboard(method, storage=storage, top=args.top)
    started = time.perf_counter()
    fin = nas_res.finalize_study(
        method,
        top=args.top,
        seeds=args.final_seeds,
        epochs=args.final_epochs,
        train_size=args.final_images,
        test=True,
        storage=storage,
        checkpoints=str(work / f"s{seed}-{method}-final-ckpt"),
        threads=args.threads,
        on_update=progress(f"seed {seed} {method} finalize"),
    )
    final_s = time.perf_counter() - started
    rows = final_rows(fin)
    winner = rows[0] if rows else None
    if winner:
        log(
            f"seed {seed} {method} winner: {winner['summary']}, {winner['flops'] / 1e6:.2f} MFLOPs, "
            f"{winner['params'] / 1e3:.1f} K params, final val {winner['val_mean']:.2f}%, "
            f"test {winner['test_mean']:.2f}% "
            f"(finalize {final_s:.0f} s)"
        )
    return {
        "method": method,
        "sampler": sampler,
        "pruner": pruner,
        "trials": trials,
        "proxy_epochs_trained": spent["epochs"],
        "proxy_runs": spent,
        "search_counts": state.counts,
        "stopped_by": state.stopped_by,
        "proxy_top": [
            {k: r.get(k) for k in ("rank", "summary", "val_acc", "flops", "params", "epochs")} for r in board
        ],
        "final": rows,
        "winner": winner,
        "fidelity": fidelity_figures(fin["fidelity"]),
        "wall_s": {"search": search_s, "finalize": final_s},
        "storage": storage,
    }


def baseline(args, common: dict, work: Path, arch) -> dict:
    """The hand-picked net as a one-trial study on the same proxy, then the same finalize."""
    storage = f"sqlite:///{work / 'baseline.db'}"
    started = time.perf_counter()
    nas_res.train_archs(
        [arch],
        **common,
        study="baseline",
        seeds=(0,),
        storage=storage,
        checkpoints=str(work / "baseline-ckpt"),
        recipe=Recipe(seed=0),
        epochs=args.proxy_epochs,
        on_update=progress("baseline proxy"),
    )
    proxy_s = time.perf_counter() - started
    started = time.perf_counter()
    fin = nas_res.finalize_study(
        "baseline",
        top=1,
        seeds=args.baseline_seeds,
        epochs=args.final_epochs,
        train_size=args.final_images,
        test=True,
        storage=storage,
        checkpoints=str(work / "baseline-final-ckpt"),
        threads=args.threads,
        on_update=progress("baseline finalize"),
    )
    final_s = time.perf_counter() - started
    rows = final_rows(fin)
    tests = test_by_seed(storage, "baseline")
    paired = [tests[k] for k in range(args.final_seeds) if k in tests]
    row = rows[0]
    out = {
        "arch": row["summary"],
        "flops": row["flops"],
        "params": row["params"],
        "final": rows,
        "test_by_seed": tests,
        "test_mean": statistics.mean(tests.values()) if tests else None,
        "test_sd": statistics.stdev(tests.values()) if len(tests) > 1 else None,
        "paired_test": statistics.mean(paired) if paired else None,
        "paired_seeds": list(range(args.final_seeds)),
        "wall_s": {"proxy": proxy_s, "finalize": final_s},
        "storage": storage,
    }
    log(
        f"baseline {row['summary']}: test by training seed {tests}; paired (seeds 0..{args.final_seeds - 1}) "
        f"{out['paired_test']:.2f}% (proxy {proxy_s:.0f} s, finalize {final_s:.0f} s)"
    )
    return out


def zalando() -> dict:
    """The benchmark rows of the dataset's README (as shipped by the Debian package)."""
    if not ZALANDO_README.exists():
        return {"source": None, "rows": [], "note": f"{ZALANDO_README} not found"}
    rows = []
    with gzip.open(ZALANDO_README, "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()
    for line in lines:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and re.fullmatch(r"0\.\d+", cells[2]):
            rows.append({"classifier": cells[0], "preprocessing": cells[1], "test_acc": 100 * float(cells[2])})
    picked = []
    two_conv = [r for r in rows if r["classifier"].startswith("2 Conv")]
    if two_conv:
        accs = [r["test_acc"] for r in two_conv]
        picked.append(
            {
                "classifier": f"2-conv CNNs ({len(two_conv)} rows)",
                "preprocessing": "various (none to flips/rotation)",
                "test_acc": None,
                "test_acc_range": [min(accs), max(accs)],
            }
        )
    for label, pattern in ZALANDO_ROWS:
        hit = next((r for r in rows if re.search(pattern, r["classifier"])), None)
        if hit:
            picked.append({**hit, "label": label})
    return {
        "source": str(ZALANDO_README),
        "rows": picked,
        "note": "submitted results the maintainers did not re-run; full-length trainings (tens to hundreds of "
        "epochs) on all 60,000 training images, mostly with augmentation: not comparable runs",
    }


def summarise(args, base: dict | None, seeds: list[dict]) -> dict:
    """Per method: test accuracy of the winner over pipeline seeds; the verdict."""
    methods = {}
    for method in ("tpe", "random"):
        done = [s[method] for s in seeds if s.get(method) and s[method].get("winner")]
        tests = [d["winner"]["test_mean"] for d in done if d["winner"]["test_mean"] is not None]
        methods[method] = {
            "seeds": [s["seed"] for s in seeds if s.get(method) and s[method].get("winner")],
            "winner_test": tests,
            "test_mean": statistics.mean(tests) if tests else None,
            "test_sd": statistics.stdev(tests) if len(tests) > 1 else None,
            "winner_flops": [d["winner"]["flops"] for d in done],
            "winner_params": [d["winner"]["params"] for d in done],
            "winners": [d["winner"]["summary"] for d in done],
            "proxy_epochs": [d["proxy_epochs_trained"] for d in done],
            "trials": [d["trials"] for d in done],
            "wall_search_s": [d["wall_s"]["search"] for d in done],
            "wall_finalize_s": [d["wall_s"]["finalize"] for d in done],
        }
    out: dict = {"methods": methods}
    tpe = methods["tpe"]
    pairs = [
        (s["seed"], s["tpe"]["winner"]["test_mean"], s["random"]["winner"]["test_mean"])
        for s in seeds
        if s.get("tpe", {}).get("winner") and s.get("random", {}).get("winner")
    ]
    wins = sum(1 for _, t, r in pairs if t > r)
    out["tpe_beats_random"] = {"seeds_won": wins, "seeds_compared": len(pairs), "target": "at least 2 of 3"}
    if base and base.get("paired_test") is not None and tpe["test_mean"] is not None:
        b = base["paired_test"]
        out["tpe_vs_baseline"] = {
            "tpe_mean": tpe["test_mean"],
            "baseline_paired": b,
            "difference_points": tpe["test_mean"] - b,
            "seeds_above_baseline": sum(1 for t in tpe["winner_test"] if t > b),
            "max_winner_flops": max(tpe["winner_flops"]),
            "baseline_flops": base["flops"],
            "baseline_training_seed_sd": base["test_sd"],
        }
        beats = tpe["test_mean"] > b and max(tpe["winner_flops"]) <= base["flops"]
        complete = len(pairs) == args.seeds and len(tpe["winner_test"]) == args.seeds
        out["target_met"] = bool(beats and wins >= 2) if complete else None
        target = {True: "MET", False: "NOT MET", None: "not judged (incomplete)"}[out["target_met"]]
        sd = base["test_sd"]
        out["verdict"] = (
            f"TPE winner {tpe['test_mean']:.2f}% (mean of {len(tpe['winner_test'])} seeds) vs baseline {b:.2f}% at "
            f"the same training seeds: {'above' if tpe['test_mean'] > b else 'not above'} ({tpe['test_mean'] - b:+.2f} "
            f"points{f'; the baseline varies by sd {sd:.2f} over training seeds' if sd is not None else ''}), "
            f"at {max(tpe['winner_flops']) / 1e6:.2f} vs {base['flops'] / 1e6:.2f} MFLOPs; TPE beats random in "
            f"{wins} of {len(pairs)} seeds (target: 2 of 3); target {target}"
        )
    return out


def fmt_acc(mean: float | None, sd: float | None = None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.2f}%" if sd is None else f"{mean:.2f} ± {sd:.2f}%"


def print_tables(figures: dict) -> None:
    print()
    print("per pipeline seed (winner = best final validation accuracy among the re-trained top K):")
    head = (
        f"{'seed':>4} {'method':<8} {'trials':>6} {'proxy ep':>8} {'winner':<38} {'MFLOPs':>7} {'params':>8} "
        f"{'val':>7} {'test':>7} {'search s':>8} {'final s':>8}"
    )
    print(head)
    for s in figures["seeds"]:
        for method in ("tpe", "random"):
            d = s.get(method)
            if not d or not d.get("winner"):
                continue
            w = d["winner"]
            print(
                f"{s['seed']:>4} {method:<8} {d['trials']:>6} {d['proxy_epochs_trained']:>8} {w['summary']:<38} "
                f"{w['flops'] / 1e6:>7.2f} {w['params'] / 1e3:>7.1f}K {w['val_mean']:>6.2f}% {w['test_mean']:>6.2f}% "
                f"{d['wall_s']['search']:>8.0f} {d['wall_s']['finalize']:>8.0f}"
            )
    b = figures.get("baseline")
    summary = figures.get("summary", {})
    print()
    print("test accuracy (mean ± sd over pipeline seeds; baseline: over its training seeds):")
    for method in ("tpe", "random"):
        m = summary.get("methods", {}).get(method)
        if m and m["test_mean"] is not None:
            print(
                f"  {method:<28} {fmt_acc(m['test_mean'], m['test_sd']):>16}  per seed "
                + ", ".join(f"{t:.2f}" for t in m["winner_test"])
                + f"; winners {', '.join(m['winners'])}"
            )
    if b:
        print(
            f"  {'baseline ' + figures['config']['baseline']:<28} {fmt_acc(b['test_mean'], b['test_sd']):>16}  "
            f"per training seed {b['test_by_seed']}; {b['arch']}, {b['flops'] / 1e6:.2f} MFLOPs, "
            f"{b['params'] / 1e3:.1f} K params; paired with the finals (seeds {b['paired_seeds']}): "
            f"{b['paired_test']:.2f}%"
        )
    for row in figures.get("zalando", {}).get("rows", []):
        acc = (
            f"{row['test_acc_range'][0]:.1f}-{row['test_acc_range'][1]:.1f}%"
            if row.get("test_acc_range")
            else f"{row['test_acc']:.1f}%"
        )
        print(f"  Zalando: {row.get('label', row['classifier']):<19} {acc:>16}  ({row['preprocessing']})")
    if figures.get("zalando", {}).get("rows"):
        print(f"  (Zalando rows: {figures['zalando']['note']})")
    print()
    print("fidelity of the proxy (finalize's figures; rank correlations over the re-trained top K):")
    for s in figures["seeds"]:
        for method in ("tpe", "random"):
            d = s.get(method)
            if d and d.get("fidelity"):
                f = d["fidelity"]

                def rc(name: str, f: dict = f) -> str:
                    x = f[name]
                    if x["spearman"] is None:
                        return f"{name} n/a"
                    return f"{name} rho {x['spearman']:.2f} tau {x['kendall']:.2f}"

                print(f"  seed {s['seed']} {method:<7} n={f['n']}: {rc('proxy')}; {rc('flops')}; {rc('params')}")
                print(f"      {f['verdict']}")
    if summary.get("verdict"):
        print()
        print("verdict:", summary["verdict"])


def library_fingerprint() -> dict:
    """Which library ran: its version, folder and a hash of its sources (the tree may be uncommitted)."""
    root = Path(nas_res.__file__).resolve().parent
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(p.read_bytes())
    return {"version": nas_res.__version__, "path": str(root), "sources_sha256": h.hexdigest()[:16]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", default="plain-vs-residual", help="built-in space or YAML file")
    p.add_argument("--baseline", default="resnet20_cifar", help="zoo name or arch file")
    p.add_argument("--proxy-images", default="5000", help="training subset of the proxy (an int, a fraction, all)")
    p.add_argument("--proxy-epochs", type=int, default=3)
    p.add_argument("--trials", type=int, default=12, help="trials of the TPE search; random gets equal epochs")
    p.add_argument("--top", type=int, default=3, help="architectures re-trained by finalize")
    p.add_argument("--final-epochs", type=int, default=10)
    p.add_argument("--final-images", default="all", help="training images of the final re-training")
    p.add_argument("--final-seeds", type=int, default=1, help="training seeds per re-trained architecture")
    p.add_argument("--baseline-seeds", type=int, default=3, help="training seeds of the baseline (>= final seeds)")
    p.add_argument("--val-size", type=parse_val_size, default=0.1)
    p.add_argument("--seeds", type=int, default=3, help="pipeline seeds 0..N-1")
    p.add_argument("--threads", type=int, default=None, help="torch threads per worker (default: resnas's)")
    p.add_argument("--work", help="folder for the studies' SQLite files and checkpoints (kept; rerun resumes)")
    p.add_argument("--name", default="proxy", help="results file bench/results/NAME-<cpu|gpu>.json")
    args = p.parse_args()
    args.proxy_images = parse_train_size(args.proxy_images)
    args.final_images = parse_train_size(args.final_images) or "all"
    args.baseline_seeds = max(args.baseline_seeds, args.final_seeds)
    command = "python bench/proxy_bench.py " + " ".join(sys.argv[1:])
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="resnas-proxy-"))
    work.mkdir(parents=True, exist_ok=True)

    space = load_space(args.space)
    _, base_arch = zoo.resolve_arch(args.baseline)
    data = nas_res.load_data(DATASET, val_size=args.val_size, train_size=args.proxy_images)
    base_arch = base_arch.replace(in_channels=data.channels, classes=data.classes, resolution=space.spec.resolution)
    base_cost = cost(base_arch)
    budget_text = f"{base_cost.flops}FLOPs"
    budget = Budget.parse(budget_text)
    fitting = [a for a in space.enumerate() if budget.excess(cost(a.replace(in_channels=data.channels))) <= 0]
    log(
        f"{DATASET}: {len(data.train):,} proxy training images, {len(data.val):,} validation; "
        f"baseline {args.baseline} = {base_arch.summary()}, "
        f"{base_cost.flops:,} FLOPs at {space.spec.resolution}x{space.spec.resolution}, {base_cost.params:,} params"
    )
    log(
        f"space {space.name}: {len(fitting)} of {space.size()} architectures within {budget.describe()}; work in {work}"
    )
    common = dict(
        space=args.space,
        budget=budget_text,
        dataset=DATASET,
        train_size=args.proxy_images,
        val_size=args.val_size,
        workers=1,
        threads=args.threads,
    )
    figures: dict = {
        "question": "does resnas's search (TPE + Hyperband on a proxy, then finalize) find a better network "
        "than a hand-picked one at no more FLOPs, and better than random search at equal proxy epochs?",
        "target": "TPE winner's test accuracy above the baseline's at no more FLOPs, and above random "
        "search's winner in at least 2 of 3 seeds",
        "complete": False,
        "config": {
            **{k: v for k, v in vars(args).items() if k != "work"},
            "dataset": DATASET,
            "budget": budget_text,
            "budget_described": budget.describe(),
            "baseline_arch": base_arch.summary(),
            "baseline_flops": base_cost.flops,
            "baseline_params": base_cost.params,
            "space_size": space.size(),
            "space_within_budget": len(fitting),
            "proxy_train_images": len(data.train),
            "val_images": len(data.val),
            "recipe": {**Recipe().to_dict(), "seed": "pipeline seed (proxy); finalize's 0..S-1 (final)"},
            "work": str(work),
        },
        "library": library_fingerprint(),
        "zalando": zalando(),
        "seeds": [],
        "wall_s": {},
    }
    del data
    started = time.perf_counter()

    def save() -> None:
        figures["summary"] = summarise(args, figures.get("baseline"), figures["seeds"])
        figures["wall_s"]["total"] = time.perf_counter() - started
        write(args.name, figures, command)

    figures["baseline"] = baseline(args, common, work, base_arch)
    save()
    for seed in range(args.seeds):
        entry: dict = {"seed": seed}
        figures["seeds"].append(entry)
        entry["tpe"] = search_and_finalize(args, common, work, seed, "tpe", args.trials)
        save()
        spent = entry["tpe"]["proxy_epochs_trained"]
        random_trials = max(1, round(spent / args.proxy_epochs))  # unpruned: proxy_epochs each
        log(f"seed {seed}: random search gets {random_trials} trials for TPE's {spent} proxy epochs")
        entry["random"] = search_and_finalize(args, common, work, seed, "random", random_trials)
        entry["epochs_difference"] = entry["random"]["proxy_epochs_trained"] - spent
        save()
    figures["complete"] = True
    save()
    print_tables(figures)
    print("machine:", describe())
    print("written:", write(args.name, figures, command))


if __name__ == "__main__":
    main()
