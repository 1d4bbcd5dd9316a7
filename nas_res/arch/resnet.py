"""`ResNet`: the classifier an `Arch` describes, initialised as in the papers (`init`).

Module names follow torchvision (conv1, bn1, maxpool, layer1..N, fc), so torchvision's ResNet and
ResNeXt weights load into the matching zoo entries with `strict=True`.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import Unit, conv, head_has_bn, stem_convs, stem_has_bn, stem_has_maxpool
from .description import PREACT_ORDERS, Arch


class ResNet(nn.Module):
    """The classifier; with `head=False` the trunk alone (stem, stages, the final BN of full
    pre-activation), which a VAE's encoder is."""

    def __init__(self, arch: Arch, head: bool = True):
        super().__init__()
        self.arch = arch
        convs = stem_convs(arch.stem, arch.in_channels, arch.stem_width)
        self.conv1: nn.Module  # one Conv2d, or a Sequential for the deep stem
        if len(convs) == 1:
            ci, co, k, s = convs[0]
            self.conv1 = conv(ci, co, k, s)
        else:  # deep stem: conv-BN-ReLU pairs, the last conv's BN is bn1 (timm's layout)
            layers: list[nn.Module] = []
            for j, (ci, co, k, s) in enumerate(convs):
                layers.append(conv(ci, co, k, s))
                if j < len(convs) - 1:
                    layers += [nn.BatchNorm2d(co), nn.ReLU(inplace=True)]
            self.conv1 = nn.Sequential(*layers)
        self.bn1 = nn.BatchNorm2d(arch.stem_width) if stem_has_bn(arch.unit_order) else None
        self.stem_relu = arch.unit_order not in PREACT_ORDERS
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if stem_has_maxpool(arch.stem) else None

        cin = arch.stem_width
        self.stage_names = []
        for i, st in enumerate(arch.stages, 1):
            units = [
                Unit(arch, cin if j == 0 else st.width, st.width, st.mid, st.groups, st.stride if j == 0 else 1)
                for j in range(st.depth)
            ]
            setattr(self, f"layer{i}", nn.Sequential(*units))
            self.stage_names.append(f"layer{i}")
            cin = st.width
        self.final_bn = nn.BatchNorm2d(cin) if head_has_bn(arch.unit_order) else None
        self.final_relu = arch.unit_order in PREACT_ORDERS
        self.head = head
        if head:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(cin, arch.classes)
        init(self, arch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_stem(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return self.forward_head(x)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """The stem alone (a latency table times it apart from the units)."""
        x = self.conv1(x)
        if self.bn1 is not None:
            x = self.bn1(x)
        if self.stem_relu:
            x = self.relu(x)
        return x if self.maxpool is None else self.maxpool(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """From the last unit's output: the final BN and ReLU of full pre-activation, then the classifier."""
        if self.final_bn is not None:
            x = self.final_bn(x)
        if self.final_relu:
            x = torch.relu(x)
        if not self.head:
            return x
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def init(model: nn.Module, arch: Arch) -> None:
    """Kaiming-normal convs (fan-out, as torchvision), BN weight 1 / bias 0, optional zero last BN."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in model.modules():
        if isinstance(m, Unit):
            if m.modulation in ("gate", "shortcut_gate"):
                assert m.gate.bias is not None, "the gate conv is built with a bias"
                nn.init.constant_(m.gate.bias, m.mod_value)
            if arch.zero_init_last_bn and m.last_bn:
                nn.init.zeros_(getattr(m, m.last_bn).weight)
