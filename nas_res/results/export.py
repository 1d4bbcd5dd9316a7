"""A study's best architectures as files: arch files with cost, metrics, provenance and input
preprocessing, weights, ONNX.

Every file goes through `write_atomic`: written beside its name and renamed, so a file or link already
there is replaced, never written through, and nothing outside the chosen folder changes.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from ..arch.build import build
from ..arch.description import Arch
from ..data.dataset import load_data
from ..errors import ResnasError
from ..files import check_writable, write_atomic, write_text
from ..training.checkpoint import load
from ..training.evaluation import evaluate
from .final import final_name, final_table, proxy_was_better
from .latencies import study_key, with_latency
from .onnx_file import write_onnx
from .preprocessing import ONNX_INPUT_HELP, Preprocessor, check_onnx_input
from .record import Run
from .references import mark, reference_keys
from .report import check_top, pareto, rank, study_runs
from .storage import safe_url
from .store import Store


def export(
    store: Store,
    study: str,
    out_dir: str | Path,
    *,
    top: int = 1,
    front: bool = False,
    fmt: str = "yaml",
    weights: bool = False,
    onnx: bool = False,
    onnx_input: str = "raw",
    test: bool = False,
    data_dir: str | None = None,
    on_note: Callable[[str], None] | None = None,
) -> list[Path]:
    """Arch files `resnas train` and `nas_res.arch.build` load, with cost, metrics, provenance and the input
    preprocessing beside the arch; `weights`/`onnx` add the checkpoint and an ONNX file (its input as
    `onnx_input` says: see `ONNX_INPUTS`).

    Everything that can be refused is checked before anything is evaluated or written.
    `test=True` first evaluates the chosen models on the test split (stored, shown by the leaderboard).
    A finalized study exports its re-trained networks; `on_note` is told of each whose proxy run scored higher."""
    import yaml

    if fmt not in ("yaml", "json"):
        raise ResnasError(f"must be yaml or json; got {fmt!r}", field="--format")
    check_top(top)
    check_onnx_input(onnx_input)
    out_dir = Path(out_dir)
    check_writable(out_dir, field="--out", folder=True)
    all_runs = study_runs(store, study)
    rows = with_latency(mark(rank(all_runs), reference_keys(store, study)), store, study)
    if not rows:
        raise ResnasError(f"study {study!r} has no finished trial to export yet", field="study")
    if front and any(r.get("task") == "vae" for r in rows):
        raise ResnasError(
            f"study {study!r} holds VAEs: --pareto is the accuracy-FLOPs front of classifiers; --top K exports "
            "the K lowest validation -ELBO",
            field="--pareto",
        )
    by = "latency_ms" if store.config_of(study).get("objective") == "accuracy+latency" else "flops"  # the front's cost
    chosen = pareto([r for r in rows if r.get(by) is not None], by) if front else rows[:top]
    final = [] if front else final_table(store, study, rows)
    by_key = {r["arch_key"]: r["reference"] for r in rows}
    if final:  # re-trained (resnas finalize): its ranking, each architecture's best seed, from STUDY.final
        if on_note is not None:
            for line in proxy_was_better(study, final[:top]):
                on_note(line)
        study, all_runs = final_name(study), store.runs(final_name(study))
        by_trial = {r["trial"]: r for r in rank(all_runs)}
        chosen = [
            {**by_trial[f["best_trial"]], "rank": f["final_rank"], "final": f, "reference": by_key.get(f["arch_key"])}
            for f in final[:top]
        ]
    runs = {r.trial: r for r in all_runs}
    chosen = with_latency(chosen, store, study)
    vae = any(r.get("task") == "vae" for r in chosen)
    if vae and onnx:
        raise ResnasError(
            f"study {study!r} holds VAEs; ONNX export is for classifiers (a VAE's forward pass draws a random "
            "latent): export the arch and --weights",
            field="--onnx",
        )
    trained = {}  # the checkpoints' data records, each checked to hold its trial's network
    if weights or onnx:
        for row in chosen:
            run = runs[row["trial"]]
            trained[run.trial] = _checked_state(run, study, "--weights" if weights else "--onnx")["data"]
    config = store.config_of(study)
    preprocessor = Preprocessor(config, data_dir)
    inputs = {
        t: preprocessor.of(runs[t], need_stats=onnx, trained=trained.get(t)) for t in (r["trial"] for r in chosen)
    }
    if test:
        evaluate_runs(store, study, chosen, runs, data_dir=data_dir)
    written = []
    for row in chosen:
        run = runs[row["trial"]]
        name = f"{re.sub(r'[^A-Za-z0-9._+-]', '_', study).lstrip('.')}-trial{row['trial']:04d}"

        def stem(ext: str, name: str = name) -> Path:  # not with_suffix: a study's name may hold a dot
            return out_dir / f"{name}.{ext}"

        record = _record(run, row, study, store, config, inputs[run.trial])
        if onnx:
            record["onnx"] = {
                "file": stem("onnx").name,
                "input": onnx_input,
                "expects": ONNX_INPUT_HELP[onnx_input],
                "output": "logits, N x classes",
            }
        path = stem(fmt)
        text = yaml.safe_dump(record, sort_keys=False) if fmt == "yaml" else json.dumps(record, indent=2) + "\n"
        written.append(write_text(path, text, field="--out"))
        if weights:
            with open(_check_checkpoint(run, study, "--weights", ""), "rb") as src:
                written.append(write_atomic(stem("pt"), lambda f: shutil.copyfileobj(src, f), field="--out"))
        if onnx:
            checkpoint = _check_checkpoint(run, study, "--onnx", "")
            written.append(write_onnx(checkpoint, stem("onnx"), inputs[run.trial], onnx_input))
        if vae and run.checkpoint and Path(run.checkpoint).exists():  # its reconstructions and samples
            written.append(_vae_picture(run, study, config, stem("png"), data_dir))
    return written


def _vae_picture(run: Run, study: str, config: dict, path: Path, data_dir: str | None) -> Path:
    """A VAE trial's picture (validation images, reconstructions, prior samples) from its checkpoint."""
    from ..arch.vae import VAE
    from .vae_plot import save_vae_pictures

    state = _checked_state(run, study, "--out")
    model = build(Arch.from_dict(state["arch"]))
    assert isinstance(model, VAE), "a VAE study's checkpoints hold VAEs"
    model.load_state_dict(state["model"])
    data = load_data(
        config["dataset"],
        data_dir=data_dir,
        val_size=config["val_size"],
        split_seed=config["split_seed"],
        image_size=model.arch.resolution,
    )
    return save_vae_pictures(model, data, path, title=f"{study} trial {run.trial}: {run.summary}")


def _record(run: Run, row: dict, study: str, store: Store, config: dict, preprocessing: dict) -> dict:
    """The exported file's content: the arch, then what it costs, how it did, where it came from, and
    what its input must look like."""
    return {
        "arch": run.arch,
        "cost": {
            "flops": row["flops"],
            "params": row["params"],
            "acts": row["acts"],
            "resolution": run.arch["resolution"],
            **(
                {"latency_ms": row["latency_ms"], "latency_measured_as": study_key(store, study)}
                if row.get("latency_ms") is not None
                else {}
            ),
        },
        "metrics": {
            **(
                {k: row.get(k) for k in ("val_nelbo", "val_bpd", "test_nelbo", "test_bpd")}
                if row.get("task") == "vae"
                else {"val_acc": row["val_acc"], "test_acc": row["test_acc"]}
            ),
            "epochs": row["epochs"],
            "rank": row["rank"],
            "history": run.history,
            **({"final": _final_metrics(row["final"])} if row.get("final") else {}),
        },
        "provenance": {
            "study": study,
            "trial": row["trial"],
            "storage": safe_url(store.url),
            "space": config["space_name"],
            "budget": config["budget_text"],
            "dataset": config["dataset"],
            "val_size": config["val_size"],
            "split_seed": config["split_seed"],
            "recipe": run.recipe,
            "reused_from": run.reused_from,
            "resnas": run.version,
            "arch_key": row["arch_key"],
            "reference": row.get("reference"),  # the zoo net this is, where the search queued it as a hand pick
        },
        "preprocessing": preprocessing,
    }


def _final_metrics(f: dict) -> dict:
    """What the re-training measured for an architecture, over its seeds, and what the proxy had said."""
    keys = ("val_mean", "val_sd", "val_lo", "val_hi", "test_mean", "test_sd", "seeds", "proxy_rank", "proxy_val_acc")
    return {k: f[k] for k in keys}


def evaluate_runs(
    store: Store,
    study: str,
    rows: list[dict],
    runs: dict[int, Run],
    *,
    data_dir: str | None = None,
    device: str = "auto",
) -> None:
    """The explicit final evaluation: each row's trained weights on the test split; stored with its run."""
    config = store.config_of(study)
    data = load_data(
        config["dataset"], data_dir=data_dir, val_size=config["val_size"], split_seed=config["split_seed"], test=True
    )
    for row in rows:
        run = runs[row["trial"]]
        state = _checked_state(run, study, "--test")
        model = build(Arch.from_dict(state["arch"]))
        model.load_state_dict(state["model"])
        result = evaluate(model, data, "test", device=device, per_image=True)
        if row.get("task") == "vae":  # its negative ELBO goes into the exported file (the stored column is accuracy)
            row["test_nelbo"], row["test_bpd"] = result["loss"], result["bpd"]
            continue
        row["test_acc"] = result["top1"]
        store.set_test_acc(run.id, row["test_acc"], result.get("correct"))  # which images: paired comparisons
        store.set_study_values(study, test_images=result["images"])


def _checked_state(run: Run, study: str, field: str) -> dict:
    """The run's checkpoint, read and checked to hold the run's own network: a folder of checkpoints
    shared by two studies (`--checkpoints`) can hold another trial's network under the same number."""
    state = load(_check_checkpoint(run, study, field, " to evaluate" if field == "--test" else ""))
    held = Arch.from_dict(state["arch"])
    if held.key != run.arch_key:
        raise ResnasError(
            f"trial {run.trial} of {study!r}: its checkpoint {run.checkpoint} holds another network "
            f"({held.summary()}, not the trial's {run.summary}); it was overwritten, e.g. by a study "
            "given the same --checkpoints folder",
            field=field,
        )
    return state


def _check_checkpoint(run: Run, study: str, field: str, purpose: str) -> str:
    """The run's checkpoint, which must be on this machine for what `field` asks."""
    if not run.checkpoint and run.status.ranks and not run.reused:
        raise ResnasError(
            f"trial {run.trial} of {study!r} kept no weights: a search keeps only the best trials' final "
            f"weights (--keep-checkpoints, default best:5){purpose}; export one of those, or re-train it",
            field=field,
        )
    if not run.checkpoint or not Path(run.checkpoint).exists():
        raise ResnasError(
            f"trial {run.trial} of {study!r} has no checkpoint on this machine "
            f"({run.checkpoint or 'none recorded'}){purpose}",
            field=field,
        )
    return run.checkpoint
