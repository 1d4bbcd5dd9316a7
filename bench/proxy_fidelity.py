"""Which proxy ranks small-resnext's nets the way full training does, for the images it trains?

nas_bench's final phase found its proxy (2,000 images x 3 epochs) ranking the nets it re-trained no
better than chance (Kendall 0.04 on 11 nets; FLOPs 0.35). This asks which cheap proxy does better, on
the same nets, against the same ground truth. The protocol, fixed on 2026-12-07 before any of its runs:

- Nets: every net nas_bench's final phase re-trained with both training seeds and tested, ResNet-20
  included, read from its study files (--studies). Ground truth: the mean test accuracy of its two final
  runs (the `default` recipe, 10 epochs, all 55,000 training images), and beside it the mean final
  validation accuracy. A net re-trained in two studies counts once.
- Proxies: the `fast` recipe with its epochs set, training seed 0, on the class-balanced training subset
  drawn with split seed 0 (nested: a smaller one is part of a larger one), validated on the same 5,000
  images as the ground truth; cheapest first:
    2k-3ep    2,000 images x 3 epochs   6,000 images   nas_bench's proxy
    10k-2ep  10,000 x 2                20,000          more images, fewer epochs (EcoNAS)
    5k-5ep    5,000 x 5                25,000          `resnas search`'s CPU default (defaults.PROXY_IMAGES)
    55k-1ep  55,000 x 1                55,000          every image once
- Reported per proxy: Kendall tau-b and Spearman of its validation accuracy (best epoch) with the final
  test accuracy, and with the final validation accuracy (scipy, through nas_res.results.fidelity), beside
  ranking by FLOPs and by params; the images and seconds it cost. With about 12 nets a tau's standard
  error is about 0.2: smaller differences are noise.
- Decision, declared before the runs: `resnas search`'s CPU default proxy changes only where another
  proxy's Kendall (test) exceeds the default's (5k-5ep) by at least 0.2 and exceeds both FLOPs' and
  params'; a next nas_bench protocol takes the cheapest proxy within 0.1 of the best Kendall.

    python bench/proxy_fidelity.py [--studies bench/results/nas-bench-studies] [--work DIR] [--minutes M]

Resumes: the proxy runs are trials of one SQLite file in --work (a study per proxy); run it again and
it trains only what is missing, so when nas_bench's final phase has re-trained more nets, copy
bench/results/proxy-fidelity-studies/* (the runs reported) into --work and run it again. Figures:
bench/results/proxy-fidelity-cpu.json (or -gpu) and bench/results/proxy-fidelity.png; marked partial
until every proxy has every net.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import write
from nas_bench import DATASET, PROTOCOLS, SPACE, SPLIT_SEED, VAL, Clock, runs_of
from nas_bench_fidelity import best_val_by_arch, retrained

import nas_res
from nas_res.arch.description import Arch
from nas_res.results.fidelity import LABELS, fidelity
from nas_res.results.page import save
from nas_res.training.recipe import PRESETS

PROXIES = {"2k-3ep": (2000, 3), "10k-2ep": (10000, 2), "5k-5ep": (5000, 5), "55k-1ep": ("all", 1)}
TRAIN_IMAGES = 55_000  # Fashion-MNIST's 60,000 less the 5,000 validation images
DEFAULT_PROXY = "5k-5ep"


def ground_truth(studies: Path, runs_of=runs_of) -> list[dict]:
    """The nets nas_bench re-trained with both training seeds and tested, each once (first study wins)."""
    seen: dict[str, dict] = {}
    for p in retrained(studies, [0, 1, 2], list(PROTOCOLS[1]["methods"]), runs_of):
        if p["final_test"] is not None and p["training_seeds"] == 2:
            seen.setdefault(p["arch_key"], p)
    return list(seen.values())


def train_proxy(name: str, nets: list[dict], work: Path, clock: Clock, deadline: float) -> bool:
    """Every net through one proxy (a study of its own); False when the deadline stopped it first."""
    left = deadline - time.time()
    if left < 60:
        return False
    images, epochs = PROXIES[name]
    storage = f"sqlite:///{work / 'proxies.db'}"
    started = time.time()
    state = nas_res.train_archs(
        [Arch.from_dict(p["arch"], where=p["summary"]) for p in nets],
        study=f"proxy-{name}",
        seeds=(0,),
        storage=storage,
        checkpoints=str(work / f"ckpt-{name}"),  # a folder per study: resnas refuses to share one
        keep_checkpoints="none",
        space=SPACE,
        dataset=DATASET,
        val_size=VAL,
        split_seed=SPLIT_SEED,
        train_size=images,
        recipe=PRESETS["fast"].replace(seed=0),
        epochs=epochs,
        timeout=None if math.isinf(left) else left,
    )
    if state.trial_seconds:  # a finished proxy visited again trains nothing and costs nothing
        clock.add(name, time.time() - started)
    return state.stopped_by != "timeout"


def measure(nets: list[dict], work: Path, clock: Clock, runs_of=runs_of) -> dict:
    """Per proxy: its accuracy for each net, its rank agreement with the ground truth, what it cost."""
    out: dict = {}
    for name, (images, epochs) in PROXIES.items():
        acc = best_val_by_arch(runs_of(f"sqlite:///{work / 'proxies.db'}", f"proxy-{name}"))
        rows = [{**p, "proxy_acc": acc.get(p["arch_key"])} for p in nets]
        per_image = TRAIN_IMAGES if images == "all" else images
        out[name] = {
            "images": per_image,
            "epochs": epochs,
            "images_per_net": per_image * epochs,
            "nets_trained": sum(1 for r in rows if r["proxy_acc"] is not None),
            "seconds": clock.get(name),
            "test": fidelity([{**r, "final_acc": r["final_test"]} for r in rows]),
            "val": fidelity([{**r, "final_acc": r["final_val"]} for r in rows]),
            "proxy_acc": {p["arch_key"]: acc.get(p["arch_key"]) for p in nets},
        }
    return out


def plot(figures: dict, path: Path) -> Path:
    """Kendall's tau with the final test accuracy against the images a proxy trains per net; FLOPs and
    params (which cost nothing to rank by) as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 5.5), dpi=120)
    any_proxy = next(iter(figures["proxies"].values()))
    n = any_proxy["test"]["n"]
    se = math.sqrt(2 * (2 * n + 5) / (9 * n * (n - 1))) if n > 1 else 0.0  # tau's sd where there is no agreement
    proxies = {k: v for k, v in figures["proxies"].items() if v["test"]["proxy"]["kendall"] is not None}
    xs = [v["images_per_net"] / 1e3 for v in proxies.values()]
    for split, marker, label in (("test", "o", "final test"), ("val", "s", "final validation")):
        taus = [v[split]["proxy"]["kendall"] for v in proxies.values()]
        if split == "test":
            ax.errorbar(xs, taus, yerr=se, fmt=marker, ms=8, capsize=4, label=f"proxy vs {label} (bar: 1 sd, {se:.2f})")
            for x, t, name in zip(xs, taus, proxies, strict=True):
                ax.annotate(name, (x, t - se), xytext=(0, -14), textcoords="offset points", ha="center")
        elif shown := [(x, t) for x, t in zip(xs, taus, strict=True) if t is not None]:
            ax.scatter(*zip(*shown, strict=True), marker=marker, s=40, facecolors="none", edgecolors="C0",
                       label=f"proxy vs {label}")  # fmt: skip
    for size, style in (("flops", "--"), ("params", ":")):
        tau = any_proxy["test"][size]["kendall"]
        if tau is not None:
            ax.axhline(tau, ls=style, color="gray", label=f"ranking by {LABELS[size]} vs final test ({tau:.2f})")
    ax.axhline(0, color="black", lw=0.8)
    ax.margins(y=0.12)  # room for the names under the bars
    ax.set_xscale("log")
    ax.set_xlim(4, 80)  # every proxy's images, so that a partial run keeps the axis
    ticks = sorted({v["images_per_net"] / 1e3 for v in figures["proxies"].values()})
    ax.set_xticks(ticks, [f"{t:g}k" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("images a proxy trains per net (log scale)")
    ax.set_ylabel("Kendall tau with the final accuracy (10 epochs, 55,000 images)")
    title = f"Which proxy ranks {n} re-trained small-resnext nets as full training does (Fashion-MNIST)"
    ax.set_title(title + ("  [PARTIAL]" if figures["partial"] else ""), fontsize=10)
    ax.legend(loc="lower right", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    return save(fig, path)  # written whole or not at all


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--studies", default=str(Path(__file__).resolve().parent / "results" / "nas-bench-studies"))
    p.add_argument("--work", default="/work/proxy-fidelity")
    p.add_argument("--minutes", type=float, default=None, help="start no proxy run after this long")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    clock = Clock(work)
    nets = ground_truth(Path(args.studies))
    if len(nets) < 3:
        raise SystemExit(f"{args.studies}: {len(nets)} re-trained and tested net(s); a rank correlation needs 3")
    print(f"{len(nets)} nets with a final test accuracy from {args.studies}", flush=True)
    deadline = time.time() + args.minutes * 60 if args.minutes else math.inf
    for name in PROXIES:
        if not train_proxy(name, nets, work, clock, deadline):
            break
    proxies = measure(nets, work, clock)
    figures = {
        "protocol": {"ground_truth": "nas_bench final: default recipe, 10 epochs, 55,000 images, seeds 0 and 1",
                     "proxy_recipe": "fast, training seed 0", "val_images": VAL, "default_proxy": DEFAULT_PROXY},
        "partial": any(v["nets_trained"] < len(nets) for v in proxies.values()),
        "nets": [{k: v for k, v in n.items() if k != "arch"} for n in nets],
        "proxies": proxies,
    }  # fmt: skip
    figures["picture"] = plot(figures, Path(__file__).resolve().parent / "results" / "proxy-fidelity.png").name
    for name, v in proxies.items():
        t = v["test"]["proxy"]
        tau = "n/a" if t["kendall"] is None else f"{t['kendall']:+.2f} (p={t['kendall_p']:.2f})"
        print(f"{name:>8}: {v['nets_trained']}/{len(nets)} nets, Kendall with final test {tau}, {v['seconds']:.0f} s")
    print(f"wrote {write('proxy-fidelity', figures, 'python bench/proxy_fidelity.py ' + ' '.join(sys.argv[1:]))}")


if __name__ == "__main__":
    main()
