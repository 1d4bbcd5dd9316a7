"""Measuring a network: loss, top-1 and top-5 over a split, for a model in memory or a saved checkpoint."""

from __future__ import annotations

import math
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import nn

from ..arch.description import Arch
from ..arch.vae import VAE
from ..data.batches import batches
from ..data.dataset import load_data
from ..data.splits import Data
from ..errors import ResnasError
from . import checkpoint
from .device import autocast, resolve_device
from .elbo import bits_per_dim, negative_elbo, pixels_from
from .recipe import Recipe

SPLITS = ("test", "val")  # what a trained checkpoint is evaluated on; never its training images
EVAL_NOISE_SEED = 0  # a VAE's evaluation draws its latents from this seed: the same images, the same number


def pack_correct(right: torch.Tensor | np.ndarray) -> bytes:
    """One model's per-image correctness as resnas stores it: 1 bit an image in the split's order
    (numpy.packbits: the first image is the high bit of the first byte; the last byte's unused bits 0),
    so 6,000 validation images take 750 bytes. `results.uncertainty.per_image` reads it back."""
    if isinstance(right, torch.Tensor):
        right = right.detach().cpu().numpy()
    return np.packbits(np.asarray(right, dtype=bool).reshape(-1)).tobytes()


@torch.no_grad()
def run_eval(
    net: nn.Module, source, device: torch.device, recipe: Recipe, top5: bool = False, per_image: bool = False
) -> dict:
    """Loss, top-1 (and top-5) over a batch source, summed on the device and read once. With `per_image`,
    also `correct`: which images top-1 got right (`pack_correct`), kept on the device and read with the sums."""
    was_training = net.training
    net.eval()
    loss = torch.zeros((), device=device, dtype=torch.float64)
    hits = torch.zeros(2, device=device, dtype=torch.int64)
    rights: list[torch.Tensor] = []
    seen = 0
    for x, y in source:
        with autocast(device, recipe):
            out = net(x)
        out = out.float()
        loss += nn.functional.cross_entropy(out, y, reduction="sum").double()
        right = out.argmax(1) == y
        hits[0] += right.sum()
        if per_image:
            rights.append(right)
        if top5:
            hits[1] += (out.topk(min(5, out.shape[1]), 1).indices == y[:, None]).any(1).sum()
        seen += len(y)
    net.train(was_training)
    loss_v, (h1, h5) = loss.item(), hits.tolist()
    result = {"loss": loss_v / seen, "top1": 100.0 * h1 / seen, "images": seen}
    if top5:
        result["top5"] = 100.0 * h5 / seen
    if per_image:
        result["correct"] = pack_correct(torch.cat(rights)) if rights else b""
    return result


@torch.no_grad()
def run_vae_eval(net: nn.Module, source, device: torch.device, recipe: Recipe, data: Data) -> dict:
    """A VAE's negative ELBO per image (loss), its reconstruction and KL terms (nats), bits/dim where
    the likelihood has them, over a batch source. The latents are drawn from a fixed seed."""
    model = cast(VAE, getattr(net, "_orig_mod", net))  # a compiled net's module (its arch and log-scale)
    arch = model.arch
    assert arch.likelihood is not None, "Arch fills in a VAE's likelihood"
    was_training = net.training
    net.eval()
    sums = torch.zeros(3, device=device, dtype=torch.float64)
    seen = 0
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(EVAL_NOISE_SEED)
        for x, _ in source:
            with autocast(device, recipe):
                decoded, mu, logvar = net(x)
            terms = negative_elbo(arch, decoded, mu, logvar, pixels_from(x, data.mean, data.std), model.log_scale)
            sums += torch.stack([t.sum().double() for t in terms])
            seen += len(x)
    net.train(was_training)
    nelbo, recon, kl = (v / seen for v in sums.tolist())
    dims = arch.in_channels * arch.resolution**2
    return {
        "loss": nelbo,
        "top1": math.nan,  # a VAE has no classes to get right
        "recon": recon,
        "kl": kl,
        "bpd": bits_per_dim(nelbo, dims, arch.likelihood),
        "images": seen,
    }


def evaluate(
    model: nn.Module,
    data: Data,
    split: str = "test",
    *,
    device: str | torch.device = "auto",
    batch_size: int = 512,
    recipe: Recipe | None = None,
    per_image: bool = False,
) -> dict:
    """Final evaluation on `data.<split>`: loss, top-1 %, and top-5 % when there are more than 10 classes
    (a VAE's: negative ELBO, its terms and bits/dim, see `run_vae_eval`); with `per_image`, a
    classifier's `correct` bitmap too (bytes: not for JSON output)."""
    if getattr(data, split) is None:
        raise ResnasError(
            f"{data.name} was loaded without its {split} split (load_data(..., test=True))", field="split"
        )
    dev = resolve_device(device)
    recipe = recipe or Recipe()
    channels_last = recipe.channels_last
    model = model.to(dev)
    source = batches(data, split, batch_size=batch_size, device=dev, train=False, channels_last=channels_last)
    if isinstance(model, VAE):
        return run_vae_eval(model, source, dev, recipe, data)
    return run_eval(model, source, dev, recipe, top5=data.classes > 10, per_image=per_image)


def evaluate_checkpoint(
    path: str | Path,
    *,
    dataset: str | None = None,
    split: str = "test",
    batch_size: int = 512,
    device: str | torch.device = "auto",
    data_dir: str | Path | None = None,
    download: bool = True,
) -> dict:
    """Evaluate a trained checkpoint (or the folder holding it) on `split` of the data it was trained on
    (or `dataset`), split off and sized as in training. A record of what was measured and the result."""
    if split not in SPLITS:
        raise ResnasError(f"must be test or val; got {split!r}", field="--split")
    if batch_size < 1:
        raise ResnasError(f"must be a positive integer; got {batch_size}", field="--batch-size")
    model, state = checkpoint.trained_model(path)
    data = checkpoint_data(path, state, dataset, test=split == "test", data_dir=data_dir, download=download)
    recipe = Recipe.from_dict(state["recipe"], where=str(path))
    result = evaluate(model, data, split, device=device, batch_size=batch_size, recipe=recipe)
    if model.arch.task == "vae":
        result.pop("top1")  # NaN: a VAE has no classes to get right (and NaN is not JSON)
    return {
        "checkpoint": str(path),
        "arch_key": model.arch.key,
        "summary": model.arch.summary(),
        "task": model.arch.task,
        "dataset": data.spec,
        "trained_on": state["data"]["spec"],
        "note": other_data(str(path), state, data),
        "split": split,
        "epoch": state["epoch"],
        **result,
    }


def other_data(label: str, state: dict, data: Data) -> str | None:
    """What to say when `data` is not the data the checkpoint was trained on (None when it is): its
    numbers or pictures are then of images it never saw, normalised with their own mean and std."""
    trained = state["data"]
    if _data_key(trained["spec"]) == _data_key(data.spec):
        return None
    return (
        f"{label} was trained on {trained['spec']} ({trained['size']}x{trained['size']} images); these are "
        f"{data.spec}'s ({data.size}x{data.size}), which it never saw, normalised with their own mean and std"
    )


def _data_key(spec: str) -> tuple[str, str]:
    """A dataset spec as the data it names: the name in lower case, an image folder's path resolved."""
    name, _, arg = spec.partition(":")
    name, arg = name.strip().lower(), arg.strip()
    return name, str(Path(arg).expanduser().resolve()) if name == "imagefolder" and arg else arg


def checkpoint_data(
    path: str | Path,
    state: dict,
    dataset: str | None = None,
    *,
    test: bool = True,
    data_dir: str | Path | None = None,
    download: bool = True,
) -> Data:
    """The data a checkpoint was trained on (or `dataset`), split off and sized as in training: its own
    kind of data keeps the trained validation count and split seed, so its test and validation images
    are the ones it was judged on. Data of other channels or classes is refused, naming both."""
    arch = Arch.from_dict(state["arch"], where=str(path))
    trained = state["data"]
    spec = dataset or trained["spec"]
    same = spec.partition(":")[0].strip().lower() == trained["name"]

    def fits(channels: int, classes: int, size: int) -> None:
        """Refuse data the checkpoint cannot take, naming both, before the split is carved. A VAE takes
        images of its channels and side (its linear maps are sized for them), whatever their classes."""
        if arch.task == "vae":
            if (channels, size) != (arch.in_channels, arch.resolution):
                raise ResnasError(
                    f"the checkpoint is a VAE for {arch.in_channels}-channel {arch.resolution}x{arch.resolution} "
                    f"images (trained on {trained['spec']}); {spec} has {channels}-channel {size}x{size} images. "
                    f"Leave out --dataset to use {trained['spec']}, or give data of that shape",
                    where=str(path),
                    field="--dataset",
                )
            return
        if (channels, classes) != (arch.in_channels, arch.classes):
            raise ResnasError(
                f"the checkpoint takes {arch.in_channels} channel(s) and predicts {arch.classes} classes (trained "
                f"on {trained['spec']}: {trained['size']}x{trained['size']} images); {spec} has {channels} "
                f"channel(s), {size}x{size} images and {classes} classes. Leave out --dataset to use "
                f"{trained['spec']}, or give data of {arch.in_channels} channel(s) and {arch.classes} classes",
                where=str(path),
                field="--dataset",
            )

    return load_data(
        spec,
        data_dir=data_dir,
        test=test,
        download=download,
        # the trained split (a count) on its own kind of data; another dataset keeps its default fraction
        val_size=trained["val"] if same else 0.1,
        split_seed=trained["split_seed"],
        image_size=trained["size"],
        check=fits,
    )
