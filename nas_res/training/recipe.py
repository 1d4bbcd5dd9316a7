"""`Recipe`: how a network is trained, as data that is saved with every result and checkpoint."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ResnasError
from ..yamlfile import read_yaml

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "linear", "onecycle", "constant")
PRECISIONS = ("auto", "bf16", "fp32")
# Beyond any real run, so a typo (10^20 epochs) is refused rather than trained until killed: published
# schedules end within a few thousand epochs and the largest batches used are a few tens of thousands.
MAX_EPOCHS = 10_000
MAX_BATCH = 1 << 20
MAX_SEED = 2**32 - 1  # torch's generators overflow past 2**64; numpy's legacy ones past 2**32


@dataclass(frozen=True)
class Recipe:
    """How to train: saved with every result and checkpoint so a number always says how it was made."""

    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"  # sgd: Nesterov momentum; adamw
    lr: float = 0.1  # peak learning rate, reached after warmup
    momentum: float = 0.9
    weight_decay: float = 5e-4  # never applied to BN weights and biases
    schedule: str = "cosine"  # decay after warmup: cosine | linear | onecycle | constant
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    grad_clip: float | None = None  # max global gradient norm
    precision: str = "auto"  # auto: bf16 autocast on GPU, fp32 on CPU
    channels_last: bool = True  # NHWC activations: faster convs on GPU and on CPU (oneDNN)
    compile: bool = False  # torch.compile; its time is reported apart from throughput
    patience: int | None = None  # stop after this many epochs without a lower validation loss
    seed: int = 0

    def __post_init__(self) -> None:
        def bad(name: str, allowed: str):
            raise ResnasError(f"must be {allowed}; got {getattr(self, name)!r}", field=f"recipe.{name}")

        for name, most in (("epochs", MAX_EPOCHS), ("batch_size", MAX_BATCH), ("seed", MAX_SEED)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "seed" else 1):
                bad(name, "a non-negative integer" if name == "seed" else "a positive integer")
            if v > most:
                bad(name, f"at most {most:,}")
        for name in ("lr", "momentum", "weight_decay", "warmup_epochs", "label_smoothing"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                bad(name, "a non-negative number")
        if self.warmup_epochs > MAX_EPOCHS:
            bad("warmup_epochs", f"at most {MAX_EPOCHS:,}")
        if self.lr == 0:
            bad("lr", "a positive number")
        if self.label_smoothing >= 1 or self.momentum >= 1:
            bad("label_smoothing" if self.label_smoothing >= 1 else "momentum", "in [0, 1)")
        if self.grad_clip is not None and (isinstance(self.grad_clip, bool) or not self.grad_clip > 0):
            bad("grad_clip", "a positive number or null")
        if self.patience is not None and (
            isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 1
        ):
            bad("patience", "a positive integer or null")
        for name, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("precision", PRECISIONS)):
            if getattr(self, name) not in allowed:
                bad(name, "one of " + ", ".join(allowed))
        for name in ("channels_last", "compile"):
            if not isinstance(getattr(self, name), bool):
                bad(name, "true or false")

    def check_batch(self, train_images: int, field: str = "batch_size") -> None:
        """Refuse a training split smaller than one batch: every step would see the same few images."""
        if train_images < self.batch_size:
            raise ResnasError(
                f"{self.batch_size} is more than the {train_images:,} training images; lower the batch size "
                "or the validation split, or raise the training subset (--train-size)",
                field=field,
            )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, where: str = "") -> Recipe:
        known = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(d, dict):
            raise ResnasError(
                f"a recipe must be a mapping of fields ({', '.join(sorted(known))}); got {type(d).__name__}",
                where=where,
            )
        unknown = sorted(str(k) for k in set(d) - known)
        if unknown:
            raise ResnasError(
                f"unknown recipe field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}", where=where
            )
        try:
            return cls(**d)
        except ResnasError as e:
            raise ResnasError(e.bare, where=where, field=e.field) from None

    def replace(self, **changes: Any) -> Recipe:
        try:
            return dataclasses.replace(self, **changes)
        except ResnasError as e:
            flag = "--" + e.field.removeprefix("recipe.").replace("_", "-")  # the option as typed: --batch-size
            raise ResnasError(e.bare, field=flag) from None


def load_recipe(path: str | Path) -> Recipe:
    """A recipe from YAML/JSON (a mapping of `Recipe` fields, or `{recipe: {...}}` as in metrics.json)."""
    d = read_yaml(path, "recipe file")
    if isinstance(d, dict) and isinstance(d.get("recipe"), dict):
        d = d["recipe"]
    if not isinstance(d, dict):
        raise ResnasError("must be a mapping of recipe fields (epochs, lr, ...)", where=str(path))
    return Recipe.from_dict(d, where=str(path))


def recipe_with(path: str | Path | None = None, task: str = "classify", **overrides: Any) -> Recipe:
    """A recipe file's recipe (without one, the task's default: `TRAIN_DEFAULT`) with each override that
    is not None applied: a command line's flags over its `--recipe` file."""
    base = load_recipe(path) if path else PRESETS[TRAIN_DEFAULT[task]]
    return base.replace(**{k: v for k, v in overrides.items() if v is not None})


def lr_factor(recipe: Recipe, steps_per_epoch: int) -> Callable[[int], float]:
    """Multiplier of the peak lr at each optimiser step: linear warmup, then the recipe's decay."""
    total = recipe.epochs * steps_per_epoch
    warm = min(round(recipe.warmup_epochs * steps_per_epoch), total - 1)

    def factor(step: int) -> float:
        if step < warm:
            start = 1 / 25 if recipe.schedule == "onecycle" else 0.0
            return start + (1 - start) * (step + 1) / warm
        t = min(1.0, (step - warm) / max(1, total - warm))
        if recipe.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * t))
        if recipe.schedule == "linear":
            return 1 - t
        if recipe.schedule == "onecycle":  # anneal far below the start (torch's OneCycleLR shape)
            return 1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * t))
        return 1.0

    return factor


# Named recipes for `--recipe NAME`: `fast` is a proxy (short training to rank candidates), `default`
# the trainer's defaults. A VAE's (`vae`, and `vae-fast` its proxy) use Adam at 1e-3 with no weight
# decay or label smoothing, and stop early when the validation loss stalls, as the source study did.
PRESETS = {
    "fast": Recipe(epochs=5, batch_size=64, lr=0.1, warmup_epochs=0.5),
    "default": Recipe(),
    "vae": Recipe(
        epochs=30, optimizer="adamw", lr=1e-3, weight_decay=0.0, label_smoothing=0.0, warmup_epochs=1.0, patience=5
    ),
    "vae-fast": Recipe(
        epochs=5,
        batch_size=64,
        optimizer="adamw",
        lr=1e-3,
        weight_decay=0.0,
        label_smoothing=0.0,
        warmup_epochs=0.5,
        patience=2,
    ),
}
# The recipe a task trains with when none is named: `resnas train`'s, and a search's proxy.
TRAIN_DEFAULT = {"classify": "default", "vae": "vae"}
SEARCH_DEFAULT = {"classify": "fast", "vae": "vae-fast"}
