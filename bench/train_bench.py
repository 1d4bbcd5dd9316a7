"""Training throughput: resnas's trainer against a plain reference loop, side by side in one run.

The reference is what a hand-written script does: torchvision's `DataLoader` (default settings)
over PIL images with `RandomCrop(padding=4)`, `RandomHorizontalFlip`, `ToTensor`, `Normalize`,
fp32, eager, SGD. resnas runs the same net, data and batch size through `nas_res.training.trainer.train`
(data on the device, batched augmentation, its precision/memory-format defaults), eager and
with `torch.compile` (compile time reported apart). Runs are interleaved and repeated, and the
median is reported, because a shared machine's speed drifts.

Targets (issue 3): >= 1.3x images/s on a 2-core CPU, >= 3x on a GPU; on a GPU also the wall time
of a 10-epoch CIFAR-10-sized proxy run of the CIFAR ResNet-20 on synthetic data.

    python bench/train_bench.py [--net resnet20_cifar] [--images 5120] [--repeats 3] [--no-compile]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
import torchvision.transforms as T
from machine import describe, write
from PIL import Image
from torch import nn

from nas_res import build, zoo
from nas_res.data.dataset import load_data
from nas_res.training.trainer import Recipe, resolve_device, train


class PilImages(torch.utils.data.Dataset):
    """What torchvision's CIFAR10 dataset does per item: a PIL image from uint8 HWC, then transforms."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        self.images = images.permute(0, 2, 3, 1).numpy()
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        img = self.images[i]
        return self.transform(Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)), self.labels[i]


def reference(arch, data, batch_size: int, epochs: int, device: torch.device) -> float:
    """Images/s of the plain loop, over `epochs` epochs after one warm-up epoch."""
    tf = T.Compose(
        [
            T.RandomCrop(data.size, padding=data.pad),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(data.mean, data.std),
        ]
    )
    loader = torch.utils.data.DataLoader(
        PilImages(data.train.images, data.train.labels, tf), batch_size=batch_size, shuffle=True, drop_last=True
    )
    torch.manual_seed(0)
    model = build(arch).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()

    def epoch() -> int:
        n = 0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            n += len(y)
        return n

    epoch()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start, n = time.perf_counter(), 0
    for _ in range(epochs):
        n += epoch()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def resnas(arch, data, batch_size: int, epochs: int, device: torch.device, compile: bool) -> tuple[float, float | None]:
    """Images/s of resnas's trainer (first epoch = warm-up, not counted) and the compile seconds."""
    recipe = Recipe(epochs=epochs + 1, batch_size=batch_size, lr=0.05, warmup_epochs=0, compile=compile)
    result = train(arch, data, recipe, device=device)
    assert result.status == "ok", result.reason
    return statistics.mean(m.images_per_s for m in result.history[1:]), result.compile_seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--net", default="resnet20_cifar")
    p.add_argument("--images", type=int, default=5120, help="synthetic CIFAR-shaped training images")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=1, help="measured epochs per run (after one warm-up epoch)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--proxy-epochs", type=int, default=10, help="GPU only: the CIFAR-10-sized proxy run")
    args = p.parse_args()
    device = resolve_device(args.device)
    arch = zoo.get(args.net)
    data = load_data(
        f"synthetic:{arch.in_channels}x{arch.resolution}x{arch.resolution}:{arch.classes}:{args.images}", val_size=256
    )
    runs: dict[str, list[float]] = {"reference": [], "resnas": []}
    if not args.no_compile:
        runs["resnas_compiled"] = []
    compile_s: list[float] = []
    for r in range(args.repeats):
        runs["reference"].append(reference(arch, data, args.batch_size, args.epochs, device))
        runs["resnas"].append(resnas(arch, data, args.batch_size, args.epochs, device, False)[0])
        if not args.no_compile:
            ips, cs = resnas(arch, data, args.batch_size, args.epochs, device, True)
            runs["resnas_compiled"].append(ips)
            compile_s.append(cs)
        print(f"repeat {r + 1}: " + ", ".join(f"{k} {v[-1]:,.0f} img/s" for k, v in runs.items()), flush=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    figures = {
        "net": args.net,
        "device": str(device),
        "batch_size": args.batch_size,
        "images": args.images,
        "runs_images_per_s": runs,
        "median_images_per_s": med,
        "speedup": {k: med[k] / med["reference"] for k in med if k != "reference"},
        "compile_seconds": compile_s,
        "target": 3.0 if device.type == "cuda" else 1.3,
        "recipe": Recipe(batch_size=args.batch_size).to_dict(),
    }
    if device.type == "cuda":
        cifar = load_data("synthetic:3x32x32:10:50000", val_size=5000)
        start = time.perf_counter()
        res = train(
            zoo.get("resnet20_cifar"), cifar, Recipe(epochs=args.proxy_epochs, batch_size=512, lr=0.2), device=device
        )
        figures["proxy_run"] = {
            "net": "resnet20_cifar",
            "epochs": args.proxy_epochs,
            "train_images": 45000,
            "batch_size": 512,
            "wall_seconds": time.perf_counter() - start,
            "images_per_s": res.images_per_s,
            "status": res.status,
        }
    for k, v in med.items():
        print(
            f"{k:>16}: {v:,.0f} img/s (median of {len(runs[k])})"
            + (f"  {v / med['reference']:.2f}x" if k != "reference" else "")
        )
    if compile_s:
        print(f"compile: {statistics.median(compile_s):.1f} s (first step, not in the throughput)")
    if "proxy_run" in figures:
        print(f"10-epoch CIFAR-10-sized proxy run, resnet20_cifar: {figures['proxy_run']['wall_seconds']:.1f} s wall")
    command = "python bench/train_bench.py " + " ".join(sys.argv[1:])
    print("machine:", describe())
    print("written:", write("train", figures, command.strip()))


if __name__ == "__main__":
    main()
