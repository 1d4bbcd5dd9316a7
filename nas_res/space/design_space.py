"""`DesignSpace`: the set of architectures a template generates under the two ResNeXt rules.

(i) units producing maps of the same size share width and filter sizes: a stage is one (depth,
width, inner width, cardinality); (ii) every x2 downsample doubles the width (and the inner width;
the cardinality stays), or multiplies it by the template's `width_multiplier` (`rules`). So a candidate
is fixed by a handful of values, and everything here (size, sampling, Optuna mapping) works on those
values, not on modules. What fits a budget (its
share, the extremes, a refusal naming the nearest candidate) is in `budget_fit`.

Over 300 lines: one class, the space's whole interface (values <-> Arch, size, enumeration, sampling,
Optuna); split further it would scatter one concept across files.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..arch.blocks import Tally
from ..arch.budget import Budget
from ..arch.cost import cost, network_tallies
from ..arch.description import (
    VAE_LATENT,
    Arch,
    Kind,
    Stage,
    blocks_for_total,
    canonical_kind,
    inner_shape,
    requested_task,
)
from ..errors import ResnasError
from .dims import STRUCTURE
from .points import params_of
from .rules import DOUBLING, geometric_depths, grown, multiplier_of, ratio_of
from .template import Dim, Spec, load_spec

ENUMERATE_LIMIT = 20_000  # exact answers by enumeration up to this many candidates


class NotACandidate(ResnasError):
    """Values that build no network of the space (a depth total that does not split into the chosen
    blocks): a search tells the sampler so, as it does an over-budget suggestion, and asks again."""


class DesignSpace:
    def __init__(self, spec: Spec):
        self.spec = spec
        self.dims: dict[str, Dim] = spec.dims
        self._depths: dict[tuple, list] = {}
        self._fixed = {k: d.values[0] for k, d in self.dims.items() if not d.open}
        self._per_stage = spec.split is None and "depth_ratio" not in self.dims  # depth mode: else total or ratio
        self._stage_depths = (
            [self.dims[f"depth{i + 1}"].values for i in range(len(spec.strides))] if self._per_stage else []
        )
        self.structures = self._distinct_structures()
        self._weights = list(itertools.accumulate(self._count(s) for s in self.structures))

    # ---- what the template says --------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def task(self) -> str:
        return self.spec.task

    def with_task(
        self, task: str | None, latent: int | None = None, likelihood: str | None = None, resolution: int | None = None
    ) -> DesignSpace:
        """This space for another task (classify or vae; None: its own), latent and likelihood, and for a VAE
        at `resolution` (its linear maps are sized for its images). Checked as an Arch checks them, naming
        the option."""
        classifiers = f"space {self.name} holds classifiers"
        if requested_task(self.spec.task, task, latent, likelihood, classifiers) == "classify":
            return (
                self
                if self.spec.task == "classify"
                else DesignSpace(dataclasses.replace(self.spec, task="classify", latent=None, likelihood=None))
            )
        try:
            probe = Arch(
                stages=(Stage(1, 1),),
                block="basic",
                task="vae",
                latent=self.spec.latent if latent is None else latent,
                likelihood=self.spec.likelihood if likelihood is None else likelihood,
            )
        except ResnasError as e:
            raise ResnasError(e.bare, field=f"--{e.field}") from None
        spec = dataclasses.replace(
            self.spec,
            task="vae",
            latent=probe.latent,
            likelihood=probe.likelihood,
            resolution=resolution or self.spec.resolution,
        )
        return self if spec == self.spec else DesignSpace(spec)

    @property
    def enumerable(self) -> bool:
        """Small enough that exact answers come from enumerating every candidate."""
        return self._weights[-1] <= ENUMERATE_LIMIT

    @property
    def open_dims(self) -> list[Dim]:
        return [d for d in self.dims.values() if d.open]

    def _distinct_structures(self) -> list[dict]:
        """Distinct combinations of the categorical dims, after Arch's canonicalisation rules."""
        seen: dict[tuple, dict] = {}
        for combo in itertools.product(*(self.dims[k].values for k in STRUCTURE)):
            s = dict(zip(STRUCTURE, combo))
            s.update(canonical_kind(_kind(s))._asdict())
            seen.setdefault(tuple(s.values()), s)
        return list(seen.values())

    def numeric_dims(self, block: str) -> tuple[str, ...]:
        """The numeric dims that shape this block type (a basic unit has no inner width or groups), and
        the stem's width and the width multiplier where the template opens them."""
        more = tuple(k for k in ("width_multiplier", "stem_width") if k in self.dims)
        if block == "basic":
            return ("width", *more)
        return ("width", "cardinality", "bottleneck_ratio" if self.spec.ratio_mode else "bottleneck_width", *more)

    def _depth_tuples(self, block: str, stem: str) -> list[tuple]:
        """The distinct per-stage depths of a total depth (each total that splits for this block type and
        stem) or of a depth ratio (each first depth and ratio; rounding makes some of them coincide)."""
        cached = self._depths.get((block, stem))
        if cached is None:
            if "depth_ratio" in self.dims:
                n = len(self.spec.strides)
                pairs = itertools.product(self.dims["depth1"].values, self.dims["depth_ratio"].values)
                found: Iterator[tuple | None] = (geometric_depths(first, ratio, n) for first, ratio in pairs)
            else:
                split = self.spec.split
                assert split is not None, "a total depth (depth.total with a split)"
                found = (blocks_for_total(t, block, stem, split) for t in self.dims["depth"].values)
            cached = self._depths[block, stem] = list(dict.fromkeys(d for d in found if d))
        return cached

    def depth_count(self, block: str, stem: str) -> int:
        if self._per_stage:
            return math.prod(len(v) for v in self._stage_depths)
        return len(self._depth_tuples(block, stem))

    def depth_options(self, block: str, stem: str) -> Iterator[tuple]:
        """Every per-stage depth tuple allowed for this block type and stem (lazily: products grow fast)."""
        if self._per_stage:
            return itertools.product(*self._stage_depths)
        return iter(self._depth_tuples(block, stem))

    def extreme_depths(self, pick, block: str, stem: str) -> tuple:
        """The shallowest (pick=min) or deepest depths: cost grows with each stage's depth, and the ends of a
        total's or a ratio's grid are deepest (shallowest) in every stage at once."""
        if self._per_stage:
            return tuple(pick(v) for v in self._stage_depths)
        return pick(self._depth_tuples(block, stem), key=sum)

    def _count(self, s: dict) -> int:
        n = self.depth_count(s["block"], s["stem"])
        for name in self.numeric_dims(s["block"]):
            n *= len(self.dims[name].values)
        return n

    # ---- from values to an Arch ----------------------------------------------------------------
    def arch_from(self, values: dict[str, Any]) -> Arch:
        """The Arch for one value per dim (fixed dims may be omitted; `depths` may give a per-stage tuple)."""
        v = self._complete(values)
        kind, stem_width, stages = self._fields(v)
        spec = self.spec
        return Arch(
            stages=tuple(Stage(*s) for s in stages),
            block=kind.block,
            stem=v["stem"],
            stem_width=stem_width,
            shortcut=kind.shortcut,
            unit_order=kind.unit_order,
            stride_on=kind.stride_on,
            modulation=kind.modulation,
            modulation_value=spec.modulation_value,
            zero_init_last_bn=spec.zero_init_last_bn,
            classes=spec.classes,
            in_channels=spec.in_channels,
            resolution=spec.resolution,
            task=spec.task,
            latent=spec.latent,
            likelihood=spec.likelihood,
        )

    def _complete(self, values: dict[str, Any]) -> dict[str, Any]:
        return {**self._fixed, **values}

    def _fields(self, v: dict[str, Any]) -> tuple[Kind, int, tuple]:
        """Apply the two rules: (kind, stem width, stages) for a complete set of values."""
        spec = self.spec
        depths = v.get("depths")
        if depths is None:
            if self._per_stage:
                depths = tuple(v[f"depth{i + 1}"] for i in range(len(spec.strides)))
            elif "depth_ratio" in self.dims:
                depths = geometric_depths(v["depth1"], v["depth_ratio"], len(spec.strides))
            else:
                split = spec.split
                assert split is not None, "a total depth (depth.total with a split)"
                depths = blocks_for_total(v["depth"], v["block"], v["stem"], split)
                if depths is None:
                    raise NotACandidate(
                        f"depth {v['depth']} does not split {list(split)} into whole {v['block']} blocks",
                        where=spec.source,
                        field="depth.total",
                    )
        width, block = v["width"], v["block"]
        groups, inner = v.get("cardinality", 1), 0  # a basic block has no bottleneck dims to read
        if block == "bottleneck":
            inner = round(width * v["bottleneck_ratio"]) if spec.ratio_mode else groups * v["bottleneck_width"]
        inner, groups = inner_shape(block, width, inner, groups)
        factor, steps, stages = v.get("width_multiplier", DOUBLING), 0, []
        for i, (depth, stride) in enumerate(zip(depths, spec.strides)):
            steps += i > 0 and stride == 2  # rule (ii): a x2 downsample multiplies the width (doubles, by default)
            mid = groups * grown(inner // groups, factor, steps)  # the cardinality stays: d grows
            stages.append((depth, grown(width, factor, steps), stride, mid, groups))
        stem_width = v["stem_width"] if "stem_width" in self.dims else spec.stem_width
        stem_width = inner if stem_width == "inner" else stem_width
        assert isinstance(stem_width, int), "a stem width is a number, 'inner', or the stem_width dim's"
        return _kind(v), stem_width, tuple(stages)

    def values_of(self, arch: Arch) -> dict[str, Any]:
        """The dim values that give `arch` (inverse of `arch_from`, for open dims)."""
        first = arch.stages[0]
        v: dict[str, Any] = {k: getattr(arch, k) for k in STRUCTURE}
        depths = tuple(s.depth for s in arch.stages)
        if self._per_stage:
            v.update({f"depth{i + 1}": d for i, d in enumerate(depths)})
        elif "depth_ratio" in self.dims:
            v["depth1"], v["depth_ratio"] = depths[0], ratio_of(depths, self.dims["depth_ratio"].values)
        else:
            v["depth"] = arch.depth
        v["width"] = first.width
        if "width_multiplier" in self.dims:
            v["width_multiplier"] = multiplier_of(arch.stages, self.dims["width_multiplier"].values)
        v["stem_width"] = arch.stem_width
        if arch.block == "bottleneck":
            v["cardinality"] = first.groups
            if self.spec.ratio_mode:
                v["bottleneck_ratio"] = first.mid / first.width
            else:
                v["bottleneck_width"] = first.mid // first.groups
        return {k: x for k, x in v.items() if k in self.dims and self.dims[k].open}

    def params_of(self, arch: Arch) -> dict[str, Any] | None:
        """The Optuna parameters (names and values exactly as `suggest` asks for them) that make `suggest`
        build `arch`, fitted to this space's input shape (its in_channels, classes and resolution are the
        data's: ignored); None when `arch` is not a point of this space."""
        return params_of(self, arch)

    def contains(self, arch: Arch) -> bool:
        """Whether `arch`, fitted to this space's input shape, is one of its points (see `params_of`)."""
        return params_of(self, arch) is not None

    # ---- size, enumeration, sampling -----------------------------------------------------------
    def size(self) -> int:
        """Exact number of distinct architectures."""
        if 2 not in self.spec.strides and self._weights[-1] <= 10 * ENUMERATE_LIMIT:
            return sum(1 for _ in self.enumerate())  # no stride: shortcut kinds may coincide, count keys
        return self._weights[-1]

    def enumerate(self) -> Iterator[Arch]:
        """Every distinct architecture, once each."""
        seen: set[str] = set()
        for s in self.structures:
            numeric = [self.dims[n].values for n in self.numeric_dims(s["block"])]
            for depths in self.depth_options(s["block"], s["stem"]):
                for combo in itertools.product(*numeric):
                    arch = self.arch_from({**s, "depths": depths, **dict(zip(self.numeric_dims(s["block"]), combo))})
                    if arch.key not in seen:
                        seen.add(arch.key)
                        yield arch

    def random_values(self, rng: random.Random) -> dict[str, Any]:
        """Values of one architecture drawn uniformly from the distinct set."""
        pick = rng.random  # an index from one float: the sampler's hot path
        s = self.structures[bisect.bisect(self._weights, pick() * self._weights[-1])]
        values = dict(s)
        if self._per_stage:  # uniform over the product = uniform per stage
            values["depths"] = tuple(v[int(pick() * len(v))] for v in self._stage_depths)
        else:
            options = self._depth_tuples(s["block"], s["stem"])
            values["depths"] = options[int(pick() * len(options))]
        for name in self.numeric_dims(s["block"]):
            choices = self.dims[name].values
            values[name] = choices[int(pick() * len(choices))]
        return values

    def random_arch(self, rng: random.Random) -> Arch:
        return self.arch_from(self.random_values(rng))

    def admits(self, values: dict[str, Any], budget: Budget) -> bool:
        """Budget check from values alone: candidates outside a budget never become an `Arch`."""
        kind, stem_width, stages = self._fields(self._complete(values))
        spec = self.spec
        vae = (spec.latent or VAE_LATENT, spec.likelihood or "bernoulli") if spec.task == "vae" else None
        tallies = network_tallies(
            kind, values["stem"], stem_width, spec.in_channels, spec.classes, spec.resolution, stages, vae
        )
        return budget.admits(Tally(sum(t.flops for t in tallies), sum(t.params for t in tallies)))

    def sample(self, n: int, budget: Budget | str | None = None, seed: int = 0) -> list[Arch]:
        """Up to `n` distinct architectures, uniform over those inside `budget` (fewer if fewer exist).
        `budget` is a `Budget` or a FLOPs text such as "4GFLOPs" or "3.8-4.2GFLOPs"."""
        budget = Budget.parse(budget) if isinstance(budget, str) else (budget or Budget())
        rng = random.Random(seed)
        if self.enumerable:
            pool = [a for a in self.enumerate() if budget.admits(cost(a))]
            return rng.sample(pool, min(n, len(pool)))
        found: dict[tuple, dict] = {}
        attempts, limit = 0, max(200_000, 50 * n)
        while len(found) < n and attempts < limit:
            attempts += 1
            values = self.random_values(rng)
            ident = tuple(values.values())  # distinct values of a distinct structure: distinct networks
            if ident not in found and self.admits(values, budget):
                found[ident] = values
        return [self.arch_from(v) for v in found.values()]

    # ---- Optuna --------------------------------------------------------------------------------
    def suggest(self, trial: Any) -> Arch:
        """Ask an Optuna trial for one value per open dim (bottleneck dims only for bottleneck blocks)."""
        values: dict[str, Any] = {}
        for name in STRUCTURE:
            if self.dims[name].open:
                values[name] = _suggest(trial, self.dims[name])
        for name, d in self.dims.items():
            if name in STRUCTURE or not d.open:
                continue
            if (
                name in ("cardinality", "bottleneck_width", "bottleneck_ratio")
                and values.get("block", self.dims["block"].values[0]) == "basic"
            ):
                continue
            values[name] = _suggest(trial, d)
        return self.arch_from(values)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "description": self.spec.description,
            "source": self.spec.source,
            "resolution": self.spec.resolution,
            "in_channels": self.spec.in_channels,
            "classes": self.spec.classes,
            **({"task": "vae", "latent": self.spec.latent or VAE_LATENT} if self.spec.task == "vae" else {}),
            "strides": list(self.spec.strides),
            "size": self.size(),
            "dims": {
                k: list(d.values)
                if len(d.values) <= 12
                else [d.values[0], "...", d.values[-1], f"({len(d.values)} values)"]
                for k, d in self.dims.items()
            },
        }


def _kind(v: dict[str, Any]) -> Kind:
    return Kind(v["block"], v["stride_on"], v["unit_order"], v["shortcut"], v["modulation"])


def _suggest(trial: Any, d: Dim) -> Any:
    """Numeric ranges stay numeric for the sampler; a log scale on a stepped grid, which Optuna cannot
    express, falls back to the grid's values as choices so every suggestion is a candidate of the space."""
    if d.kind == "range" and not (d.log and d.step != 1):
        if isinstance(d.values[0], int):
            return trial.suggest_int(d.name, d.values[0], d.values[-1], step=d.step, log=d.log)
        return trial.suggest_float(d.name, d.values[0], d.values[-1], step=None if d.log else d.step, log=d.log)
    return trial.suggest_categorical(d.name, list(d.values))


def load_space(name_or_path: str | Path) -> DesignSpace:
    """A built-in template by name (`resnext`) or a YAML file by path."""
    return DesignSpace(load_spec(name_or_path))
