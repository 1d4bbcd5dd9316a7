"""Measured latency on this machine: how well the lookup table predicts it, and what FLOPs do not say.

Protocol (fixed before any figure was seen):
- Setting: the device given (default cpu), batch 1, every core, fp32, inference; 20 timed repeats after 5
  warm-up calls in each of `--processes` fresh processes (the fastest's median kept; `nas_res.latency`).
  The first run (`latency-v1-cpu.json`) timed each net in one process; its test-retest noise (2 of 8
  processes ran a net 2.4x slower throughout at 2 threads) is why a net is now timed in 3. The second
  run (`--phase table --nets 5`, `latency-table-cpu.json`) draws 5 nets per space, not 10: three
  processes a net triple its time, and the session had 25 minutes for it.
- `table`: from every built-in space, 10 nets drawn uniformly (seed 0; the two ImageNet spaces inside
  4.2 GFLOPs, ResNet-50's class, so that a CPU run stays in minutes), each measured whole twice (two
  fresh caches: the test-retest noise, the floor any predictor is judged against) and predicted by the
  lookup table of its parts. Reported per space and over all: Spearman's rho and the mean absolute
  percentage error (MAPE) of table vs measurement, and of measurement vs re-measurement.
- `family`: ResNeXt's Table 2 family at ResNet-50's FLOPs (C = 1, 2, 4, 8, 32, d solved for iso-FLOPs by
  `resnas iso`), and the CIFAR family (ResNeXt-29 with stage widths 64-128-256, C = 1, 2, 4, 8, 16 at the
  FLOPs of 1x64d), each at batch 1 and batch 64 (batch 64: 5 repeats after 2 warm-ups, the calls are long).
- `search` is `bench/latency_search.py` (it trains).

    python bench/latency_bench.py [--phase table|family|all] [--device cpu] [--storage URL]
        [--spaces a,b --merge EARLIER.json]   # finish an interrupted table run: the spaces it missed
    python bench/latency_bench.py --phase fit [--merge bench/results/latency-v1-cpu.json]
        # the search start-up's fit (latency_start.py), leave-one-out on a table run's nets: nothing timed

Writes bench/results/latency-<cpu|gpu>.json and bench/results/latency-family-<cpu|gpu>.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import RESULTS, write

from nas_res import load_space, zoo
from nas_res.arch.budget import Budget
from nas_res.latency.meter import Meter
from nas_res.latency.setting import Setting
from nas_res.latency.survey import survey, table_error
from nas_res.results import Store
from nas_res.search.latency_start import LatencyFit
from nas_res.space.iso import iso_table
from nas_res.space.template import builtin_spaces

NETS, IMAGENET_BUDGET = 10, "4.2GFLOPs"


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def table_phase(
    device: str,
    work: Path,
    processes: int,
    nets: int = NETS,
    spaces: list[str] | None = None,
    earlier: dict | None = None,
) -> dict:
    """Per space: table vs measurement, and measurement vs a second measurement in fresh processes. `spaces`
    limits the run; `earlier` (an interrupted run's `spaces`) adds the spaces it measured to the summary."""
    setting = Setting(device)
    first = Meter(setting, Store(f"sqlite:///{work / 'first.db'}", create=True), processes=processes)
    second = Meter(setting, Store(f"sqlite:///{work / 'second.db'}", create=True), processes=processes)
    out, every, retest = {}, [], []
    for name, was in (earlier or {}).items():
        if name not in (spaces or builtin_spaces()):
            out[name] = {**was, "earlier": True}
            every += was["nets"]
            then = zip(was["nets"], was["remeasured_ms"])
            retest += [{"latency_ms": r["latency_ms"], "predicted_ms": m} for r, m in then]
    for name in spaces or builtin_spaces():
        space = load_space(name)
        budget = Budget.parse(IMAGENET_BUDGET if space.spec.resolution >= 224 else None)
        archs = space.sample(nets, budget, seed=0)
        named = [(f"{name}#{i}", a) for i, a in enumerate(archs, 1)]
        started = time.time()
        rows = survey(first, named, predict=True)
        again = {r["key"]: r["latency_ms"] for r in survey(second, named)}
        pairs = [{"latency_ms": r["latency_ms"], "predicted_ms": again[r["key"]]} for r in rows]
        out[name] = {
            "budget": budget.describe(),
            "table": table_error(rows),
            "retest": table_error(pairs),
            "nets": rows,
            "remeasured_ms": [again[r["key"]] for r in rows],
            "seconds": time.time() - started,
        }
        every += rows
        retest += pairs
        log(f"{name}: table {_fit(out[name]['table'])}; re-measured {_fit(out[name]['retest'])}")
        write("latency-table-partial", {"spaces": out}, "python bench/latency_bench.py (in progress)")
    summary = {"table": table_error(every), "retest": table_error(retest)}
    log(f"all {len(every)} nets: table {_fit(summary['table'])}; re-measured {_fit(summary['retest'])}")
    return {
        "setting": setting.to_dict(),
        "key": first.key,
        "processes": processes,
        "nets_per_space": nets,
        "spaces": out,
        "all": summary,
    }


def fit_phase(path: Path) -> dict:
    """The search's start-up fit (a x MFLOPs + b x layers + c, search/latency_start.py) judged leave-one-out
    on a table run's measured nets, beside the lookup table's prediction of the same nets: nothing is timed
    (the nets are drawn again from their spaces with the run's seed and budget, and matched by key)."""
    runs = json.loads(path.read_text())["figures"]["table"]["spaces"]
    archs, rows = [], []
    for name, was in runs.items():
        space = load_space(name)
        budget = Budget.parse(IMAGENET_BUDGET if space.spec.resolution >= 224 else None)
        by_key = {a.key: a for a in space.sample(len(was["nets"]), budget, seed=0)}
        for r in was["nets"]:
            archs.append(by_key[r["key"]])
            rows.append(r)
    out = []
    for i, (arch, r) in enumerate(zip(archs, rows)):
        fit = LatencyFit.fit(archs[:i] + archs[i + 1 :], [x["latency_ms"] for x in rows[:i] + rows[i + 1 :]])
        assert fit is not None
        out.append({"latency_ms": r["latency_ms"], "predicted_ms": fit.predict(arch)})
    table = [{"latency_ms": r["latency_ms"], "predicted_ms": r["predicted_ms"]} for r in rows]
    summary = {"from": str(path), "nets": len(rows), "fit": table_error(out), "table": table_error(table)}
    log(f"fit, leave-one-out over {len(rows)} nets: {_fit(summary['fit'])}; the table: {_fit(summary['table'])}")
    return summary


def _fit(fit: dict | None) -> str:
    return "-" if fit is None else f"Spearman {fit['spearman']:.3f}, MAPE {fit['mape']:.1f}%, ratio {fit['ratio']:.2f}"


def families() -> dict[str, list[tuple[str, object]]]:
    """ResNeXt's iso-FLOPs families: (label, arch)."""
    imagenet = [(r.label, r.arch) for r in iso_table(zoo.get("resnet50"), cardinality="1,2,4,8,32", match="flops")]
    cifar = load_space("cifar-resnext")
    ref = next(a for a in cifar.enumerate() if a.depth == 29 and a.stages[0].groups == 1 and a.stages[0].mid == 64)
    small = [(r.label, r.arch) for r in iso_table(ref, cardinality="1,2,4,8,16", match="flops")]
    return {"imagenet (ResNet-50 FLOPs)": imagenet, "cifar (ResNeXt-29, 1x64d FLOPs)": small}


def family_phase(device: str, work: Path, processes: int, batches: tuple[int, ...] = (1, 64)) -> dict:
    store = Store(f"sqlite:///{work / 'first.db'}", create=True)
    out = {}
    for family, members in families().items():
        for batch, repeats, warmup in ((b, 20, 5) if b == 1 else (b, 5, 2) for b in batches):
            meter = Meter(Setting(device, batch=batch), store, repeats=repeats, warmup=warmup, processes=processes)
            rows = survey(meter, [(str(label), arch) for label, arch in members])  # type: ignore[misc]
            base = rows[0]["latency_ms"]
            for r in rows:
                r["vs_c1"] = r["latency_ms"] / base
            out[f"{family}, batch {batch}"] = rows
            log(
                f"{family}, batch {batch}: "
                + ", ".join(f"{r['name']} {r['latency_ms']:.3g} ms (x{r['vs_c1']:.2f})" for r in rows)
            )
    suffix = "" if batches == (1, 64) else f"-batch{'-'.join(map(str, batches))}"
    _plot(out, RESULTS / f"latency-family{suffix}-{'gpu' if device != 'cpu' else 'cpu'}.png", device)
    return out


def _plot(out: dict, path: Path, device: str) -> None:
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, family in zip(axes, ("imagenet", "cifar")):
        for key, rows in out.items():
            if not key.startswith(family):
                continue
            xs = range(len(rows))
            ax.errorbar(
                xs,
                [r["vs_c1"] for r in rows],
                yerr=[
                    [(r["latency_ms"] - r["low_ms"]) / rows[0]["latency_ms"] for r in rows],
                    [(r["high_ms"] - r["latency_ms"]) / rows[0]["latency_ms"] for r in rows],
                ],
                marker="o",
                capsize=3,
                label=key.rsplit(", ", 1)[-1],
            )
            ax.set_xticks(list(xs), [r["name"].split(" ")[0] for r in rows])
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_title(next(k.rsplit(", batch", 1)[0] for k in out if k.startswith(family)), fontsize=10)
        ax.set_xlabel("C x d at equal FLOPs")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("latency relative to C = 1 (median, 95% interval)")
    fig.suptitle(f"ResNeXt's iso-FLOPs families on {device}: what FLOPs do not show", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    log(f"wrote {path}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--phase", choices=("table", "family", "all", "fit"), default="all")
    p.add_argument("--device", default="cpu")
    p.add_argument("--work", default="/tmp/latency-bench", help="Where the measurement caches go.")
    p.add_argument("--processes", type=int, default=3, help="Fresh processes per net (1: the first run's way).")
    p.add_argument("--batches", default="1,64", help="The family phase's batch sizes.")
    p.add_argument("--nets", type=int, default=NETS, help="Nets drawn per space in the table phase.")
    p.add_argument("--spaces", default=None, help="The table phase's spaces (default: every built-in one).")
    p.add_argument("--merge", default=None, help="table: an interrupted run to complete; fit: the run to fit on.")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    figures = {}
    if args.phase == "fit":  # the start-up's fit on an earlier table run (--merge names it)
        figures["fit"] = fit_phase(Path(args.merge or RESULTS / "latency-v1-cpu.json"))
    if args.phase in ("table", "all"):
        earlier = json.loads(Path(args.merge).read_text())["figures"]["spaces"] if args.merge else None
        spaces = args.spaces.split(",") if args.spaces else None
        figures["table"] = table_phase(args.device, work, args.processes, args.nets, spaces, earlier)
    if args.phase in ("family", "all"):
        batches = tuple(int(b) for b in args.batches.split(","))
        figures["family"] = family_phase(args.device, work, args.processes, batches)
    name = "latency" if args.phase == "all" else f"latency-{args.phase}"
    name += "" if args.batches == "1,64" else f"-batch{args.batches.replace(',', '-')}"
    path = write(name, figures, "python bench/latency_bench.py " + " ".join(sys.argv[1:]))
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
