"""A net as the parts a latency table times one by one: its stem, each distinct unit shape, its head.

ProxylessNAS and Once-for-All predict a net's latency as the sum of its layers' measured latencies. Here
the layer is a residual unit: a stage's later units are all one shape, so a ResNet-50 is 7 distinct parts
(stem, 2 units per stage but the shapes repeat, head), and a space of 10^5 nets shares a few hundred. A
part's key names everything that shapes its computation (never the net it came from), so two nets that
share a unit share its timing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from ..arch.blocks import stem_cost, unit_cost
from ..arch.description import Arch, Stage
from ..errors import ResnasError


@dataclass(frozen=True)
class Part:
    """One thing a table times: `what` (stem, unit, head; call: the harness), its key, a label, the input it
    takes (C, H, W) and `build`, what the measuring process needs to make it (see `module`)."""

    what: str
    key: str
    label: str
    shape: tuple[int, int, int]
    build: dict


def _key(*fields) -> str:
    return hashlib.sha256(json.dumps(fields, separators=(",", ":")).encode()).hexdigest()[:16]


# The harness's own cost of one call (an empty module under the same contexts): every part timed alone
# pays it, a whole net once, so the table subtracts it from each part and adds it back once.
CALL = Part("call", _key("call"), "an empty call (the timing harness)", (1, 1, 1), {})


def check_classifier(arch: Arch, what: str = "latency") -> None:
    if arch.task != "classify":
        raise ResnasError(f"{what} is measured for classifiers; this arch is a {arch.task}", field="task")


def parts_of(arch: Arch) -> list[tuple[Part, int]]:
    """The net's distinct parts in forward order, each with how many times the net runs it."""
    check_classifier(arch)
    kind = tuple(arch.kind) + (arch.modulation_value,)
    spec = arch.to_dict()
    _, h, w = stem_cost(arch.stem, arch.in_channels, arch.stem_width, arch.unit_order, arch.resolution)
    stem_key = _key("stem", arch.stem, arch.in_channels, arch.stem_width, arch.unit_order, arch.resolution)
    out: dict[str, tuple[Part, int]] = {
        stem_key: (
            Part(
                "stem",
                stem_key,
                f"stem {arch.stem} {arch.in_channels}->{arch.stem_width} at {arch.resolution}",
                (arch.in_channels, arch.resolution, arch.resolution),
                {"arch": spec},
            ),
            1,
        )
    }
    cin = arch.stem_width
    for s in arch.stages:
        for j in range(s.depth):
            first = j == 0
            unit = (cin if first else s.width, s.width, s.mid, s.groups, s.stride if first else 1)
            key = _key("unit", kind, unit, h, w)
            if key in out:
                part, n = out[key]
                out[key] = (part, n + 1)
            else:
                label = f"unit {unit[0]}->{unit[1]}" + (f" {s.groups}x{s.mid // s.groups}d" if s.groups > 1 else "")
                label += f" /{unit[4]} at {h}x{w}"
                out[key] = (Part("unit", key, label, (unit[0], h, w), {"arch": spec, "unit": list(unit)}), 1)
            h, w = unit_cost(arch.kind, *unit, h, w)[1:]
        cin = s.width
    head_key = _key("head", arch.unit_order, arch.classes, cin, h, w)
    out[head_key] = (Part("head", head_key, f"head {cin}->{arch.classes} at {h}x{w}", (cin, h, w), {"arch": spec}), 1)
    return list(out.values())


def module(what: str, build: dict):
    """The `nn.Module` a part's `build` describes (in the measuring process: imports torch)."""
    from torch import nn

    from ..arch.blocks import Unit
    from ..arch.resnet import ResNet

    if what == "call":
        return nn.Identity()
    arch = Arch.from_dict(build["arch"])
    if what == "net":
        return ResNet(arch)
    if what == "unit":
        return Unit(arch, *build["unit"])
    first, last = arch.stages[0], arch.stages[-1]
    if what == "stem":  # the stem of a one-unit net: the same convs, BN and pool
        trimmed = arch.replace(stages=(Stage(1, first.width, first.stride, first.mid, first.groups),))
    else:  # the head of a one-unit net whose stages end in the same width
        trimmed = arch.replace(stem_width=last.width, stages=(Stage(1, last.width, 1, last.mid, last.groups),))

    class Piece(nn.Module):
        def __init__(self, net: ResNet, method: str):
            super().__init__()
            self.net, self.method = net, method

        def forward(self, x):
            return getattr(self.net, self.method)(x)

    return Piece(ResNet(trimmed), "forward_stem" if what == "stem" else "forward_head")
