"""A variational autoencoder whose encoder and decoder are residual stacks (`task: vae`), priced beside it.

The encoder is the Arch's trunk (stem, stages; the final BN of full pre-activation) flattened into a
linear map to the latent's mean and log-variance. The decoder mirrors it: a linear map back to the
last stage's feature map, the stages in reverse with the same units (kind, order, shortcut,
modulation), each downsample undone by its transposed conv, then the stem in reverse, ending in a
conv to the image's channels (Bernoulli logits, or the means of a discretised Gaussian whose
per-channel scale is learned). It is priced in `nas_res.arch.vae_cost` from the fields alone.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import Unit, conv, head_has_bn
from .description import PREACT_ORDERS, Arch
from .resnet import ResNet, init
from .vae_cost import check_latent, decoder_units, stage_sizes, stem_sides, tail_convs


class VAE(nn.Module):
    """`forward(x) -> (decoded, mu, logvar)`: the decoder's output for z drawn from q(z|x) (always
    sampled, so an evaluation is an ELBO), and the posterior's parameters."""

    def __init__(self, arch: Arch):
        super().__init__()
        assert arch.task == "vae" and arch.latent is not None, "a VAE is built from a task: vae arch"
        check_latent(arch.latent, arch.in_channels, arch.resolution)  # before its linear maps take the memory
        self.arch = arch
        self.encoder = ResNet(arch, head=False)
        res, sw = arch.resolution, arch.stem_width
        stages = tuple((s.depth, s.width, s.stride, s.mid, s.groups) for s in arch.stages)
        sides = stage_sizes(stages, stem_sides(arch.stem, arch.in_channels, sw, res)[-1])
        self.shape = (arch.stages[-1].width, sides[-1][1], sides[-1][1])  # the last stage's feature map
        flat = self.shape[0] * self.shape[1] * self.shape[2]
        self.to_latent = nn.Linear(flat, 2 * arch.latent)
        self.from_latent = nn.Linear(arch.latent, flat)
        self.up_names = []
        for i, units in zip(range(len(stages), 0, -1), decoder_units(stages, sw, sides)):
            made = [Unit(arch, ci, co, mid, g, s, up=(pad, pad)) for ci, co, mid, g, s, pad, _ in units]
            setattr(self, f"up{i}", nn.Sequential(*made))
            self.up_names.append(f"up{i}")
        self.final_bn = nn.BatchNorm2d(sw) if head_has_bn(arch.unit_order) else None
        self.final_relu = arch.unit_order in PREACT_ORDERS
        tail: list[nn.Module] = []
        convs = tail_convs(arch.stem, arch.in_channels, sw, res)
        for j, (ci, co, k, s, pad) in enumerate(convs):
            last = j == len(convs) - 1
            tail.append(conv(ci, co, k, s, bias=last, up=(pad, pad)))
            if not last:
                tail += [nn.BatchNorm2d(co), nn.ReLU(inplace=True)]
        self.out = nn.Sequential(*tail)
        # A discretised Gaussian's log-scale per channel; a Bernoulli has none.
        self.log_scale = nn.Parameter(torch.zeros(arch.in_channels)) if arch.likelihood == "gaussian" else None
        init(self, arch)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.to_latent(torch.flatten(self.encoder(x), 1)).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)  # exp() stays finite; the KL keeps it far inside

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        x = self.from_latent(z).view(-1, *self.shape)
        for name in self.up_names:
            x = getattr(self, name)(x)
        if self.final_bn is not None:
            x = self.final_bn(x)
        if self.final_relu:
            x = torch.relu(x)
        return self.out(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decode(z), mu, logvar

    def parts(self) -> dict[str, list[str]]:
        """The modules of each part that `vae_tallies` prices (fvcore attributes FLOPs to modules)."""
        n = len(self.arch.stages)
        enc = {f"layer{i}": [f"encoder.layer{i}"] for i in range(1, n + 1)}
        return {
            "stem": ["encoder.conv1", "encoder.bn1"],
            **enc,
            "latent": ["encoder.final_bn", "to_latent", "from_latent"],
            **{name: [name] for name in self.up_names},
            "out": ["final_bn", "out"],
        }
