"""A VAE's loss: the negative ELBO per image (reconstruction + KL), in nats, and bits per dimension.

Pixels are 8-bit values. `bernoulli` scores intensities k/255 as soft Bernoulli targets (the usual
choice on MNIST-like data; not a likelihood of 8-bit values, so it has no bits/dim). `gaussian` is a
Gaussian discretised to the 256 values (the extreme values take the tails), a true probability of
8-bit data: its negative ELBO in bits per dimension is comparable with published likelihoods.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch.special import log_ndtr

from ..arch.description import Arch

HALF_BIN = 0.5 / 255  # half the width of one 8-bit value on [0, 1]
LOG_SCALE = (-7.0, 2.0)  # a discretised Gaussian's log-scale is kept in this range


class Terms(NamedTuple):
    """Per-image terms (nats): nelbo = recon + kl."""

    nelbo: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor


def pixels_from(x: torch.Tensor, mean, std) -> torch.Tensor:
    """The 8-bit values (as floats 0..255) of a batch normalised as (k/255 - mean) / std per channel."""
    m = torch.as_tensor(mean, device=x.device, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.as_tensor(std, device=x.device, dtype=torch.float32).view(1, -1, 1, 1)
    return torch.round((x.float() * s + m) * 255).clamp(0, 255)


def kl_to_prior(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per image."""
    mu, logvar = mu.float(), logvar.float()
    return 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(1)


def bernoulli_nll(logits: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """-log p(x | z) per image with intensities k/255 as Bernoulli targets."""
    return F.binary_cross_entropy_with_logits(logits.float(), pixels / 255, reduction="none").flatten(1).sum(1)


def discretised_gaussian_nll(means: torch.Tensor, log_scale: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """-log P(k | z) per image: the mass of N(mean, scale) over each value's bin [k/255 -+ half a bin],
    the bins of 0 and 255 extended to -inf and +inf. Computed in float64 on the side of the mean where
    the two tail masses differ most, so a narrow bin far from the mean keeps its digits."""
    mu = means.double()
    scale = log_scale.double().clamp(*LOG_SCALE).exp().view(1, -1, 1, 1)
    v = pixels.double() / 255
    lo = (v - HALF_BIN - mu) / scale
    hi = (v + HALF_BIN - mu) / scale
    far = torch.full_like(lo, 1e4)  # "infinitely" many scales away, finite so no gradient turns NaN
    lo = torch.where(pixels <= 0, -far, lo)
    hi = torch.where(pixels >= 255, far, hi)
    # Phi(hi) - Phi(lo) = Phi(-lo) - Phi(-hi): take the side whose upper end is the nearer tail.
    flip = (lo + hi) > 0
    a, b = torch.where(flip, -hi, lo), torch.where(flip, -lo, hi)  # mass over [a, b], b <= |a| side
    log_b, log_a = log_ndtr(b), log_ndtr(a)
    log_p = log_b + torch.log(-torch.expm1((log_a - log_b).clamp(max=-1e-300)))
    return (-log_p).flatten(1).sum(1).float()


def negative_elbo(arch: Arch, decoded: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, pixels, log_scale=None):
    """The per-image `Terms` of a VAE's output for `pixels` (8-bit values as floats)."""
    if arch.likelihood == "gaussian":
        assert log_scale is not None, "a Gaussian VAE learns its log-scale"
        recon = discretised_gaussian_nll(decoded, log_scale, pixels)
    else:
        recon = bernoulli_nll(decoded, pixels)
    kl = kl_to_prior(mu, logvar)
    return Terms(recon + kl, recon, kl)


def bits_per_dim(nelbo_nats: float, dims: int, likelihood: str) -> float | None:
    """nats per image -> bits per pixel value; None for the Bernoulli, which is not a likelihood of 8-bit data."""
    return nelbo_nats / (dims * math.log(2)) if likelihood == "gaussian" else None


def decoded_images(arch: Arch, decoded: torch.Tensor) -> torch.Tensor:
    """What the decoder's output shows as an image in [0, 1]: the Bernoulli's means, the Gaussian's means."""
    return torch.sigmoid(decoded.float()) if arch.likelihood != "gaussian" else decoded.float().clamp(0, 1)
