"""A trained VAE's picture: validation (or test) images above their reconstructions, then samples
from the prior. Reconstructions decode the posterior's mean; samples decode z ~ N(0, I) drawn from a
fixed seed; both show the likelihood's mean image, so a picture says what the model believes an
image is, not its pixel noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..arch.vae import VAE
from ..data.batches import batches
from ..data.splits import Data
from ..training.elbo import decoded_images
from .page import check_plot_file, save

GAP = 2  # pixels between images


@torch.no_grad()
def vae_pictures(
    model: VAE, data: Data, split: str = "val", images: int = 8, samples: int = 16, seed: int = 0
) -> dict[str, torch.Tensor]:
    """inputs and reconstructions of the first `images` images of `split`, and `samples` prior samples,
    all in [0, 1] on the CPU (N x C x H x W)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    source = batches(data, split, batch_size=images, device=device, train=False)
    x, _ = next(iter(source))
    mu, _ = model.encode(x)
    arch = model.arch
    assert arch.latent is not None, "Arch fills in a VAE's latent"
    generator = torch.Generator(device="cpu").manual_seed(seed)
    z = torch.randn(samples, arch.latent, generator=generator).to(device)
    mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(data.std, device=device).view(1, -1, 1, 1)
    out = {
        "inputs": (x * std + mean).clamp(0, 1).cpu(),
        "reconstructions": decoded_images(arch, model.decode(mu)).cpu(),
        "samples": decoded_images(arch, model.decode(z)).cpu(),
    }
    model.train(was_training)
    return out


def _row(batch: torch.Tensor, per_row: int) -> np.ndarray:
    """Images tiled `per_row` to a row (white gaps), as an RGB array."""
    n, c, h, w = batch.shape
    rows = -(-n // per_row)
    canvas = np.ones((rows * (h + GAP) - GAP, per_row * (w + GAP) - GAP, 3))
    for i in range(n):
        r, k = divmod(i, per_row)
        img = batch[i].repeat(3, 1, 1) if c == 1 else batch[i, :3]
        canvas[r * (h + GAP) : r * (h + GAP) + h, k * (w + GAP) : k * (w + GAP) + w] = img.permute(1, 2, 0).numpy()
    return canvas


def save_vae_pictures(
    model: VAE, data: Data, path: str | Path, *, split: str = "val", title: str = "", field: str = "--out"
) -> Path:
    """The picture (PNG, any matplotlib format, or an HTML page around it) of `vae_pictures`."""
    import matplotlib.pyplot as plt

    path = check_plot_file(path, field)
    pics = vae_pictures(model, data, split)
    n = len(pics["inputs"])
    panels = [
        (
            f"{split} images (top) and their reconstructions (bottom)",
            _row(torch.cat([pics["inputs"], pics["reconstructions"]]), n),
        ),
        ("samples from the prior, z ~ N(0, I)", _row(pics["samples"], n)),
    ]
    fig, axes = plt.subplots(2, 1, figsize=(n * 0.9, 4.6), gridspec_kw={"height_ratios": [2, 2]})
    for ax, (label, img) in zip(axes, panels):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    fig.suptitle(title or model.arch.summary(), fontsize=10)
    fig.tight_layout()
    return save(fig, path, title=title or model.arch.summary(), field=field)


__all__ = ["save_vae_pictures", "vae_pictures"]
