"""Analytic cost vs fvcore on the same candidates, and feasible candidates sampled per second.

Targets (issue 2): analytic >= 1000x faster than fvcore per candidate; >= 10,000 feasible
`resnext` candidates per second under a 4 GFLOPs budget.

    python bench/cost_bench.py [--candidates 12] [--samples 20000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe, write

from nas_res import Budget, build, cost, fvcore_cost, load_space
from nas_res.arch.blocks import stage_cost, stem_cost, unit_cost


def clear_caches() -> None:
    for f in (unit_cost, stem_cost, stage_cost):
        f.cache_clear()


def time_analytic(arch, repeat: int = 200) -> tuple[float, float]:
    """(cold, warm) seconds per call: cold with the unit caches emptied first."""
    cold = []
    for _ in range(20):
        clear_caches()
        t = time.perf_counter()
        cost(arch)
        cold.append(time.perf_counter() - t)
    t = time.perf_counter()
    for _ in range(repeat):
        cost(arch)
    return statistics.median(cold), (time.perf_counter() - t) / repeat


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--candidates", type=int, default=12)
    parser.add_argument("--samples", type=int, default=20_000)
    args = parser.parse_args()
    command = "python bench/cost_bench.py " + " ".join(sys.argv[1:])
    space, budget = load_space("resnext"), Budget.parse("4GFLOPs")
    archs = space.sample(args.candidates, budget, seed=0)

    rows = []
    print(
        f"{'candidate':46s} {'FLOPs':>14s} {'fvcore s':>9s} {'(trace s)':>9s} {'cold us':>8s} {'warm us':>8s}"
        f" {'speed-up':>9s}"
    )
    for arch in archs:
        t = time.perf_counter()
        build(arch)
        build_s = time.perf_counter() - t
        t = time.perf_counter()
        ref = fvcore_cost(arch)  # builds the model again and traces it
        fv_s = time.perf_counter() - t
        cold, warm = time_analytic(arch)
        assert (ref.flops, ref.params, ref.acts) == (cost(arch).flops, cost(arch).params, cost(arch).acts)
        rows.append(
            {
                "arch": arch.summary(),
                "flops": ref.flops,
                "fvcore_s": fv_s,
                "trace_s": fv_s - build_s,
                "analytic_cold_s": cold,
                "analytic_warm_s": warm,
                "speedup_cold": fv_s / cold,
            }
        )
        print(
            f"{arch.summary()[:46]:46s} {ref.flops:>14,} {fv_s:>9.3f} {fv_s - build_s:>9.3f} {cold * 1e6:>8.0f}"
            f" {warm * 1e6:>8.1f} {fv_s / cold:>8.0f}x"
        )
    speedups = [r["speedup_cold"] for r in rows]
    print(
        f"median speed-up, analytic (cold caches) vs fvcore: {statistics.median(speedups):,.0f}x "
        f"(min {min(speedups):,.0f}x); all {len(rows)} counts identical"
    )

    rates = []
    for seed in range(3):
        clear_caches()
        fresh = load_space("resnext")
        t = time.perf_counter()
        got = fresh.sample(args.samples, budget, seed=seed)
        rates.append(len(got) / (time.perf_counter() - t))
    print(
        f"feasible resnext candidates sampled per second under {budget.describe()}: "
        f"{statistics.median(rates):,.0f}/s (median of 3 runs of {args.samples:,}, cold caches; "
        f"runs: {', '.join(f'{r:,.0f}' for r in rates)})"
    )
    figures = {
        "candidates": rows,
        "median_speedup": statistics.median(speedups),
        "min_speedup": min(speedups),
        "sampling_per_s": statistics.median(rates),
        "sampling_runs_per_s": rates,
        "sampling_n": args.samples,
        "budget": budget.describe(),
    }
    path = write("cost", figures, command)
    print(f"machine: {describe()['cpu']}, torch {describe()['torch']}; written to {path}")


if __name__ == "__main__":
    main()
