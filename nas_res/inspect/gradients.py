"""Gradient flow at initialisation: how strongly one backward pass reaches each unit of a network.

The residual-learning argument is about information flow: through identity shortcuts the loss
gradient reaches early units about as strong as it left the last one; a plain stack, or a shortcut
scaled by λ in every unit (λ^L over L units), lets it shrink or grow with depth. One forward and
backward pass on one batch measures that in seconds, before any training.

What is measured: the batch-mean cross-entropy of one batch with the model in train mode (BatchNorm
on batch statistics, as at the first step of training), and for each part (the stem, then every
residual unit in network order) the L2 norm, over the whole batch, of the gradient with respect to
the part's input, and of the gradient with respect to all its parameters: the gradient the first
SGD step would use. The model is left as it was: its mode, its BN running statistics, its `.grad`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..arch.cost import cost
from ..arch.description import Arch
from ..arch.resnet import ResNet
from ..arch.zoo import resolve_arch
from ..data.batches import batches
from ..data.dataset import load_data
from ..data.splits import Data
from ..errors import ResnasError
from ..memory import check_need
from ..training import checkpoint
from ..training.device import resolve_device
from ..training.fitting import fit_to_data
from ..training.recipe import MAX_SEED


class Part(NamedTuple):
    """A stretch of a network measured as one: `module`'s first input is the part's input."""

    name: str
    module: nn.Module
    params: tuple[nn.Parameter, ...]
    stage: int = 0


@dataclass(frozen=True)
class LayerGradient:
    """One part's gradient norms (whole-batch L2) for the input it received and for its parameters."""

    name: str
    stage: int
    input_norm: float
    weight_norm: float


def layer_gradients(
    model: nn.Module,
    x: torch.Tensor,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    parts: Iterable[Part] | None = None,
) -> tuple[float, list[LayerGradient]]:
    """`(loss, per-part norms)` of one forward and backward pass of `loss_fn(model(x))`, in train mode.

    `parts` defaults to the model's children, each with its own parameters (an `nn.Sequential` stack).
    The inputs are caught by forward pre-hooks and differentiated with `torch.autograd.grad`, so the
    model is not changed and no `.grad` is written; BN running statistics are put back afterwards."""
    parts = list(parts) if parts is not None else [Part(n, m, tuple(m.parameters())) for n, m in model.named_children()]
    seen: dict[int, torch.Tensor] = {}

    def catch(i: int):
        def hook(_module, args):
            seen.setdefault(i, args[0])  # a module called twice: its first input

        return hook

    handles = [p.module.register_forward_pre_hook(catch(i)) for i, p in enumerate(parts)]
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    was_training = model.training
    model.train()
    try:
        loss = loss_fn(model(x.detach().requires_grad_(True)))
        lost = [p.name for i, p in enumerate(parts) if i not in seen]
        if lost:
            raise ValueError(f"parts never called in the forward pass: {', '.join(lost)}")
        params = list({id(q): q for p in parts for q in p.params if q.requires_grad}.values())
        where = {id(q): i for i, q in enumerate(params)}
        grads = torch.autograd.grad(loss, [*(seen[i] for i in range(len(parts))), *params], allow_unused=True)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(buffers[name])
    inputs, weights = grads[: len(parts)], grads[len(parts) :]
    result = [
        LayerGradient(
            p.name,
            p.stage,
            _norm([inputs[i]]),
            _norm([weights[where[id(q)]] for q in p.params if id(q) in where]),
        )
        for i, p in enumerate(parts)
    ]
    return float(loss.detach()), result


def _norm(grads) -> float:
    """L2 norm of several tensors taken as one vector, summed in float64; a missing gradient is zero."""
    return math.sqrt(sum(g.detach().double().pow(2).sum().item() for g in grads if g is not None))


def resnet_parts(model: ResNet) -> list[Part]:
    """The stem (its input is the image; its weights the stem convs and BN), then every `Unit`."""
    stem = [model.conv1] + ([model.bn1] if model.bn1 is not None else [])
    parts = [Part("stem", model.conv1, tuple(q for m in stem for q in m.parameters()), 0)]
    for s, name in enumerate(model.stage_names, 1):
        for j, unit in enumerate(getattr(model, name)):
            parts.append(Part(f"{name}.{j}", unit, tuple(unit.parameters()), s))
    return parts


@dataclass(frozen=True)
class GradientFlow:
    """One network's gradient norms: the stem first (index 0), then its units in network order."""

    label: str
    arch: Arch
    source: str  # "init" (seeded initialisation) or the checkpoint read
    dataset: str
    batch: int
    seed: int
    loss: float
    layers: tuple[LayerGradient, ...]

    @property
    def units(self) -> tuple[LayerGradient, ...]:
        return tuple(g for g in self.layers if g.stage > 0)

    @property
    def first_to_last(self) -> float:
        """Input-gradient norm at the first unit over that at the last: < 1 shrinks on the way back, > 1 grows."""
        units = self.units
        return units[0].input_norm / units[-1].input_norm if units[-1].input_norm else float("inf")

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "arch_key": self.arch.key,
            "summary": self.arch.summary(),
            "arch": self.arch.to_dict(),
            "source": self.source,
            "dataset": self.dataset,
            "batch": self.batch,
            "seed": self.seed,
            "loss": self.loss,
            "first_to_last": self.first_to_last,
            "layers": [
                {"index": i, "name": g.name, "stage": g.stage, "input_norm": g.input_norm, "weight_norm": g.weight_norm}
                for i, g in enumerate(self.layers)
            ],
        }


VARIANT = re.compile(r"^(?P<base>.+?)\[(?P<changes>[^\[\]]*)\]$")


def resolve_target(target: str) -> tuple[str, Arch, dict | None]:
    """`(label, arch, checkpoint state or None)` for a zoo name or arch file, optionally with arch fields
    changed (`resnet56_cifar[modulation=scale,modulation_value=0.5]`), or a checkpoint (`.pt` or a run's
    folder; read as plain data only). Every changed field is checked by `Arch` itself."""
    path = Path(target)
    if path.suffix == ".pt" or (path.is_dir() and any((path / n).is_file() for n in ("checkpoint.pt", "weights.pt"))):
        state = checkpoint.load(path)  # torch.load(weights_only=True), checked against its arch
        return str(target), Arch.from_dict(state["arch"], where=str(path)), state
    found = VARIANT.match(target)
    if not found:
        return (*resolve_arch(target), None)
    name, arch = resolve_arch(found["base"])
    changes: dict[str, object] = {}
    for item in filter(None, (s.strip() for s in found["changes"].split(","))):
        key, eq, value = (s.strip() for s in item.partition("="))
        if not eq or not key or not value:
            raise ResnasError(f"{item!r} is not field=value (e.g. {found['base']}[modulation=scale])", where=target)
        changes[key] = _scalar(value)
    if "stages" in changes:
        raise ResnasError("stages cannot be changed here; write an arch file", where=target, field="stages")
    return f"{name}[{found['changes']}]", Arch.from_dict({**arch.to_dict(), **changes}, where=target), None


def _scalar(text: str) -> object:
    """A field value as written: an integer, a number, true/false, else the text itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


# Float32 values a pass holds per activation (`cost`'s count): autograd keeps each conv's and ReLU's output,
# and the backward pass every unit's input gradient. Peak RSS of one CPU pass over the RSS before it: 2.4-3.7
# (resnet18..preact_resnet1001, batch 4-256), up to 4.3 for small nets at small batches. 3.5 errs high.
AUTOGRAD_FACTOR = 3.5
PARAM_BYTES = 12  # each parameter's float32 weight, its gradient, and a checkpoint's copy of it


def memory_note(arch: Arch, batch: int, side: int | None = None, device: object = "cpu", label: str = "") -> str | None:
    """Estimate one backward pass of `arch` on `batch` images `side` pixels square (default: its own
    resolution) from its exact activation count; refuse it when that is more than the memory available,
    and return a note to print when it takes over half of it (None otherwise)."""
    c = cost(arch, side)
    need = int(c.acts * batch * 4 * AUTOGRAD_FACTOR) + c.params * PARAM_BYTES
    basis = (
        f"{c.acts:,} activations x {batch} images x 4 bytes x {AUTOGRAD_FACTOR} for autograd, + {c.params:,} "
        f"parameters x {PARAM_BYTES} bytes"
    )
    what = f"one backward pass of {label or arch.summary()} at batch {batch}"
    return check_need(need, what, basis, field="--batch", fix="lower --batch", device=device)


def gradient_flow(
    target: str | Path | Arch | ResNet,
    data: Data | str | tuple[torch.Tensor, torch.Tensor] | None = None,
    *,
    batch: int = 64,
    seed: int = 0,
    device: str | torch.device = "cpu",
    label: str | None = None,
) -> GradientFlow:
    """Gradient norms per unit of one forward/backward pass on one training batch (see the module's doc).

    `target`: a zoo name, arch file, `NAME[field=value,...]`, checkpoint, `Arch`, or a built model (measured
    on its own device, left as it was). An arch is built after `torch.manual_seed(seed)` and fitted to the
    data's channels and classes (it is measured, not trained as written); a checkpoint or model must fit
    the data as it is. `data`: a `Data` or a dataset spec (its first training batch of `batch` images,
    shuffled, augmented and normalised as training does, with `seed`), an `(images, labels)` pair used
    whole, or None: synthetic images of the arch's shape. The caller's random state is left as it was."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ResnasError(f"must be a positive integer; got {batch!r}", field="batch")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ResnasError(f"must be an integer from 0 to {MAX_SEED:,}; got {seed!r}", field="seed")
    dev = resolve_device(device)
    state, model = None, None
    if isinstance(target, ResNet):  # measured where it is
        model, arch, name, source, dev = target, target.arch, "model", "model", next(target.parameters()).device
    elif isinstance(target, Arch):
        arch, name, source = target, "arch", "init"
    else:
        name, arch, state = resolve_target(str(target))
        source = name if state is not None else "init"
    if arch.task == "vae":
        raise ResnasError(
            f"{name} is a VAE (task: vae); gradient flow is measured on a classifier's cross-entropy. "
            f"`resnas activations {name}` shows its encoder's feature maps unit by unit"
            + (f", `resnas evaluate {name}` its negative ELBO" if state is not None else " (with --dataset)"),
            field="target",
        )
    fixed = model is not None or state is not None  # trained or built weights: the data must fit them
    if isinstance(data, tuple):
        x, y = data
        dataset = f"given batch {tuple(x.shape)}"
        if (
            x.dim() != 4
            or x.shape[1] != arch.in_channels
            or y.shape != x.shape[:1]
            or not 0 <= y.min() <= y.max() < arch.classes
        ):
            raise ResnasError(
                f"{dataset}, labels {tuple(y.shape)}: needs N x {arch.in_channels} x H x W images, N labels in "
                f"0..{arch.classes - 1}",
                field="data",
            )
        x, y = x.to(dev), y.to(dev)
    else:
        if data is None:
            data = load_data(synthetic_spec(arch, batch), val_size=1, split_seed=seed)
        elif isinstance(data, str):
            data = load_data(data, image_size=arch.resolution)
        if fixed and (arch.in_channels, arch.classes) != (data.channels, data.classes):
            raise ResnasError(
                f"{name} takes {arch.in_channels} channel(s) and predicts {arch.classes} classes; {data.spec} has "
                f"{data.channels} channel(s) and {data.classes} classes",
                field="dataset",
            )
        arch = arch if fixed else fit_to_data(arch, data)
        if len(data.train) < batch:
            raise ResnasError(
                f"{batch} is more than the {len(data.train):,} training images of {data.spec}", field="batch"
            )
        x, y = next(iter(batches(data, "train", batch_size=batch, device=dev, train=True, seed=seed)))
        dataset = data.spec
    memory_note(arch, len(y), x.shape[-1], dev, name)  # refused before the model is built, if it cannot fit
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)  # the initialisation, and dropout (a modulation) in the pass
        if model is None:
            model = ResNet(arch)  # a classifier: a VAE was refused above
            if state is not None:
                model.load_state_dict(state["model"])
        model = model.to(dev)
        loss, layers = layer_gradients(model, x, lambda out: F.cross_entropy(out.float(), y), resnet_parts(model))
    return GradientFlow(label or name, arch, source, dataset, len(y), seed, loss, tuple(layers))


def synthetic_spec(arch: Arch, batch: int) -> str:
    """Random images of the arch's input shape and classes, enough for one training batch."""
    n = max(batch, arch.classes) + 1
    return f"synthetic:{arch.in_channels}x{arch.resolution}x{arch.resolution}:{arch.classes}:{n}"
