"""A search at a latency budget against one at the FLOPs budget with the same latency: which nets each picks.

Protocol (fixed before any figure was seen):
- Fashion-MNIST, space `small-resnext`, the nas_bench proxy: 2,000 class-balanced training images, 3
  epochs (`fast`), 5,000 validation images, TPE + ASHA (the default), references queued, seed 0, one
  worker, 20 trained trials each.
- The reference net is ResNet-20 as the space builds it (1 channel, 28 px). Its FLOPs (31.1 M) are search
  F's budget; its latency, measured here at batch 1 (every core, fp32, inference), is search L's limit
  (`--max-latency`). Latencies are measured by the search's coordinator between trials (one worker:
  nothing trains while it measures).
- Amended after the first try, before any of search L's nets were trained past its third: with the
  latency limit alone (the first protocol), TPE's random start-up drew from all 852,930 nets of the space,
  about 1 in 30 of which fit 2.4 ms, and every refusal cost a lookup-table prediction; in 15.6 minutes it
  trained 1 net of its 20 (bench/results/latency-search-uncapped-cpu.json, interrupted). Search L now also
  has a loose FLOPs cap, 4x ResNet-20's (`--flops-cap`), as a user would give: a coarse screen that the
  latency limit, not the cap, decides inside.
- Reported: each search's top 5 by validation accuracy with FLOPs, measured latency (the same setting;
  search F's nets measured afterwards), C x d, depths and widths, and each search's best against ResNet-20.

- Added with the latency start-up (search/latency_start.py): `--searches latency --flops-cap 0` runs
  search L with the latency limit alone again, the first protocol, to measure what the start-up's fit
  saves against the first try (1 net trained in 15.6 minutes); `--timeout` stops it as that try was.
  The limit is ResNet-20's median rounded up to 0.1 us (rounded to nearest before: at 6.302847 ms the
  reference itself was refused, 3 minutes into the first such run, which was restarted).

    python bench/latency_search.py [--trials 20] [--work /tmp/latency-search] [--searches flops,latency]
        [--flops-cap 4 (0: none)] [--timeout 20m]

Writes bench/results/latency-search-<cpu|gpu>.json (with --flops-cap 0: latency-search-startup-...).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import optuna
from machine import write
from nas_bench import baseline_arch

import nas_res
from nas_res import cost
from nas_res.latency.meter import Meter
from nas_res.latency.setting import Setting
from nas_res.results import Store

TOP = 5


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--work", default="/tmp/latency-search")
    p.add_argument("--flops-cap", type=float, default=4.0, help="Search L's FLOPs cap, in ResNet-20's FLOPs (0: none).")
    p.add_argument("--searches", default="flops,latency", help="Which searches to run: flops, latency or both.")
    p.add_argument("--timeout", default=None, help="Start no trial after this long (20m), per search.")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{work / 'search.db'}"
    store = Store(storage, create=True)
    meter = Meter(Setting("cpu"), store)
    ref = baseline_arch()
    ref_ms = meter.nets([ref])[ref.key].median_ms
    ref_flops = cost(ref).flops
    log(f"ResNet-20 (fitted): {ref_flops:,} FLOPs, {ref_ms:.3f} ms at batch 1 on {meter.device_name}")
    common = {
        "space": "small-resnext",
        "dataset": "fashion-mnist",
        "train_size": 2000,
        "val_size": 5000,
        "epochs": 3,
        "trials": args.trials,
        "seed": 0,
        "workers": 1,
        "storage": storage,
    }
    searches = {
        "flops": {"study": "at-flops", "budget": str(ref_flops)},
        "latency": {
            "study": "at-latency-capped" if args.flops_cap else "at-latency",
            "max_latency": f"{math.ceil(ref_ms * 1e4) / 1e4:.4f}ms",  # rounded up: ResNet-20 itself fits
            "latency_on": "cpu",
            **({"budget": str(round(args.flops_cap * ref_flops))} if args.flops_cap else {}),
        },
    }
    searches = {k: v for k, v in searches.items() if k in args.searches.split(",")}
    if args.timeout:
        common["timeout"] = args.timeout
    figures: dict = {"reference": {"flops": ref_flops, "latency_ms": ref_ms, "summary": ref.summary()}}
    for name, options in searches.items():
        started = time.time()
        folder = str(work / f"ckpt-{options['study']}")
        state = nas_res.run_search(**common, **options, checkpoints=folder)  # type: ignore[arg-type]
        rows = nas_res.leaderboard(options["study"], storage=storage)
        ranked = [r for r in rows if r["rank"] is not None]
        archs = {r.arch_key: r.arch for r in store.runs(options["study"])}
        timed = meter.nets(nas_res.Arch.from_dict(archs[r["arch_key"]]) for r in ranked[:TOP])
        top = [
            {
                k: r.get(k)
                for k in ("rank", "val_acc", "flops", "params", "depths", "width", "cxd", "block", "reference")
            }
            | {"latency_ms": timed[r["arch_key"]].median_ms, "summary": r["summary"]}
            for r in ranked[:TOP]
        ]
        trials = optuna.load_study(study_name=options["study"], storage=storage).get_trials(deepcopy=False)
        timeline = [  # each suggestion: when it ended, how it ended, its latency and how that was had
            {
                "s": round(t.datetime_complete.timestamp() - started, 1) if t.datetime_complete else None,
                "status": t.user_attrs.get("status", t.state.name.lower()),
                "latency_ms": t.user_attrs.get("latency_ms"),
                "how": t.user_attrs.get("latency"),
            }
            for t in trials
        ]
        figures[name] = {
            "options": options,
            "seconds": time.time() - started,
            "timeline": timeline,
            "counts": dict(state.counts),
            "top": top,
            "vs_reference": nas_res.vs_reference(options["study"], storage=storage),
        }
        for r in top:
            log(
                f"{name} #{r['rank']}: {r['val_acc']:.2f}% {r['flops'] / 1e6:.1f} MFLOPs {r['latency_ms']:.3f} ms "
                f"{r['summary']}{' (reference ' + r['reference'] + ')' if r['reference'] else ''}"
            )
    path = write(
        "latency-search" if args.flops_cap else "latency-search-startup",  # the first uncapped try is kept
        figures,
        "python bench/latency_search.py " + " ".join(sys.argv[1:]),
    )
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
