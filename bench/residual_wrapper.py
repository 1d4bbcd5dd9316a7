"""`nas_res.Residual` on layers that are not convolutions: plain against wrapped deep MLPs on Fashion-MNIST
(784 -> width, then `depth` hidden Linear+ReLU layers), and plain against wrapped stacked GRUs reading each
image row by row (28 steps of 28 pixels), per depth, over seeds. Final training loss (mean over the
last epoch's batches) and test accuracy per depth; figures, machine and command in
bench/results/residual-wrapper-<cpu|gpu>.json, the picture in bench/results/residual-wrapper.png.

    python bench/residual_wrapper.py [--mlp-depths 2,10,20,40] [--gru-depths 1,4,8] [--seeds 3]

The training subset is seeded and class-balanced (--train-size, 10,000 by default); the GRUs read its
first --gru-images (all 10,000), the loops run on the CPU with Adam at batch 128.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import RESULTS, write

from nas_res import Residual, load_data


def mlp(depth: int, width: int, wrap: bool) -> nn.Module:
    hidden = [nn.Linear(width, width) for _ in range(depth)]
    layers = [Residual(h, activation=nn.ReLU()) if wrap else nn.Sequential(h, nn.ReLU()) for h in hidden]
    return nn.Sequential(nn.Flatten(), nn.Linear(784, width), nn.ReLU(), *layers, nn.Linear(width, 10))


class RowGRU(nn.Module):
    """Rows of the image as a sequence: a linear map to `width`, `depth` stacked one-layer GRUs, the last
    step's output to the classes."""

    def __init__(self, depth: int, width: int, wrap: bool):
        super().__init__()
        self.inp = nn.Linear(28, width)
        grus = [nn.GRU(width, width, batch_first=True) for _ in range(depth)]
        self.grus = nn.ModuleList([Residual(g) if wrap else g for g in grus])
        self.out = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x.flatten(1, 2))  # N x 1 x 28 x 28 -> N x 28 rows x 28
        for gru in self.grus:
            h = gru(h)[0]
        return self.out(h[:, -1])


def run(model: nn.Module, data, epochs: int, batch: int, lr: float, seed: int, images: int) -> dict:
    """Adam on the first `images` normalised training images; the last epoch's mean loss, then test accuracy."""
    torch.manual_seed(seed)
    mean, std = data.mean[0], data.std[0]
    x = (data.train.images[:images].float() / 255 - mean) / std
    y = data.train.labels[:images]
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    started = time.perf_counter()
    curve = []
    for _ in range(epochs):
        order = torch.randperm(len(y))
        total, seen = 0.0, 0
        model.train()
        for i in range(0, len(y), batch):
            idx = order[i : i + batch]
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, seen = total + float(loss.detach()) * len(idx), seen + len(idx)
        curve.append(total / seen)
    seconds = time.perf_counter() - started
    model.eval()
    xt = (data.test.images.float() / 255 - mean) / std
    with torch.no_grad():
        correct = sum(
            int((model(xt[i : i + 1000]).argmax(1) == data.test.labels[i : i + 1000]).sum())
            for i in range(0, len(xt), 1000)
        )
    return {"train_loss": curve[-1], "curve": curve, "test_acc": 100 * correct / len(xt), "seconds": seconds}


def summary(xs: list[float]) -> tuple[float, float]:
    mean = sum(xs) / len(xs)
    sd = (sum((v - mean) ** 2 for v in xs) / (len(xs) - 1)) ** 0.5 if len(xs) > 1 else 0.0
    return mean, sd


def draw(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2))
    for k, (family, title) in enumerate((("mlp", "deep MLP"), ("gru", "stacked GRU, rows as steps"))):
        for wrap, colour in ((False, "#d62728"), (True, "#1f77b4")):
            mine = sorted((r for r in rows if r["family"] == family and r["wrapped"] == wrap), key=lambda r: r["depth"])
            label = "Residual(layer)" if wrap else "plain"
            depths = [r["depth"] for r in mine]
            for j, metric in enumerate(("train_loss", "test_acc")):
                ax = axes[2 * k + j]
                ax.errorbar(
                    depths, [r[metric][0] for r in mine], yerr=[r[metric][1] for r in mine], color=colour,
                    marker="o", capsize=3, linestyle="--" if not wrap else "-", label=label,
                )  # fmt: skip
                for r in mine:
                    ax.scatter([r["depth"]] * len(r[f"{metric}_each"]), r[f"{metric}_each"], color=colour, s=8)
                ax.set_xscale("log")
                ax.set_xticks(depths, [str(d) for d in depths])
                ax.minorticks_off()
                ax.set_xlabel("hidden layers" if family == "mlp" else "stacked GRUs")
                ax.set_title(f"{title}: {'final training loss' if j == 0 else 'test accuracy %'}", fontsize=10)
                ax.grid(alpha=0.3)
                ax.legend(fontsize=8)
    fig.suptitle("nas_res.Residual on Fashion-MNIST: plain vs wrapped, mean +- sd over seeds (dots: seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mlp-depths", default="2,10,20,40")
    p.add_argument("--gru-depths", default="1,4,8")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--train-size", type=int, default=10000)
    p.add_argument("--mlp-epochs", type=int, default=3)
    p.add_argument("--gru-epochs", type=int, default=3)
    p.add_argument("--gru-images", type=int, default=10000, help="the GRUs train on the first N")
    p.add_argument("--width", type=int, default=128, help="MLP width (the GRU's is half of it)")
    p.add_argument("--lr", type=float, default=1e-3)
    args = p.parse_args()
    data = load_data("fashion-mnist", train_size=args.train_size, test=True)
    plan = [("mlp", int(d)) for d in args.mlp_depths.split(",")] + [("gru", int(d)) for d in args.gru_depths.split(",")]
    rows = []
    for family, depth in plan:
        for wrap in (False, True):
            runs = []
            for seed in range(args.seeds):
                torch.manual_seed(seed)
                model = mlp(depth, args.width, wrap) if family == "mlp" else RowGRU(depth, args.width // 2, wrap)
                epochs = args.mlp_epochs if family == "mlp" else args.gru_epochs
                images = args.train_size if family == "mlp" else min(args.gru_images, args.train_size)
                runs.append(run(model, data, epochs, 128, args.lr, seed, images))
            row = {
                "family": family,
                "depth": depth,
                "wrapped": wrap,
                "train_loss": summary([r["train_loss"] for r in runs]),
                "test_acc": summary([r["test_acc"] for r in runs]),
                "train_loss_each": [r["train_loss"] for r in runs],
                "test_acc_each": [r["test_acc"] for r in runs],
                "curves": [r["curve"] for r in runs],
                "seconds": sum(r["seconds"] for r in runs) / len(runs),
            }
            rows.append(row)
            print(
                f"{family} depth {depth:>3} {'Residual' if wrap else 'plain   '}: training loss "
                f"{row['train_loss'][0]:.3f} +- {row['train_loss'][1]:.3f}, test {row['test_acc'][0]:.2f} +- "
                f"{row['test_acc'][1]:.2f}%  ({row['seconds']:.1f} s a run)",
                flush=True,
            )
    picture = RESULTS / "residual-wrapper.png"
    draw(rows, picture)
    settings = {k: v for k, v in vars(args).items()}
    path = write("residual-wrapper", {"settings": settings, "rows": rows}, " ".join(["python", *sys.argv]))
    print(f"wrote {path}, {picture}")


if __name__ == "__main__":
    main()
