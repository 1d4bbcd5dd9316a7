"""What a search picks for what a user did not say, so that data, space, resolution and recipe fit.

`resnas search --budget 4GFLOPs` names only a budget. The dataset is Fashion-MNIST when its files are
on this machine (real images with published results), else scikit-learn's digits, said plainly; the
space is the one made for images of that size; the GPUs found are used; without one, each candidate
trains on a class-balanced subset and the budget is held to what trains in minutes on this CPU, so a
first result comes in minutes. Each pick is a note the command prints, with its reason. Whatever a
user gives is kept as given, with a note where it does not fit (a 224x224 space on 28x28 images).
"""

from __future__ import annotations

from pathlib import Path

from ..arch.blocks import conv_size, stem_cost
from ..arch.budget import Budget, human
from ..arch.cost import cost
from ..arch.description import Arch
from ..data.dataset import DEFAULT_DATA_DIR
from ..data.published import find_published
from ..space.budget_fit import extremes
from ..space.design_space import DesignSpace

# The side of each dataset's images, known without reading them (an ImageFolder is resized to 224).
RESOLUTIONS = {"digits": 8, "mnist": 28, "fashion-mnist": 28, "cifar10": 32, "cifar100": 32, "imagefolder": 224}
# What a 2-core CPU trains at, in forward FLOPs per second: resnet20_cifar (40.9 MFLOPs) at 470 images/s
# (bench/results/train-cpu.json). Training costs about 3x the forward FLOPs; this figure already has it.
CPU_FLOPS_PER_S = 19e9
CPU_TRIAL_SECONDS = 150  # what a candidate may take on a CPU when the user named nothing but a budget
SMALL_SPACE = "small-resnext"  # the space a search on images of at most 32 px gets when none is named
# The CPU proxy, with `fast`'s 5 epochs. Measured on 16 fully re-trained small-resnext nets (bench/proxy_fidelity.py):
# Kendall 0.47 with their final test accuracy, where 2,000 x 3 gave 0.13 and all 55,000 x 1 gave 0.47; their
# params alone gave 0.40. A ranking to check with `resnas finalize`, not to trust.
PROXY_IMAGES = 5000


def data_resolution(spec: str) -> int | None:
    """The side of a dataset's images, from its name alone (None: unknown until it is read)."""
    name, _, arg = spec.partition(":")
    name = name.strip().lower()
    if name == "synthetic":
        shape = arg.split(":")[0] if arg else ""
        try:
            return int(shape.lower().split("x")[-1]) if shape else 32
        except ValueError:
            return None
    return RESOLUTIONS.get(name)


def pick(given: dict, cuda_devices: int) -> list[str]:
    """Fill in what a new search left open (dataset, space, GPUs, training subset) in `given`; return one
    note per pick, saying what and why. The dataset is picked only when the space is not named either:
    naming a space keeps the documented default (digits), with a note where Fashion-MNIST is here."""
    notes: list[str] = []
    alone = "dataset" not in given and "space" not in given  # a budget, at most: pick all that fits
    if "dataset" not in given:
        root = Path(given["data_dir"]).expanduser() if given.get("data_dir") else DEFAULT_DATA_DIR
        found = find_published("fashion-mnist", root)
        if not alone:  # a space named, the data not: the documented default, and a word where better is here
            given["dataset"] = "digits"
            if found is not None:
                notes.append(
                    "dataset digits (the default): 1,797 8x8 images, where a ranking is mostly noise; "
                    f"Fashion-MNIST is on this machine ({found}): --dataset fashion-mnist"
                )
        elif found is not None:
            given["dataset"] = "fashion-mnist"
            notes.append(f"dataset fashion-mnist: 70,000 real 28x28 images, read from {found} (--dataset to change)")
        else:
            given["dataset"] = "digits"
            notes.append(
                "dataset digits: Fashion-MNIST is not on this machine (apt-get install dataset-fashion-mnist, "
                "or --data-dir), so this searches scikit-learn's 1,797 8x8 digits, where a ranking is mostly noise"
            )
    resolution = data_resolution(str(given["dataset"]))
    if "space" not in given:
        small = resolution is not None and resolution <= 32
        given["space"] = SMALL_SPACE if small else "resnext"
        made = (
            "28-32 px images (depth, width, basic/C x d units, shortcut A/B/C, post/preact, stem width open; "
            "ResNet-20..56 and the MNIST net among its points)"
            if small
            else "224x224 images (ImageNet)"
        )
        notes.append(f"space {given['space']}: the ResNeXt design space made for {made} (--space to change)")
    if given.get("gpus") is None and given.get("workers") is None and cuda_devices:
        given["gpus"] = list(range(cuda_devices))
        notes.append(f"GPUs {', '.join(map(str, given['gpus']))}: every GPU found, one worker each (--gpus to choose)")
    cpu = not given.get("gpus")
    if alone and cpu and "train_size" not in given and given["dataset"] == "fashion-mnist":
        given["train_size"] = PROXY_IMAGES
        notes.append(
            f"no GPU: each candidate trains on {PROXY_IMAGES:,} class-balanced training images (--train-size all "
            "for every one); resnas finalize re-trains the best on all of them"
        )
    return notes


def fit_notes(space: DesignSpace, budget: Budget, dataset: str) -> list[str]:
    """Where the space does not fit the data: priced at another resolution (the cost at the data's beside
    the budget), or shrinking the maps below 2x2 before its last stage."""
    resolution = data_resolution(dataset)
    reference = space.spec.resolution
    if resolution is None or resolution == reference:
        return []
    cheap, big = extremes(space, "flops")
    notes = []
    if budget.flops_max is not None:
        ratio = cost(big, resolution).flops / cost(big).flops
        notes.append(
            f"the budget is at the space's {reference}x{reference} reference resolution; {dataset}'s "
            f"{resolution}x{resolution} images cost {ratio:.2f}x that: a candidate at {human(budget.flops_max)} "
            f"FLOPs trains at about {human(round(budget.flops_max * ratio))}"
        )
    maps = stage_maps(cheap, resolution)
    if min(maps) < 2:
        stage = next(i for i, m in enumerate(maps, 1) if m < 2)
        notes.append(
            f"space {space.name} is made for {reference}x{reference} images: on {resolution}x{resolution} ones its "
            f"stage {stage} onward runs on {maps[-1]}x{maps[-1]} maps (stages: {', '.join(f'{m}x{m}' for m in maps)}), "
            "where its extra width and depth buy nothing; a space made for small images fits better "
            f"(--space {SMALL_SPACE})"
        )
    return notes


def stage_maps(arch: Arch, resolution: int) -> list[int]:
    """The side of each stage's output maps at `resolution`."""
    _, h, _ = stem_cost(arch.stem, arch.in_channels, arch.stem_width, arch.unit_order, resolution)
    sides = []
    for stage in arch.stages:
        h = conv_size(h, 3, stage.stride)
        sides.append(h)
    return sides


def cpu_budget(budget: Budget, space: DesignSpace, dataset: str, images: int, epochs: int) -> tuple[str | None, str]:
    """A FLOPs cap (as a budget text) that trains in about CPU_TRIAL_SECONDS per candidate on this CPU,
    and why; (None, "") when the budget trains that fast already (or is a band: it stays as given)."""
    if budget.flops_max is None or budget.flops_min:
        return None, ""
    resolution = data_resolution(dataset) or space.spec.resolution
    _, big = extremes(space, "flops")
    ratio = cost(big, resolution).flops / cost(big).flops
    seconds = budget.flops_max * ratio * images * epochs / CPU_FLOPS_PER_S
    if seconds <= CPU_TRIAL_SECONDS:
        return None, ""
    mflops = float(f"{budget.flops_max * CPU_TRIAL_SECONDS / seconds / 1e6:.2g}")  # two significant digits
    text = f"{mflops:g}MFLOPs"
    return text, (
        f"no GPU: a candidate at {human(budget.flops_max)} FLOPs would train for ~{seconds / 60:.0f} min here "
        f"({images:,} images x {epochs} epochs), so this search keeps to candidates up to {text} "
        f"(~{CPU_TRIAL_SECONDS / 60:.1f} min each). For the whole budget: --gpus, or name --dataset and --space"
    )
