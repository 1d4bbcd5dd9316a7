"""The figures of `nas_bench.py` from its studies: anytime curves, winners, paired tests, the verdict."""

from __future__ import annotations

import statistics
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

from nas_res.results.uncertainty import mcnemar, mcnemar_counts

BASE = "baseline"
DEFAULT, RANDOM = "resnas", "random"


def _final_by_arch(runs: list) -> dict[str, list]:
    out: dict[str, list] = defaultdict(list)
    for r in runs:
        if r.status.ranks and r.best_val_acc is not None:
            out[r.arch_key].append(r)
    return out


def _winner(runs: list, nets: int = 1, seeds: int = 1) -> dict | None:
    """The re-trained architecture with the best mean final *validation* accuracy, with its runs by seed;
    None until the final phase is complete (`nets` architectures with `seeds` runs each), so that a partial
    re-training never names a winner that a later run could displace."""
    by_arch = _final_by_arch(runs)
    if len(by_arch) < nets or any(len(rs) < seeds for rs in by_arch.values()):
        return None
    key = max(by_arch, key=lambda k: (statistics.mean(r.best_val_acc for r in by_arch[k]), -by_arch[k][0].flops))
    chosen = by_arch[key]
    tests = {int(r.recipe.get("seed", 0)): r for r in chosen if r.test_acc is not None}
    accs = [r.test_acc for r in tests.values()]
    return {
        "arch_key": key,
        "summary": chosen[0].summary,
        "flops": chosen[0].flops,
        "params": chosen[0].params,
        "val_mean": statistics.mean(r.best_val_acc for r in chosen),
        "test_by_seed": {s: r.test_acc for s, r in sorted(tests.items())},
        "test_mean": statistics.mean(accs) if accs else None,
        "test_sd": statistics.stdev(accs) if len(accs) > 1 else None,
        "_runs": tests,
    }


def _paired_test(winner: dict, base: dict, note: str = "b: only the winner right; c: only ResNet-20") -> dict:
    """Winner vs baseline on the test images: McNemar's discordant counts summed over paired training seeds."""
    b = c = 0
    paired = []
    for s, r in winner["_runs"].items():
        o = base["_runs"].get(s)
        if o is None or r.test_correct is None or o.test_correct is None:
            continue
        m = mcnemar(r.test_correct, o.test_correct)
        b, c = b + m.b, c + m.c
        paired.append(s)
    if not paired:
        return {"seeds": [], "b": None, "c": None, "p": None}
    m = mcnemar_counts(b, c)
    return {"seeds": paired, "b": m.b, "c": m.c, "p": m.p, "note": note}


def _best_run(runs: list):
    ranked = [r for r in runs if r.status.ranks and r.best_val_acc is not None]
    return max(ranked, key=lambda r: (r.best_val_acc, -r.flops, -r.trial)) if ranked else None


def _search(args, work: Path, clock, seed: int, method: str, runs_of, anytime) -> dict:
    storage = f"sqlite:///{work / f's{seed}-{method}.db'}"
    runs = runs_of(storage, method)
    spent = sum(r.epochs for r in runs if not r.reused) * args.proxy_images
    best = _best_run(runs)
    out = {
        "proxy_images_trained": spent,
        "complete": spent >= args.cap,
        "trained_runs": sum(1 for r in runs if r.epochs > 0),
        "by_status": dict(
            sorted(
                defaultdict(
                    int, {s: sum(1 for r in runs if r.status.value == s) for s in {r.status.value for r in runs}}
                ).items()
            )
        ),
        "best_proxy_val": best.best_val_acc if best else None,
        "best_summary": best.summary if best else None,
        "best_flops": best.flops if best else None,
        "anytime": anytime(runs, args.proxy_images, args.cap),
        "search_s": clock.get(f"{seed}/{method}/search"),
        "final_s": clock.get(f"{seed}/{method}/final"),
        "_best": best,
    }
    finals = runs_of(storage, f"{method}.final")
    if finals:
        ranked = len(_final_by_arch(runs))  # a smoke run may rank fewer nets than the top it re-trains
        out["winner"] = _winner(finals, min(args.final_nets, ranked), args.final_seeds)
    return out


def _curve_stats(curves: list[list[list[float]]], grid: np.ndarray) -> dict:
    """Mean, min and max over seeds of the incumbent at each compute point (NaN before a seed's first result)."""
    values = []
    for pts in curves:
        xs = np.array([p[0] for p in pts]) if pts else np.array([])
        ys = np.array([p[1] for p in pts]) if pts else np.array([])
        idx = np.searchsorted(xs, grid, side="right") - 1
        values.append(np.where(idx >= 0, ys[np.clip(idx, 0, None)] if len(ys) else np.nan, np.nan))
    arr = np.array(values, dtype=float)
    with warnings.catch_warnings():  # a grid point before every seed's first result is NaN on purpose
        warnings.simplefilter("ignore", RuntimeWarning)
        return {"mean": np.nanmean(arr, 0), "lo": np.nanmin(arr, 0), "hi": np.nanmax(arr, 0)}


def summarise(args, work: Path, clock, seeds: list[int], methods: list[str], runs_of, anytime) -> dict:
    per: dict = {m: {} for m in methods}
    for m in methods:
        for s in seeds:
            per[m][s] = _search(args, work, clock, s, m, runs_of, anytime)
    base_runs = runs_of(f"sqlite:///{work / 'baseline.db'}", "baseline.final")
    base = _winner(base_runs, 1, args.final_seeds) if base_runs else None
    out: dict = {
        "protocol": {
            "number": args.protocol,
            "dataset": "fashion-mnist",
            "val_images": 5000,
            "space": "small-resnext",
            "budget_flops": args.budget,
            "proxy_images": args.proxy_images,
            "proxy_epochs": args.proxy_epochs,
            "compute_images_per_search": args.cap,
            "scale": args.scale,
            "final": "top 2 by proxy, default recipe, 10 epochs, all 55,000 training images, seeds 0 and 1",
        },
        "seconds": clock.data,
    }
    complete = all(per[m][s]["complete"] for m in methods for s in seeds)
    finals = all("winner" in per[m][s] and per[m][s]["winner"] for m in methods for s in seeds) and base
    out["partial"] = not (complete and finals and set(seeds) == {0, 1, 2})
    # the search phase at equal compute: each method's incumbent, and resnas's best against the others'
    # on the same validation images (McNemar)
    search_rows = {}
    for m in methods:
        rows = per[m]
        search_rows[m] = {
            "seeds": {
                s: {k: v for k, v in r.items() if not k.startswith("_") and k != "winner"} for s, r in rows.items()
            },
            "best_proxy_val_mean": _mean([r["best_proxy_val"] for r in rows.values() if r["complete"]]),
        }
        if m != DEFAULT and DEFAULT in per:
            vs = {}
            for s in seeds:
                a, b = per[DEFAULT][s]["_best"], rows[s]["_best"]
                if a is not None and b is not None and a.val_correct is not None and b.val_correct is not None:
                    t = mcnemar(a.val_correct, b.val_correct)
                    vs[s] = {"resnas": a.best_val_acc, m: b.best_val_acc, "b": t.b, "c": t.c, "p": t.p}
            search_rows[m]["resnas_best_vs_this_on_val"] = vs
    out["search"] = search_rows
    if base:
        out["baseline"] = _public(base)
    verdict: dict = {}
    for m in methods:
        ws = {s: per[m][s].get("winner") for s in seeds}
        ws = {s: w for s, w in ws.items() if w and w["test_mean"] is not None}
        if not ws:
            continue
        row: dict = {
            "winners": {s: _public(w) for s, w in ws.items()},
            "test_mean": _mean([w["test_mean"] for w in ws.values()]),
            "test_sd": statistics.stdev([w["test_mean"] for w in ws.values()]) if len(ws) > 1 else None,
            "end_to_end_s": {s: per[m][s]["search_s"] + per[m][s]["final_s"] for s in ws},
        }
        if base:
            row["vs_resnet20"] = {s: _paired_test(w, base) for s, w in ws.items()}
            pairs = [
                (w["test_by_seed"][t], base["test_by_seed"][t])
                for w in ws.values()
                for t in w["test_by_seed"]
                if t in base["test_by_seed"]
            ]
            row["p_beats_resnet20"] = sum(1 for a, b in pairs if a > b) / len(pairs) if pairs else None
            row["seeds_beating_resnet20"] = sum(
                1 for w in ws.values() if w["test_mean"] > base["test_mean"] and w["flops"] <= args.budget
            )
        verdict[m] = row
    if DEFAULT in verdict and RANDOM in verdict:
        d, r = verdict[DEFAULT]["winners"], verdict[RANDOM]["winners"]
        both = [s for s in d if s in r]
        wins = sum(1 for s in both if d[s]["test_mean"] > r[s]["test_mean"])
        note = "b: only resnas's winner right; c: only random's"
        verdict["resnas_vs_random"] = {
            "seeds_won": wins,
            "seeds_compared": len(both),
            "paired": {s: _paired_test(per[DEFAULT][s]["winner"], per[RANDOM][s]["winner"], note) for s in both},
        }
        beats = verdict[DEFAULT].get("seeds_beating_resnet20")
        if not out["partial"]:
            verdict["target_met"] = bool(beats is not None and beats >= 2 and wins >= 2)
    out["final"] = verdict
    out["curves"] = _curves(per, methods, seeds, args.cap)
    return out


def _curves(per: dict, methods: list[str], seeds: list[int], cap: int) -> dict:
    grid = np.linspace(0, cap, 101)[1:]
    out = {"grid": grid.tolist()}
    for m in methods:
        curves = [per[m][s]["anytime"] for s in seeds if per[m][s]["anytime"]]
        if curves:
            st = _curve_stats(curves, grid)
            out[m] = {k: [None if np.isnan(x) else float(x) for x in v] for k, v in st.items()}
            out[m]["seeds"] = len(curves)
    return out


def _public(d: dict, *drop: str) -> dict:
    """A dict without its private (`_`) entries and `drop`: what goes into the JSON."""
    return {k: v for k, v in d.items() if not k.startswith("_") and k not in drop}


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None


def plot_anytime(figures: dict, path: Path) -> Path:
    """The incumbent's proxy validation accuracy against proxy images trained, mean over seeds, band = min..max;
    left the whole run, right its last three quarters with the accuracy axis cut to where the methods differ."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = figures["curves"]
    grid = np.array(curves["grid"]) / 1e3
    late = grid >= grid[-1] / 4
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), dpi=120, gridspec_kw={"width_ratios": [1, 1.2]})
    lows, highs = [], []
    for m, c in curves.items():
        if m == "grid":
            continue
        mean, lo, hi = (np.array([np.nan if v is None else v for v in c[k]]) for k in ("mean", "lo", "hi"))
        label = f"{m} ({c['seeds']} seed{'s' if c['seeds'] > 1 else ''})"
        for ax in axes:
            (line,) = ax.plot(grid, mean, drawstyle="steps-post", label=label, lw=2)
            if c["seeds"] > 1:
                ax.fill_between(grid, lo, hi, step="post", color=line.get_color(), alpha=0.15)
        lows.append(np.nanmin(lo[late]))
        highs.append(np.nanmax(hi[late]))
    proto = figures["protocol"]
    for ax in axes:
        ax.set_xlabel("proxy training images so far (thousands; epochs actually trained)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"incumbent proxy validation accuracy (%, {proto['val_images']:,} images)")
    axes[0].set_title("the whole search")
    axes[1].set_xlim(grid[-1] / 4, grid[-1] * 1.01)
    axes[1].set_ylim(np.floor(min(lows)) - 0.5, np.ceil(max(highs)) + 0.5)
    axes[1].set_title("its last three quarters, zoomed")
    axes[0].legend(loc="lower right")  # where the whole run leaves room
    title = f"Fashion-MNIST, {proto['space']}, <= {proto['budget_flops'] / 1e6:.1f} MFLOPs (ResNet-20)"
    fig.suptitle(title + ("  [PARTIAL]" if figures["partial"] else ""))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
