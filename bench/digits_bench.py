"""Quality on real data: a small zoo ResNet on scikit-learn's 8x8 digits, test accuracy and seconds.

Target (issue 3): >= 97% top-1 on the held-out test split; the seconds are for 2 CPU cores.
The split, recipe and seed are fixed, so the accuracy is reproducible on a CPU.

    python bench/digits_bench.py [--net mnist_resnet] [--epochs 15] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe, write

from nas_res import Recipe, evaluate, load_data, train, zoo


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--net", default="mnist_resnet")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--seeds", type=int, default=3, help="independent runs (seeds 0..N-1)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    start = time.perf_counter()
    data = load_data("digits", test=True)
    load_s = time.perf_counter() - start
    arch = zoo.get(args.net).replace(in_channels=data.channels, classes=data.classes)
    runs = []
    for seed in range(args.seeds):
        recipe = Recipe(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=seed)
        t = time.perf_counter()
        result = train(arch, data, recipe, device=args.device)
        seconds = time.perf_counter() - t
        test = evaluate(result.model, data, "test", device=args.device)
        runs.append(
            {
                "seed": seed,
                "status": result.status,
                "test_top1": test["top1"],
                "best_val_acc": result.best.val_acc,
                "wall_seconds": seconds,
                "train_seconds": result.train_seconds,
                "images_per_s": result.images_per_s,
            }
        )
        print(
            f"seed {seed}: test top-1 {test['top1']:.2f}% ({test['images']} images), best val "
            f"{result.best.val_acc:.2f}%, {seconds:.1f} s wall ({result.train_seconds:.1f} s training, "
            f"{result.images_per_s:,.0f} img/s)",
            flush=True,
        )
    accs = [r["test_top1"] for r in runs]
    figures = {
        "net": args.net,
        "dataset": data.describe(),
        "recipe": Recipe(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr).to_dict(),
        "device": args.device,
        "runs": runs,
        "test_top1_min": min(accs),
        "test_top1_mean": sum(accs) / len(accs),
        "target": 97.0,
        "data_load_seconds": load_s,
    }
    print(
        f"test top-1: min {min(accs):.2f}%, mean {sum(accs) / len(accs):.2f}% over {len(runs)} seeds "
        f"(target >= 97%); data loaded in {load_s:.1f} s"
    )
    print("machine:", describe())
    print("written:", write("digits", figures, "python bench/digits_bench.py " + " ".join(sys.argv[1:])))


if __name__ == "__main__":
    main()
