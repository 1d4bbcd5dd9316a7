"""A training run as `resnas train` makes one: every decision planned and checked before data loads.

`plan_training` resolves the arch (zoo name or file), the recipe (a file plus overrides), the
validation split, the output folder and whether its checkpoint is continued or replaced, refusing
a contradiction with the option named. `run_training` then trains, evaluates on the test split when
asked, and writes metrics.json beside the checkpoint. A Python user gets what the command does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..arch.description import Arch, requested_task
from ..arch.zoo import names as zoo_names
from ..arch.zoo import resolve_arch
from ..data.dataset import load_data
from ..data.splits import Data, parse_val_size
from ..errors import ResnasError
from ..files import check_writable, write_text
from ..memory import check_need
from . import checkpoint
from .evaluation import evaluate
from .fitting import check_fit, fit_to_data
from .recipe import MAX_SEED, Recipe, recipe_with
from .status import RunStatus
from .threads import plan_threads, use_threads
from .trainer import BatchProgress, EpochMetrics, Result, train

RUNS = Path("runs")  # where runs go without an output folder: runs/NAME-DATASET (runs/NAME-vae-DATASET)
METRICS_NAME = "metrics.json"
VAE_PICTURE = "vae.png"  # a VAE's reconstructions and prior samples, beside its checkpoint


@dataclass(frozen=True)
class TrainPlan:
    """A checked training run: what to train, how, on which split of which data, and where it goes."""

    name: str  # the zoo name or the arch file's stem
    arch: Arch  # as given; `arch_for` adapts it to the data when `fit`
    recipe: Recipe
    dataset: str
    val_size: float | int  # a fraction (< 1) or a count of images
    split_seed: int
    image_size: int  # the side ImageFolder images are decoded at
    fit: bool  # set the arch's in_channels and classes from the data
    out: Path
    resume: bool  # continue `out`'s checkpoint (else start over, replacing any)
    test: bool  # evaluate on the test split at the end, never during training
    device: str = "auto"
    data_dir: Path | None = None
    download: bool = True
    threads: int = 1  # CPU threads torch uses (see nas_res.training.threads)

    @property
    def checkpoint(self) -> Path:
        return self.out / checkpoint.FILE_NAME

    @property
    def metrics(self) -> Path:
        return self.out / METRICS_NAME

    @property
    def picture(self) -> Path | None:
        """Where a VAE's picture goes (a classifier has none)."""
        return self.out / VAE_PICTURE if self.arch.task == "vae" else None

    def load_data(self) -> Data:
        """The dataset, its validation split carved as planned (and its test split only when asked);
        refused when the training split is smaller than one batch."""
        try:
            data = load_data(
                self.dataset,
                data_dir=self.data_dir,
                val_size=self.val_size,
                split_seed=self.split_seed,
                test=self.test,
                download=self.download,
                image_size=self.image_size,
            )
        except ResnasError as e:  # name the option that set it
            if e.field != "val_size" or e.where:
                raise
            raise ResnasError(e.bare, field="--val-size") from None
        self.recipe.check_batch(len(data.train), field="--batch-size")
        return data

    def arch_for(self, data: Data) -> Arch:
        """The arch this run trains on `data`: adapted to its channels and classes when `fit`, and
        refused (naming both) when it does not fit them."""
        arch = fit_to_data(self.arch, data) if self.fit else self.arch
        check_fit(arch, data)
        return arch


def plan_training(
    target: str,
    *,
    dataset: str = "digits",
    recipe_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    val_size: float | int | str = 0.1,
    split_seed: int = 0,
    image_size: int | None = None,
    fit: bool | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    test: bool = False,
    device: str = "auto",
    data_dir: str | Path | None = None,
    download: bool = True,
    threads: int | None = None,
    task: str | None = None,
    latent: int | None = None,
    likelihood: str | None = None,
) -> TrainPlan:
    """Check and settle a training run of `target` (a zoo name or an arch file) on `dataset`.

    `recipe_file` is a recipe file; `overrides` are `Recipe` fields over it (None: keep the file's).
    `fit` defaults to yes for zoo names (families adapted to the data), no for arch files (trained as
    written). `out` defaults to runs/NAME-DATASET, checked writable now; a checkpoint already there
    needs `resume` or `overwrite`. `threads`: CPU threads (default: `OMP_NUM_THREADS`, else every usable
    core). `task` (classify or vae), `latent` and `likelihood` turn the arch into a VAE's encoder, or back
    (None: as the arch says); a VAE trains with the `vae` recipe unless another is given. Errors name the
    `resnas train` option at fault."""
    name, arch = resolve_arch(target)
    arch = with_task(arch, task, latent, likelihood)
    recipe = recipe_with(recipe_file, arch.task, **(overrides or {}))
    val_size = parse_val_size(val_size, field="--val-size")
    if not 0 <= split_seed <= MAX_SEED:
        raise ResnasError(f"must be an integer from 0 to {MAX_SEED:,}; got {split_seed}", field="--split-seed")
    if image_size is not None and image_size < 1:
        raise ResnasError(f"must be a positive number of pixels; got {image_size}", field="--image-size")
    named = dataset.partition(":")[0].strip().lower()
    if image_size is not None and named != "imagefolder":  # else silently ignored: the images keep their size
        raise ResnasError(
            f"applies to imagefolder data only (the side its images are decoded at); {named} images keep their "
            "own size: drop --image-size",
            field="--image-size",
        )
    kind = "-vae" if arch.task == "vae" else ""
    folder = Path(out) if out is not None else RUNS / f"{name}{kind}-{dataset.split(':')[0]}"
    check_writable(folder, field="--out", folder=True)  # before any work: not after an epoch of it
    if resume and overwrite:
        raise ResnasError("--resume continues the checkpoint, --overwrite replaces it: choose one", field="--resume")
    if not (resume or overwrite) and (folder / checkpoint.FILE_NAME).exists():
        raise ResnasError(
            f"{folder} already holds a checkpoint; pass --resume to continue it, --overwrite to start "
            "over, or choose another --out",
            field="--out",
        )
    return TrainPlan(
        name=name,
        arch=arch,
        recipe=recipe,
        dataset=dataset,
        val_size=val_size,
        split_seed=split_seed,
        image_size=image_size or arch.resolution,
        fit=target in zoo_names() if fit is None else fit,
        out=folder,
        resume=resume,
        test=test,
        device=device,
        data_dir=Path(data_dir) if data_dir is not None else None,
        download=download,
        threads=plan_threads(threads, 1),
    )


# Bytes held per activation value (`cost`'s count), in float32 units, while training on the CPU: the
# autograd graph, channels_last copies and the validation batches. Measured as the peak RSS of one epoch
# over the RSS before it at 3.7-5.0 (resnet56_cifar, resnet110_cifar, preact_resnet164; batches 32-64).
TRAIN_FACTOR = 5.0
TRAIN_PARAM_BYTES = 16  # each parameter's weight, gradient and optimizer state (Adam: two of them)


def memory_note(plan: TrainPlan, arch: Arch, data: Data) -> str | None:
    """Estimate the host memory training `arch` (as fitted) on `data` takes from its exact activation
    count; refuse it when that is more than the memory available (the OS kills a process past it, where a
    GPU's out-of-memory is caught and reported), and return a note over half of it. None on a GPU."""
    from ..arch.cost import cost
    from .device import resolve_device

    if resolve_device(plan.device).type != "cpu":
        return None
    c, batch = cost(arch, data.size), plan.recipe.batch_size
    need = int(c.acts * batch * 4 * TRAIN_FACTOR) + c.params * TRAIN_PARAM_BYTES
    basis = (
        f"{c.acts:,} activations x {batch} images x 4 bytes x {TRAIN_FACTOR} while training, + {c.params:,} "
        f"parameters x {TRAIN_PARAM_BYTES} bytes"
    )
    what = f"training {plan.name} at batch {batch}"
    return check_need(need, what, basis, field="--batch-size", fix="lower --batch-size", device="cpu")


def with_task(arch: Arch, task: str | None, latent: int | None, likelihood: str | None) -> Arch:
    """`arch` as the task asks: a VAE's encoder (with its latent and likelihood), or a classifier.
    A latent or likelihood alone changes a VAE; a classifier needs --task vae too (`requested_task`)."""
    if requested_task(arch.task, task, latent, likelihood) == "classify":
        return arch if arch.task == "classify" else arch.replace(task="classify", latent=None, likelihood=None)
    try:
        return arch.replace(
            task="vae",
            latent=arch.latent if latent is None else latent,
            likelihood=arch.likelihood if likelihood is None else likelihood,
        )
    except ResnasError as e:
        raise ResnasError(e.bare, field=f"--{e.field}" if e.field in ("latent", "likelihood") else e.field) from None


def run_training(
    plan: TrainPlan,
    data: Data,
    *,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    on_batch: Callable[[BatchProgress], None] | None = None,
) -> Result:
    """Train as planned on `data` (from `plan.load_data()`), checkpointing every epoch into `plan.out`;
    then the test split when planned (unless the run diverged), and `plan.metrics` written."""
    recipe = plan.recipe
    use_threads(plan.threads)
    result = train(
        plan.arch_for(data),
        data,
        recipe,
        device=plan.device,
        on_batch=on_batch,
        on_epoch=on_epoch,
        out=plan.out,
        resume=plan.resume,
    )
    if plan.test and result.model is not None and result.status != RunStatus.DIVERGED:
        result.test = evaluate(result.model, data, "test", device=plan.device, recipe=recipe)
    write_text(plan.metrics, json.dumps(result.to_dict(), indent=2) + "\n")
    return result
