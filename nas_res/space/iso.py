"""Iso-complexity: keep a reference net's params (or FLOPs) while trading one dimension for another.

ResNeXt's Table 2 holds ResNet-50's complexity fixed and, for each cardinality C, picks the
bottleneck width d that comes closest; `iso_cardinality` does exactly that on the whole network.
`iso_depth` does the same for depth: for each stage-depth tuple, the width that comes closest.
Complexity grows with d and with width, so the search walks upward and stops once past the target.
`iso_table` is `resnas iso`: the reference against a list of cardinalities or of stage depths, as typed.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..arch.cost import Cost, cost
from ..arch.description import Arch, Stage
from ..errors import ResnasError

MATCHES = ("params", "flops")


@dataclass(frozen=True)
class IsoResult:
    label: str  # "32x4d" or "3-4-6-3 w256"
    arch: Arch
    cost: Cost
    target: int  # the reference's params or FLOPs

    def deviation(self, match: str) -> float:
        return getattr(self.cost, match) / self.target - 1


def _closest(make, target: int, match: str, start: int, step: int, limit: int) -> tuple[int, Arch]:
    """The value v (start, start+step, ...) whose arch's metric is nearest `target`; metric rises with v."""
    best = None
    v = start
    while v <= limit:
        arch = make(v)
        value = getattr(cost(arch), match)
        gap = abs(value - target)
        if best is None or gap < best[0]:
            best = (gap, v, arch)
        if value > target:
            break
        v += step
    if best is None:
        raise ResnasError("no candidate width found", field="iso")
    return best[1], best[2]


def _check(ref: Arch, match: str) -> None:
    if match not in MATCHES:
        raise ResnasError(f"must be one of {', '.join(MATCHES)}; got {match!r}", field="match")
    if ref.block != "bottleneck":
        raise ResnasError("iso-complexity over cardinality needs a bottleneck reference (e.g. resnet50)", field="like")


def iso_cardinality(ref: Arch, cardinalities: list[int], match: str = "params") -> list[IsoResult]:
    """For each C, the d (channels per group in stage 1; doubling per stage like the inner width) that
    keeps `ref`'s complexity. With ResNet-50 and params this is ResNeXt's Table 2 (1x64d ... 32x4d)."""
    _check(ref, match)
    target = getattr(cost(ref), match)
    base = ref.stages[0].mid
    scale = [s.mid / base for s in ref.stages]
    if any(x != int(x) for x in scale):
        raise ResnasError("the reference's inner widths must be whole multiples of the first stage's", field="like")
    out = []
    for c in cardinalities:
        if not isinstance(c, int) or c < 1:
            raise ResnasError(f"cardinalities must be positive integers; got {c!r}", field="cardinality")

        def make(d: int, c: int = c) -> Arch:
            return ref.replace(
                stages=tuple(Stage(s.depth, s.width, s.stride, int(k) * c * d, c) for s, k in zip(ref.stages, scale))
            )

        d, arch = _closest(make, target, match, 1, 1, 64 * base)
        out.append(IsoResult(f"{c}x{d}d", arch, cost(arch), target))
    return out


def iso_depth(ref: Arch, depths: list[tuple[int, ...]], match: str = "params") -> list[IsoResult]:
    """For each per-stage depth tuple, the first-stage width (all widths scaled alike, inner widths kept a
    multiple of the cardinality) that keeps `ref`'s complexity."""
    if match not in MATCHES:
        raise ResnasError(f"must be one of {', '.join(MATCHES)}; got {match!r}", field="match")
    target = getattr(cost(ref), match)
    first = ref.stages[0]
    out = []
    for ds in depths:
        if len(ds) != len(ref.stages) or any(not isinstance(d, int) or d < 1 for d in ds):
            raise ResnasError(
                f"{'-'.join(map(str, ds))} must give {len(ref.stages)} positive stage depths", field="depths"
            )
        groups = first.groups

        def make(mid: int, ds: tuple = ds) -> Arch:
            ratio = mid / first.mid
            return ref.replace(
                stages=tuple(
                    Stage(d, max(1, round(s.width * ratio)), s.stride, mid * s.mid // first.mid, s.groups)
                    for d, s in zip(ds, ref.stages)
                )
            )

        _, arch = _closest(make, target, match, groups, groups, 64 * first.mid)
        label = f"{'-'.join(map(str, ds))} w{arch.stages[0].width}"
        out.append(IsoResult(label, arch, cost(arch), target))
    return out


def parse_cardinalities(text: str) -> list[int]:
    """'1,2,4,8,32' -> [1, 2, 4, 8, 32]."""
    try:
        return [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise ResnasError(
            f"must be comma-separated integers, e.g. 1,2,4,8,32; got {text!r}", field="--cardinality"
        ) from None


def parse_depths(text: str) -> list[tuple[int, ...]]:
    """'2-2-2-2,3-4-6-3' -> [(2, 2, 2, 2), (3, 4, 6, 3)]: stage depths, one tuple per network."""
    try:
        return [tuple(int(x) for x in d.split("-")) for d in text.split(",")]
    except ValueError:
        raise ResnasError(f"must look like 2-2-2-2,3-4-6-3; got {text!r}", field="--depths") from None


def iso_table(
    ref: Arch, *, cardinality: str | None = None, depths: str | None = None, match: str = "params"
) -> list[IsoResult]:
    """`iso_cardinality` over cardinalities such as '1,2,4,8,32', or `iso_depth` over stage depths such
    as '2-2-2-2,3-4-6-3': exactly one of the two."""
    if bool(cardinality) == bool(depths):
        raise ResnasError("give exactly one of --cardinality or --depths")
    if cardinality:
        return iso_cardinality(ref, parse_cardinalities(cardinality), match)
    assert depths is not None, "checked above: depths is given when cardinality is not"
    return iso_depth(ref, parse_depths(depths), match)
