"""The referee for `cost`: build the model and let fvcore trace it (slow; seconds for large nets).

The analytic count must give fvcore's integers; tests and `resnas space show --verify` check it here."""

from __future__ import annotations

import warnings

import torch

from .blocks import Tally
from .build import build
from .cost import Cost
from .description import Arch
from .vae import VAE


def fvcore_cost(arch: Arch, resolution: int | None = None) -> Cost:
    """The referee: build the model and let fvcore trace it (slow; seconds for large nets)."""
    res = arch.resolution if arch.task == "vae" else resolution or arch.resolution
    model = build(arch).eval()
    x = torch.zeros(1, arch.in_channels, res, res)
    with warnings.catch_warnings():  # fvcore's tracer warns about deprecated torch.jit APIs it uses
        warnings.simplefilter("ignore")
        from fvcore.nn import ActivationCountAnalysis, FlopCountAnalysis

        counts = []
        for analysis in (FlopCountAnalysis(model, x), ActivationCountAnalysis(model, x)):
            analysis.unsupported_ops_warnings(False)
            analysis.uncalled_modules_warnings(False)
            counts.append(analysis)
        flops, acts = counts[0].total(), counts[1].total()
        by_module = counts[0].by_module()
    params = sum(p.numel() for p in model.parameters())
    if isinstance(model, VAE):  # same parts as `cost`, FLOPs only (fvcore attributes them per module)
        named = {part: Tally(sum(int(by_module.get(m, 0)) for m in mods)) for part, mods in model.parts().items()}
        return Cost(int(flops), int(params), int(acts), named, res)
    # Same parts as `cost`, FLOPs only (fvcore attributes them per module).
    parts = {name: Tally(int(by_module.get(name, 0))) for name in model.stage_names}
    head = sum(int(by_module.get(n, 0)) for n in ("final_bn", "avgpool", "fc"))
    parts = {"stem": Tally(int(flops) - head - sum(t.flops for t in parts.values())), **parts, "head": Tally(head)}
    return Cost(int(flops), int(params), int(acts), parts, res)
