"""Did the benchmark's proxy rank the nets it re-trained the way full training did?

Every net the final phase re-trained (each method's top 2 at each seed, and ResNet-20) has a proxy
accuracy (protocol 1: 3 epochs on 2,000 images) and a final one (10 epochs on 55,000, mean over training seeds).
Pooled over every study, their rank agreement is resnas's own `fidelity` (Kendall and Spearman, beside
ranking by FLOPs or params); within each study's top 2, the question is simply whether the proxy's
first was the better one fully trained. A measurement, read from the studies; it decides nothing.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from nas_bench_report import BASE, _final_by_arch

from nas_res.results.fidelity import fidelity, verdict
from nas_res.results.page import save


def best_val_by_arch(runs: list) -> dict[str, float]:
    """Each architecture's best proxy validation accuracy in a study (the number its proxy rank came from)."""
    out: dict[str, float] = {}
    for r in runs:
        if r.status.ranks and r.best_val_acc is not None:
            out[r.arch_key] = max(out.get(r.arch_key, r.best_val_acc), r.best_val_acc)
    return out


def retrained(work: Path, seeds: list[int], methods: list[str], runs_of) -> list[dict]:
    """One point per re-trained net and study: its proxy accuracy, its final validation and test means."""
    studies = [(None, BASE, work / "baseline.db", "baseline")]
    studies += [(s, m, work / f"s{s}-{m}.db", m) for s in seeds for m in methods]
    points = []
    for seed, method, db, study in studies:
        finals = _final_by_arch(runs_of(f"sqlite:///{db}", f"{study}.final"))
        if not finals:
            continue
        proxy = best_val_by_arch(runs_of(f"sqlite:///{db}", study))
        for key, group in finals.items():
            tests = [r.test_acc for r in group if r.test_acc is not None]
            points.append(
                {
                    "seed": seed,
                    "method": method,
                    "summary": group[0].summary,
                    "arch_key": key,
                    "flops": group[0].flops,
                    "params": group[0].params,
                    "proxy_val": proxy.get(key),
                    "final_val": statistics.mean(r.best_val_acc for r in group),
                    "final_test": statistics.mean(tests) if len(tests) == len(group) else None,
                    "training_seeds": len(group),
                    "arch": group[0].arch,  # what a proxy study re-trains it from (proxy_fidelity.py)
                }
            )
    return points


def proxy_fidelity(points: list[dict]) -> dict:
    """Rank agreement of the proxy with the final test accuracy (and validation) over every re-trained net
    (ResNet-20 included: its proxy run is the baseline study's), and the top-2 pairs the proxy ordered right
    on test."""

    def rows(final: str) -> list[dict]:
        return [
            {"proxy_acc": p["proxy_val"], "final_acc": p[final], "flops": p["flops"], "params": p["params"]}
            for p in points
            if p["proxy_val"] is not None
        ]

    result = fidelity(rows("final_test"))
    pairs = {"right": 0, "wrong": 0, "studies": []}
    for (seed, method), group in sorted(_top2(points).items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        if group[0]["proxy_val"] == group[1]["proxy_val"]:
            continue
        first, second = sorted(group, key=lambda p: -p["proxy_val"])
        right = first["final_test"] > second["final_test"]
        pairs["right" if right else "wrong"] += 1
        gap = round(first["final_test"] - second["final_test"], 3)  # the proxy's first minus its second
        pairs["studies"].append({"seed": seed, "method": method, "proxy_first_right": right, "test_gap": gap})
    on_val = fidelity(rows("final_val"))  # every re-trained net has one, tested or not
    both = {"test": result, "verdict": verdict(result), "val": on_val, "val_verdict": verdict(on_val)}
    return {**both, "top2_pairs": pairs}


def _top2(points: list[dict]) -> dict[tuple, list[dict]]:
    """Each study's two re-trained nets that have both a proxy and a final test accuracy, by (seed, method)."""
    by_study: dict[tuple, list[dict]] = {}
    for p in points:
        if p["proxy_val"] is not None and p["final_test"] is not None:
            by_study.setdefault((p["seed"], p["method"]), []).append(p)
    return {k: g for k, g in by_study.items() if len(g) == 2}


def plot_fidelity(points: list[dict], fid: dict, path: Path, partial: bool, proxy: str) -> Path:
    """Final test accuracy against proxy accuracy, one dot per re-trained net, a study's top 2 joined by a line;
    `proxy` says what the proxy trained (e.g. "3 epochs on 2,000 images")."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6), dpi=120)
    colors: dict[str, str] = {}
    shown = [p for p in points if p["proxy_val"] is not None and p["final_test"] is not None]
    for p in shown:
        if p["method"] == BASE:
            ax.scatter(p["proxy_val"], p["final_test"], marker="*", s=260, color="black", zorder=4)
            ax.annotate("ResNet-20", (p["proxy_val"], p["final_test"]), xytext=(-20, -18), textcoords="offset points")
            ax.axhline(p["final_test"], color="black", lw=0.8, ls=":", zorder=1)
            continue
        if p["method"] not in colors:
            colors[p["method"]] = f"C{len(colors)}"
        ax.scatter(p["proxy_val"], p["final_test"], color=colors[p["method"]], s=40, zorder=3)
    for (_, method), group in _top2(points).items():
        xs, ys = zip(*[(p["proxy_val"], p["final_test"]) for p in group], strict=True)
        ax.plot(xs, ys, color=colors[method], lw=1, alpha=0.6, zorder=2)
    for method, c in colors.items():
        ax.scatter([], [], color=c, label=method)
    t, pairs = fid["test"]["proxy"], fid["top2_pairs"]
    tau = "n/a" if t["kendall"] is None else f"{t['kendall']:.2f} (p = {t['kendall_p']:.2f})"
    ax.set_title(
        f"Proxy vs full training, every re-trained net{'  [PARTIAL]' if partial else ''}\n"
        f"Kendall tau {tau}, n = {t['n']}; the proxy's first of a top 2 was the better one fully trained "
        f"in {pairs['right']} of {pairs['right'] + pairs['wrong']}",
        fontsize=10,
    )
    ax.set_xlabel(f"proxy validation accuracy (%; {proxy}, 5,000 validation images)")
    ax.set_ylabel("final test accuracy (%; 10 epochs on 55,000 images,\nmean over training seeds)")
    ax.legend(title="method (a line joins a study's top 2)", fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    return save(fig, path)  # written whole or not at all
