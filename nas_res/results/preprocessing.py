"""What a trained network expects as input: the training data's per-channel mean and std, image size,
channels and class names. An exported model is useless without them: the trainer normalises every
batch as `(pixels / 255 - mean) / std`, and a user who feeds plain [0, 1] images gets chance-level
answers from a network that evaluates at 90 %.

Checkpoints record the dataset, its split and image size but not the statistics, so they are
recomputed here from the same training split (the same seed and validation size give the same
numbers on any machine).
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.dataset import load_data
from ..data.splits import class_names
from ..errors import ResnasError
from .onnx_inputs import ONNX_INPUT_HELP, ONNX_INPUTS, check_onnx_input  # noqa: F401 (read from here too)
from .record import Run


class Preprocessor:
    """The preprocessing of each run's training data, loaded once per distinct dataset split."""

    def __init__(self, config: dict, data_dir: str | None = None):
        self.config, self.data_dir = config, data_dir
        self.cache: dict[tuple, dict] = {}

    def of(self, run: Run, *, need_stats: bool, trained: dict | None = None) -> dict:
        """The record for `run`; `trained`: its checkpoint's data record (exact dataset, split and image
        size), else the study's config says. Without `need_stats` a dataset that is not on this machine
        leaves the mean and std empty (with the reason) instead of failing the export."""
        c = self.config
        if trained is not None:
            key = (trained["spec"], trained["val"], trained["split_seed"], trained["size"])
        else:
            key = (c["dataset"], c["val_size"], c["split_seed"], None)  # image size as the search loaded it
        if key not in self.cache:
            try:
                self.cache[key] = describe(*key, self.data_dir)
            except ResnasError as e:
                if need_stats:
                    raise ResnasError(
                        f"the input normalisation of trial {run.trial} needs its training data: {e}",
                        field="--data-dir",
                    ) from None
                return {"dataset": key[0], "mean": None, "std": None, "unavailable": str(e)}
        return self.cache[key]


def describe(spec: str, val_size, split_seed: int, size: int | None, data_dir: str | None) -> dict:
    """The preprocessing record of a dataset split, as the export writes it (plain YAML/JSON values)."""
    if size is None:  # as the search loaded it
        data = load_data(spec, data_dir=data_dir, val_size=val_size, split_seed=split_seed, download=False)
    else:
        data = load_data(
            spec, data_dir=data_dir, val_size=val_size, split_seed=split_seed, download=False, image_size=size
        )
    names = class_names(data)
    record = {
        "dataset": data.spec,
        "layout": "NCHW",
        "channels": data.channels,
        "channel_order": "RGB" if data.channels == 3 else "grayscale" if data.channels == 1 else "as stored",
        "height": data.size,
        "width": data.size,
        "mean": [round(v, 6) for v in data.mean],
        "std": [round(v, 6) for v in data.std],
        "normalise": "(pixels / 255 - mean) / std, per channel (pixels 0..255)",
        "classes": data.classes,
        "class_names": names,
    }
    if data.name == "imagefolder":
        record["resize"] = f"shorter side to {data.size} (antialiased), then a centre crop of {data.size}x{data.size}"
    return record


class Normalised(nn.Module):
    """A network with its input normalisation in front: what an ONNX user feeds is plain pixels
    ([0, 1] floats for `raw`, 0..255 uint8 for `uint8`)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, net: nn.Module, mean: list[float], std: list[float], kind: str):
        super().__init__()
        self.net, self.kind = net, check_onnx_input(kind)
        mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("mean", mean_t)
        self.register_buffer("std", std_t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "normalized":
            return self.net(x)
        x = x.float() / 255.0 if self.kind == "uint8" else x
        return self.net((x - self.mean) / self.std)
