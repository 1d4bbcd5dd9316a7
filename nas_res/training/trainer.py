"""The trainer: one short, reproducible training run of an `Arch` on a `Data`, ending in a status.

Search runs many of these, so a run never raises for what a candidate can do wrong: a NaN loss,
a CUDA out-of-memory or a pruning decision become `Result.status` with a reason. Metrics are summed
on the device and read once per epoch (no per-batch host sync); `on_epoch` receives them, which is
where search reports to Optuna and prunes (by raising `Pruned`).

Over 300 lines: the training loop with the ways it ends (NaN, out of memory, pruning, resume); split, the
status rules would sit apart from the code that meets them.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from ..arch.build import build
from ..arch.cost import cost
from ..arch.description import Arch
from ..data.batches import batches
from ..data.splits import Data
from ..errors import count
from . import checkpoint
from .device import autocast, channels_last_safe, resolve_device, sync
from .elbo import negative_elbo, pixels_from
from .evaluation import evaluate, run_eval, run_vae_eval
from .fitting import check_fit
from .optim import make_optimizer, make_scheduler
from .recipe import Recipe
from .status import RunStatus

# `evaluate`, `check_fit`, `make_optimizer` and `resolve_device` are also imported from here.
__all__ = [
    "BatchProgress",
    "EpochMetrics",
    "Pruned",
    "Result",
    "check_fit",
    "evaluate",
    "make_optimizer",
    "resolve_device",
    "train",
]


class Pruned(Exception):
    """Raised by an `on_epoch` callback to stop the run as `pruned` (search's pruner said so)."""


@dataclass
class EpochMetrics:
    epoch: int  # 1-based
    train_loss: float
    train_acc: float  # % on augmented batches
    val_loss: float  # plain cross-entropy (no smoothing), comparable across recipes
    val_acc: float  # %
    lr: float  # at the end of the epoch
    seconds: float  # training and validation
    images_per_s: float  # training images / training seconds
    # A VAE's (whose losses are negative ELBOs per image, nats; it has no accuracy): the validation
    # ELBO's terms, and bits/dim where its likelihood has them. None for a classifier.
    val_recon: float | None = None
    val_kl: float | None = None
    val_bpd: float | None = None

    def to_dict(self) -> dict:
        """The fields, non-finite ones as None; a classifier's without the VAE's."""
        d = {k: _finite(v) for k, v in dataclasses.asdict(self).items()}
        return {k: v for k, v in d.items() if k not in VAE_FIELDS or v is not None}


VAE_FIELDS = ("val_recon", "val_kl", "val_bpd")


@dataclass
class BatchProgress:
    epoch: int
    batch: int  # 1-based, of `batches`
    batches: int
    loss: float  # running mean over the epoch so far
    acc: float
    images_per_s: float


@dataclass
class Result:
    status: RunStatus
    reason: str
    history: list[EpochMetrics]
    recipe: Recipe
    arch: Arch
    data: dict
    device: str
    cost: dict
    train_seconds: float = 0.0
    compile_seconds: float | None = None
    images_per_s: float = 0.0
    test: dict | None = None
    model: nn.Module | None = field(default=None, repr=False)
    # which validation images the best epoch (`best`) got right (evaluation.pack_correct); None for a VAE,
    # or where that epoch came from a checkpoint that did not keep it. Not in to_dict: bytes, not JSON.
    val_correct: bytes | None = field(default=None, repr=False)

    @property
    def best(self) -> EpochMetrics | None:
        """The epoch with the highest validation accuracy (a VAE's: the lowest validation loss)."""
        return best_epoch(self.history, self.arch.task)

    def to_dict(self) -> dict:
        best = self.best
        return {
            "status": str(self.status),  # the plain text, as stored and compared
            "reason": self.reason,
            "epochs": len(self.history),
            "best": best.to_dict() if best else None,
            "final": self.history[-1].to_dict() if self.history else None,
            "images_per_s": _finite(self.images_per_s),
            "train_seconds": self.train_seconds,
            "compile_seconds": self.compile_seconds,
            "device": self.device,
            "test": self.test,
            "cost": self.cost,
            "data": self.data,
            "recipe": self.recipe.to_dict(),
            "arch": self.arch.to_dict(),
            "arch_key": self.arch.key,
            "history": [m.to_dict() for m in self.history],
        }


def best_epoch(history: list[EpochMetrics], task: str = "classify") -> EpochMetrics | None:
    """A classifier's epoch of highest validation accuracy; a VAE's of lowest validation loss."""
    if task == "vae":
        finite = [m for m in history if math.isfinite(m.val_loss)]
        return min(finite, key=lambda m: m.val_loss) if finite else None
    finite = [m for m in history if math.isfinite(m.val_acc)]
    return max(finite, key=lambda m: m.val_acc) if finite else None


def _kept_correct(state: dict, data: Data) -> bytes | None:
    """The best epoch's validation record a checkpoint kept, if it has one of the right size."""
    kept = state.get("val_correct")
    size = -(-len(data.val) // 8)
    if isinstance(kept, torch.Tensor) and kept.dtype == torch.uint8 and kept.dim() == 1 and len(kept) == size:
        return kept.numpy().tobytes()
    return None


def _finite(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


def train(
    arch: Arch,
    data: Data,
    recipe: Recipe = Recipe(),
    *,
    device: str | torch.device = "auto",
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    on_batch: Callable[[BatchProgress], None] | None = None,
    batch_every: int = 0,
    out: str | Path | None = None,
    resume: bool = False,
) -> Result:
    """Train `arch` on `data.train`, validating on `data.val` each epoch; never raises for a candidate's failure.

    With `out`, a checkpoint is written there after every epoch; `resume=True` continues from it.
    `on_batch` gets running metrics every `batch_every` batches (0: about 50 times an epoch); each call
    is one host sync, so leave it None where speed matters."""
    check_fit(arch, data)
    vae = arch.task == "vae"
    if vae:  # a VAE models the images as they are: crops and flips would change what it is scored on
        data = dataclasses.replace(data, pad=0, flip=False)
    dev = resolve_device(device)
    ckpt_path = Path(out) / checkpoint.FILE_NAME if out is not None else None
    state = checkpoint.load_matching(ckpt_path, arch, recipe, data) if resume else None

    c = cost(arch)
    result = Result(
        RunStatus.OK,
        "",
        [],
        recipe,
        arch,
        data.describe(),
        str(dev),
        {
            "flops": c.flops,
            "params": c.params,
            "resolution": arch.resolution,
            "flops_at_data": cost(arch, data.size).flops,
            "data_resolution": data.size,
        },
    )
    train_images, model, oom = 0, None, None
    net: nn.Module | None  # all set to None once an out-of-memory failure is caught, to free the memory
    optimizer: torch.optim.Optimizer | None
    try:  # from the build on: a model too large for the GPU is a status, not an exception
        torch.manual_seed(recipe.seed)
        model = build(arch).to(dev)
        channels_last = recipe.channels_last and channels_last_safe(model, dev)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        optimizer = make_optimizer(model, recipe)
        train_src = batches(
            data,
            "train",
            batch_size=recipe.batch_size,
            device=dev,
            train=True,
            seed=recipe.seed,
            channels_last=channels_last,
        )
        val_src = batches(
            data, "val", batch_size=max(recipe.batch_size, 256), device=dev, train=False, channels_last=channels_last
        )
        steps = len(train_src)
        batch_every = batch_every or max(1, steps // 50)
        scheduler = make_scheduler(optimizer, recipe, steps)
        history = result.history
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"]["torch"])
            if dev.type == "cuda" and "cuda" in state["rng"]:
                torch.cuda.set_rng_state(state["rng"]["cuda"], dev)
            train_src.load_state(state["rng"]["batches"].to(train_src.state().device))
            rows: list[dict[str, Any]] = [  # a checkpoint stores non-finite values as None
                {k: (math.nan if v is None else v) for k, v in m.items()} for m in state["history"]
            ]
            history += [EpochMetrics(**row) for row in rows]
            result.val_correct = _kept_correct(state, data)
        best_acc = max((m.val_acc for m in history if math.isfinite(m.val_acc)), default=-math.inf)
        # torch.compile's stub says Callable, but for an nn.Module it returns an OptimizedModule (an nn.Module)
        net = cast(nn.Module, torch.compile(model)) if recipe.compile else model
        loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
        losses = [m.val_loss for m in history]
        best_loss = min(losses, default=math.inf)
        stale = len(losses) - 1 - losses.index(best_loss) if losses else 0  # a resumed run keeps its patience
        for epoch in range(len(history) + 1, recipe.epochs + 1):
            model.train()
            start = time.perf_counter()
            sums = torch.zeros(2, device=dev, dtype=torch.float64)  # loss, correct
            seen = skipped = 0  # skipped: images of the compiling step, kept out of throughput
            for i, (x, y) in enumerate(train_src, 1):
                with autocast(dev, recipe):
                    output = net(x)
                if vae:
                    decoded, mu, logvar = output
                    pixels = pixels_from(x, data.mean, data.std)
                    loss = negative_elbo(arch, decoded, mu, logvar, pixels, model.log_scale).nelbo.mean()
                    correct = torch.zeros((), device=dev)
                else:
                    loss = loss_fn(output.float(), y)
                    correct = (output.argmax(1) == y).sum()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if recipe.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
                optimizer.step()
                scheduler.step()
                sums += torch.stack([loss.detach().double() * len(y), correct.double()])
                seen += len(y)
                if recipe.compile and result.compile_seconds is None:  # first step = compilation
                    sync(dev)
                    result.compile_seconds = time.perf_counter() - start
                    start, skipped = time.perf_counter(), seen
                if on_batch is not None and (i % batch_every == 0 or i == steps):
                    s = sums.tolist()
                    on_batch(
                        BatchProgress(
                            epoch,
                            i,
                            steps,
                            s[0] / seen,
                            math.nan if vae else 100 * s[1] / seen,
                            (seen - skipped) / max(time.perf_counter() - start, 1e-9),
                        )
                    )
            sync(dev)
            train_time = time.perf_counter() - start
            timed = seen - skipped
            if vae:
                val = run_vae_eval(net, val_src, dev, recipe, data)
            else:  # which images it got right: kept for the best epoch, to pair candidates (McNemar)
                val = run_eval(net, val_src, dev, recipe, per_image=True)
            s = sums.tolist()
            m = EpochMetrics(
                epoch,
                s[0] / seen,
                math.nan if vae else 100 * s[1] / seen,
                val["loss"],
                val["top1"],
                scheduler.get_last_lr()[0],
                time.perf_counter() - start,
                timed / max(train_time, 1e-9),
                *((val["recon"], val["kl"], val["bpd"]) if vae else ()),
            )
            result.train_seconds += train_time
            train_images += timed
            history.append(m)
            if not vae and math.isfinite(m.val_acc) and m.val_acc > best_acc:  # the first best, as best_epoch
                best_acc, result.val_correct = m.val_acc, val.get("correct")
            if not (math.isfinite(m.train_loss) and math.isfinite(m.val_loss)):
                result.status, result.reason = RunStatus.DIVERGED, f"loss became {m.train_loss} at epoch {epoch}"
                break
            if ckpt_path is not None:
                snapshot = checkpoint.training_state(
                    model,
                    optimizer,
                    scheduler,
                    train_src,
                    arch=arch,
                    recipe=recipe,
                    data=data,
                    history=history,
                    device=dev,
                )
                if result.val_correct:  # a resumed run keeps its best epoch's record
                    snapshot["val_correct"] = torch.frombuffer(bytearray(result.val_correct), dtype=torch.uint8)
                checkpoint.save(ckpt_path, snapshot)
            if on_epoch is not None:
                on_epoch(m)
            if m.val_loss < best_loss:
                best_loss, stale = m.val_loss, 0
            else:
                stale += 1
            if recipe.patience is not None and stale >= recipe.patience and epoch < recipe.epochs:
                result.status = RunStatus.STOPPED_EARLY
                result.reason = f"validation loss did not improve for {count(stale, 'epoch')} (best {best_loss:.4f})"
                break
    except Pruned as e:
        result.status, result.reason = RunStatus.PRUNED, str(e) or f"pruned after epoch {len(history)}"
    except torch.cuda.OutOfMemoryError as e:
        oom = str(e).strip().splitlines()[0] if str(e).strip() else "CUDA out of memory"
    except RuntimeError as e:  # the CPU allocator's failure is a plain RuntimeError
        if "can't allocate memory" not in str(e):
            raise
        oom = str(e).strip().splitlines()[0]
    if oom is not None:  # the exception (and its frames' tensors) is gone; now give the memory back
        net = model = optimizer = train_src = val_src = None
        gc.collect()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        result.status, result.reason = RunStatus.OUT_OF_MEMORY, oom
    result.images_per_s = train_images / result.train_seconds if result.train_seconds else 0.0
    result.model = model
    return result
