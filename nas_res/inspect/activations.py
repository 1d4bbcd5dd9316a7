"""What a trained network sees: the feature maps after its stem and after each unit, for a few test images.

A residual net's representation changes little from one unit to the next (each adds a correction to
what the shortcut carries); a plain net's is rewritten at every layer. Pictures of the maps unit by
unit, for plain and residual twins side by side, show that. The maps are caught by forward hooks, in
eval mode, without changing the model: depth 0 is the stem's output (the first unit's input), then
each unit's output in network order, as in `resnas gradients`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from ..arch.blocks import stage_cost, stem_cost
from ..arch.build import build
from ..arch.description import Arch
from ..arch.resnet import ResNet
from ..arch.vae import VAE
from ..data.batches import batches
from ..data.dataset import load_data
from ..data.splits import Data, class_names
from ..errors import ResnasError
from ..memory import check_need
from ..training.device import resolve_device
from ..training.evaluation import checkpoint_data, other_data
from ..training.fitting import fit_to_data
from ..training.recipe import MAX_SEED
from .gradients import resolve_target


@dataclass(frozen=True)
class UnitMaps:
    """One depth's feature maps for every image: `maps` is images x channels x H x W (float32, CPU)."""

    depth: int  # 0: the stem's output; k: the k-th unit's output
    name: str  # stem, layer1.0, ...
    stage: int
    maps: torch.Tensor

    def strongest(self, k: int) -> list[int]:
        """The `k` channels with the largest mean absolute activation over the images, strongest first."""
        score = self.maps.abs().mean(dim=(0, 2, 3))
        return score.argsort(descending=True)[:k].tolist()


@dataclass(frozen=True)
class Activations:
    label: str
    arch: Arch
    source: str  # the checkpoint read, or "init"
    dataset: str
    images: torch.Tensor  # the inputs as stored: uint8, images x C x H x W
    labels: tuple[int, ...]
    class_names: tuple[str, ...]
    units: tuple[UnitMaps, ...]
    note: str | None = None  # a checkpoint shown on data other than its training data says so


def parse_units(text: str | None) -> tuple[int, ...] | None:
    """`all` (None) or depths `0,5,9` (0 is the stem's output, then the units, from 1)."""
    if text is None or text.strip().lower() == "all":
        return None
    try:
        depths = tuple(sorted({int(p) for p in text.split(",") if p.strip()}))
    except ValueError:
        raise ResnasError(
            f"must be all or depths such as 0,5,9 (0 is the stem); got {text!r}", field="--units"
        ) from None
    if not depths or depths[0] < 0:
        raise ResnasError(f"must be all or depths >= 0 such as 0,5,9; got {text!r}", field="--units")
    return depths


def unit_maps(model: ResNet, x: torch.Tensor, depths: tuple[int, ...] | None = None) -> list[UnitMaps]:
    """The maps after the stem and after each unit of `model` for the batch `x`, in eval mode; `depths`
    keeps only those (refused, naming the deepest, when one is past the last unit)."""
    units = [
        (f"{name}.{j}", s, unit)
        for s, name in enumerate(model.stage_names, 1)
        for j, unit in enumerate(getattr(model, name))
    ]
    if depths is not None and depths[-1] > len(units):
        raise ResnasError(
            f"{model.arch.summary()} has {len(units)} units (depths 0-{len(units)}); got depth {depths[-1]}",
            field="--units",
        )
    wanted = set(range(len(units) + 1)) if depths is None else set(depths)
    seen: dict[int, torch.Tensor] = {}

    def keep(depth: int, tensor: torch.Tensor) -> None:
        if depth in wanted:
            seen[depth] = tensor.detach().to("cpu", torch.float32, copy=True)  # a copy: later in-place ops

    handles = [units[0][2].register_forward_pre_hook(lambda _m, args: keep(0, args[0]))]
    for k, (_, _, unit) in enumerate(units, 1):
        handles.append(unit.register_forward_hook(lambda _m, _args, out, k=k: keep(k, out)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    names = [("stem", 0)] + [(n, s) for n, s, _ in units]
    return [UnitMaps(d, names[d][0], names[d][1], seen[d]) for d in sorted(seen)]


def pick_images(data: Data, n: int, split: str) -> torch.Tensor:
    """Indices of `n` images of `split`, one per class first (the first of each), so the pictures differ."""
    labels = getattr(data, split).labels
    first = [int((labels == c).nonzero()[0]) for c in range(data.classes) if (labels == c).any()]
    rest = [i for i in range(len(labels)) if i not in set(first)]
    return torch.tensor((first + rest)[:n])


def activations(
    targets: str | list[str],
    data: Data | str | None = None,
    *,
    images: int = 4,
    units: str | tuple[int, ...] | None = None,
    split: str = "test",
    device: str | torch.device = "cpu",
    data_dir: str | None = None,
    seed: int = 0,
    say: Callable[[str], None] | None = None,
) -> list[Activations]:
    """The feature maps of each target (a checkpoint; or a zoo name / arch file at seeded initialisation,
    which needs `data`) after each chosen depth for the same `images` images of `split` of its data (the
    data it was trained on by default, normalised as in training; read once for targets that share it).
    Each target's maps are estimated first: refused when they cannot fit, and `say` is told when they are large."""
    if isinstance(images, bool) or not isinstance(images, int) or not 1 <= images <= 64:
        raise ResnasError(f"must be an integer from 1 to 64; got {images!r}", field="--images")
    if split not in ("test", "val"):
        raise ResnasError(f"must be test or val; got {split!r}", field="--split")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ResnasError(f"must be an integer from 0 to {MAX_SEED:,}; got {seed!r}", field="seed")
    depths = parse_units(units) if isinstance(units, str) or units is None else tuple(sorted(set(units)))
    targets = [targets] if isinstance(targets, str) else list(targets)
    resolved = [resolve_target(t) for t in targets]  # every target checked before any data is read
    loaded: dict[str, Data] = {}
    out: list[Activations] = []
    for target, (name, arch, state) in zip(targets, resolved):
        if state is None and data is None:
            raise ResnasError(
                f"{target} is not a trained checkpoint: name the data to show it at initialisation (--dataset)",
                field="--dataset",
            )
        key = repr(state["data"] if state is not None and not isinstance(data, (str, Data)) else data)
        if key not in loaded:
            if isinstance(data, Data):
                loaded[key] = data
            elif state is not None:
                loaded[key] = checkpoint_data(target, state, data, test=split == "test", data_dir=data_dir)
            else:
                loaded[key] = load_data(str(data), data_dir=data_dir, test=split == "test", image_size=arch.resolution)
        held = sum(u.maps.numel() * 4 for a in out for u in a.units)  # the earlier targets' maps, kept
        maps = _maps(target, name, arch, state, loaded[key], images, depths, split, device, seed, held, say)
        out.append(maps if state is None else replace(maps, note=other_data(name, state, loaded[key])))
    return out


MAPS_FACTOR = 1.5  # peak RSS over the maps kept, measured at 1.24-1.35 (the pass's own tensors, the batch)


def map_shapes(arch: Arch, side: int) -> list[tuple[int, int, int]]:
    """(channels, height, width) of the maps at each depth of `arch` on `side`-pixel images (0: the stem's
    output, then each unit's), from the shapes the analytic cost already works out: no model is built."""
    _, h, w = stem_cost(arch.stem, arch.in_channels, arch.stem_width, arch.unit_order, side)
    shapes, cin = [(arch.stem_width, h, w)], arch.stem_width
    for s in arch.stages:
        _, h, w = stage_cost(arch.kind, cin, s.width, s.mid, s.groups, s.stride, s.depth, h, w)
        shapes, cin = shapes + [(s.width, h, w)] * s.depth, s.width
    return shapes


def memory_note(arch: Arch, side: int, images: int, depths: tuple[int, ...] | None, held: int = 0) -> str | None:
    """Estimate the host memory the maps of `images` images at `depths` (None: all) take, with `held` bytes
    already kept; refuse when that is more than the memory available, and return a note over half of it."""
    shapes = map_shapes(arch, side)
    values = sum(c * h * w for d, (c, h, w) in enumerate(shapes) if depths is None or d in depths)
    need = held + int(values * images * 4 * MAPS_FACTOR)
    basis = f"{values:,} map values x {images} images x 4 bytes x {MAPS_FACTOR} with the pass itself"
    if held:
        basis += f", + {held:,} bytes of maps already made"
    what = f"the feature maps of {arch.summary()}"
    return check_need(need, what, basis, field="--images", fix="show fewer --images or --units", device="cpu")


def _maps(target, name, arch, state, data: Data, images, depths, split, device, seed, held=0, say=None) -> Activations:
    if getattr(data, split) is None:
        raise ResnasError(f"{data.spec} was loaded without its {split} split", field="--split")
    if state is None:
        arch = fit_to_data(arch, data)
    elif arch.task == "vae" and (arch.in_channels, arch.resolution) != (data.channels, data.size):
        raise ResnasError(
            f"{name} is a VAE for {arch.in_channels}-channel {arch.resolution}x{arch.resolution} images; {data.spec} "
            f"has {data.channels} channel(s), {data.size}x{data.size}",
            where=target,
            field="--dataset",
        )
    elif arch.task != "vae" and (arch.in_channels, arch.classes) != (data.channels, data.classes):
        raise ResnasError(
            f"{name} takes {arch.in_channels} channel(s) and predicts {arch.classes} classes; {data.spec} has "
            f"{data.channels} and {data.classes}",
            where=target,
            field="--dataset",
        )
    said = memory_note(arch, data.size, images, depths, held)  # refused before the model is built, if it cannot fit
    if said and say:
        say(said)
    dev = resolve_device(device)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        model = build(arch)
    if state is not None:
        model.load_state_dict(state["model"])
    model = model.to(dev)
    chosen = getattr(data, split).subset(pick_images(data, images, split))
    x, y = next(
        iter(batches(Data(**{**data.__dict__, split: chosen}), split, batch_size=len(chosen), device=dev, train=False))
    )
    raw = chosen.images
    if raw is None:  # an image folder: the decoded, resized inputs, back to 0-255 for the picture
        std, mean = torch.tensor(data.std).view(1, -1, 1, 1), torch.tensor(data.mean).view(1, -1, 1, 1)
        raw = ((x.float().cpu() * std + mean) * 255).clamp(0, 255).to(torch.uint8)
    return Activations(
        label=name,
        arch=arch,
        source=name if state is not None else "init",
        dataset=data.spec,
        images=raw.cpu(),
        labels=tuple(int(v) for v in y.tolist()),
        class_names=tuple(class_names(data) or (str(c) for c in range(data.classes))),
        units=tuple(unit_maps(model.encoder if isinstance(model, VAE) else model, x, depths)),  # a VAE's encoder
    )


__all__ = [
    "Activations",
    "UnitMaps",
    "activations",
    "map_shapes",
    "memory_note",
    "parse_units",
    "pick_images",
    "unit_maps",
]
