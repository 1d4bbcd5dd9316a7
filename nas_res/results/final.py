"""A search's final ranking: its best architectures re-trained (`resnas finalize`), read beside the proxy.

The re-training is a study of its own, `STUDY.final`, in the same storage as `STUDY`: each of its
runs trains one proxy architecture with the final recipe and one seed. Here those runs become one row
per architecture (mean and spread over seeds, with an interval), ranked by the final validation
accuracy, and the proxy's rank and accuracy beside it: what `leaderboard`, `fidelity` and `export` show.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from ..errors import ResnasError
from .fidelity import fidelity
from .paired import pooled_over_seeds
from .record import Run
from .store import Store
from .uncertainty import PERCENT, seed_summary

SUFFIX = ".final"
VAE_RETRAIN = (
    "re-train its best with `resnas train FILE.yaml --seed N` on the files `resnas export` writes, or compare "
    "them as an experiment with task: vae (see vae-depth)"
)


def final_name(study: str) -> str:
    """The study that holds `study`'s re-training."""
    return f"{study}{SUFFIX}"


def no_final(store: Store, study: str, config: dict) -> str:
    """Why `study` (stored with `config`) has no final ranking, and what to run: raised as a `ResnasError`
    where `resnas finalize` would refuse it too (a re-training itself, a VAE search), so no message sends
    the user to a command that then refuses."""
    base = study.removesuffix(SUFFIX)
    if study.endswith(SUFFIX) and store.study_config(base) is not None:
        raise ResnasError(
            f"{study!r} is the re-training of {base!r}: its ranking beside the proxy's is `resnas fidelity {base}`",
            field="study",
        )
    if (config.get("space") or {}).get("task") == "vae":
        raise ResnasError(
            f"study {study!r} is a VAE search: finalize re-trains classifiers and ranks them by accuracy, so there "
            f"is no final ranking to judge its proxy by; {VAE_RETRAIN}",
            field="study",
        )
    if store.study_config(final_name(study)) is not None:
        return (
            f"the re-training of {study!r} ({final_name(study)!r}) has no finished run yet: run the same "
            f"resnas finalize {study} command to resume it (see resnas leaderboard {final_name(study)} --all)"
        )
    if not any(r.status.ranks and r.best_val_acc is not None for r in store.runs(study)):
        return (
            f"study {study!r} has no trained trial yet, so nothing to re-train (see resnas leaderboard {study} --all)"
        )
    return f"study {study!r} has not been finalized yet: run resnas finalize {study}"


def final_runs(store: Store, study: str) -> list[Run]:
    """The ranked runs of `study`'s re-training (none when it was never finalized)."""
    if store.study_config(final_name(study)) is None:
        return []
    return [r for r in store.runs(final_name(study)) if r.status.ranks and r.best_val_acc is not None]


def final_table(store: Store, study: str, proxy_rows: list[dict]) -> list[dict]:
    """One row per re-trained architecture, best final mean validation accuracy first (ties: fewer FLOPs):
    seeds, mean, sd and 95% interval of validation (and test, where measured) accuracy, and the
    architecture's rank and accuracy in `proxy_rows` (the study's whole leaderboard), and the row against
    the first one by McNemar's exact test, seeds paired and their discordant counts summed, on the test
    images where tested, else on the validation images (paired.pooled_over_seeds: vs_best_split,
    vs_best_seeds, vs_best_b, vs_best_c, vs_best_p, vs_best_means). Empty when the study was not finalized."""
    runs = final_runs(store, study)
    if not runs:
        return []
    proxy = {r["arch_key"]: r for r in proxy_rows}
    by_arch: dict[str, list[Run]] = defaultdict(list)
    for r in runs:
        by_arch[r.arch_key].append(r)
    rows = []
    for key, group in by_arch.items():
        group.sort(key=lambda r: (int(r.recipe.get("seed", 0)), r.trial))
        val = seed_summary([r.best_val_acc for r in group if r.best_val_acc is not None], within=PERCENT)
        tests = [r.test_acc for r in group if r.test_acc is not None]
        test = seed_summary(tests) if tests else None
        best = max(group, key=lambda r: (r.best_val_acc or 0.0, -r.trial))
        p = proxy.get(key, {})
        rows.append(
            {
                "arch_key": key,
                "summary": group[0].summary,
                "flops": group[0].flops,
                "params": group[0].params,
                "proxy_rank": p.get("rank"),
                "proxy_val_acc": p.get("val_acc"),
                "seeds": [int(r.recipe.get("seed", 0)) for r in group],
                "val_mean": val["mean"],
                "val_sd": val["sd"],
                "val_lo": val["lo"],
                "val_hi": val["hi"],
                "test_mean": test["mean"] if test else None,
                "test_sd": test["sd"] if test else None,
                "tested": len(tests),
                "epochs": max(r.epochs for r in group),
                "best_trial": best.trial,  # the seed whose weights `export` takes
                "best_val_acc": best.best_val_acc,
                "proxy_trial": p.get("trial"),
                "proxy_epochs": p.get("epochs"),
                "proxy_checkpoint": p.get("checkpoint"),
                "trials": [r.trial for r in group],
            }
        )
    rows.sort(key=lambda r: (-r["val_mean"], r["flops"], r["arch_key"]))
    for i, row in enumerate(rows, 1):
        row["final_rank"] = i
        row.update(pooled_over_seeds(by_arch[rows[0]["arch_key"]], by_arch[row["arch_key"]]))
    return rows


def proxy_was_better(study: str, rows: list[dict]) -> list[str]:
    """One line per final row whose exported weights (its best seed) score below the proxy run of the same
    architecture on the same validation images: which weights `export` takes, which were better, by how
    much, and where those are. A re-training is meant to do better; when it did not, that must be said."""
    notes = []
    for r in rows:
        final, proxy = r.get("best_val_acc"), r.get("proxy_val_acc")
        if final is None or proxy is None or final >= proxy:
            continue
        kept = r.get("proxy_checkpoint")
        where = f"; its weights: {kept}" if kept and Path(kept).exists() else ""
        notes.append(
            f"{r['summary']}: `resnas export {study}` takes its re-trained weights ({final_name(study)} trial "
            f"{r['best_trial']}, the best of {len(r['seeds'])} seed(s): {final:.2f}% validation after "
            f"{r['epochs']} epoch(s)), {proxy - final:.2f} points below its proxy run's (trial {r['proxy_trial']} "
            f"of {study!r}: {proxy:.2f}% after {r['proxy_epochs']} epoch(s){where})"
        )
    return notes


def with_final(rows: list[dict], table: list[dict]) -> list[dict]:
    """Leaderboard rows with the final columns of their architecture (None where it was not re-trained)."""
    final = {r["arch_key"]: r for r in table}
    for row in rows:
        f = final.get(row["arch_key"], {})
        for key in ("final_rank", "val_mean", "val_sd", "test_mean", "test_sd"):
            row[f"final_{key.removeprefix('final_')}"] = f.get(key)
        row["final_seeds"] = len(f.get("seeds", ())) or None
    return rows


def study_fidelity(table: list[dict]) -> dict:
    """How well the proxy ranked what the final training found, beside ranking by FLOPs or by params."""
    return fidelity(
        [
            {"proxy_acc": r["proxy_val_acc"], "final_acc": r["val_mean"], "flops": r["flops"], "params": r["params"]}
            for r in table
            if r["proxy_val_acc"] is not None
        ]
    )
