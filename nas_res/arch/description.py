"""`Arch`: the one description of a residual network.

Everything else (cost, build, search, storage) reads an `Arch`; nothing else describes a network.
An `Arch` is canonical on construction: fields that cannot change the built network are
normalised, so two configurations that build the same network compare equal and share a `key`.

Over 300 lines: `Arch`, `Stage` and `Kind` with their canonical forms and checks: the rules of each field stay
beside the field.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from ..errors import ResnasError
from ..yamlfile import read_yaml

# Block types and stems with their weighted layers, as the papers' "ResNet-N" counts them: the convs of
# each block along the main path, the stem's convs, and the fc.
CONVS_PER_BLOCK = {"basic": 2, "bottleneck": 3}
STEM_CONVS = {"imagenet": 1, "cifar": 1, "deep": 3}
BLOCKS = tuple(CONVS_PER_BLOCK)
STEMS = tuple(STEM_CONVS)
STEM_ALIASES = {"mnist": "cifar", "small": "cifar", "resnet-c": "deep"}
SHORTCUTS = ("A", "B", "C", "D", "none")
UNIT_ORDERS = ("post", "bn_after_add", "relu_before_add", "relu_preact", "preact")
STRIDE_ON = ("3x3", "1x1")
TASKS = ("classify", "vae")
LIKELIHOODS = ("bernoulli", "gaussian")  # of a VAE's pixels: soft Bernoulli on intensities, 8-bit Gaussian
VAE_LATENT = 32  # a VAE's latent dimension when none is given
MODULATIONS = ("none", "scale", "gate", "shortcut_gate", "conv", "dropout")
# Default strength of each modulation: lambda for scale, p for dropout, initial gate bias for gates.
MODULATION_DEFAULT = {"none": 0.0, "scale": 0.5, "gate": 0.0, "shortcut_gate": 0.0, "conv": 0.0, "dropout": 0.5}

# Unit orders whose residual branch ends in a BatchNorm (what zero-init of the last BN needs).
ENDS_IN_BN = ("post", "relu_before_add", "relu_preact")
# Pre-activation orders: projection shortcuts carry no BN (the next unit normalises), as in the paper's code.
PREACT_ORDERS = ("relu_preact", "preact")


def layers_outside_blocks(stem: str) -> int:
    """The stem's convs and the fc: what a total depth holds besides its blocks."""
    return STEM_CONVS[stem] + 1


def blocks_for_total(total: int, block: str, stem: str, split: tuple) -> tuple | None:
    """Blocks per stage for a total layer count (the papers' 'ResNet-N'), or None if it does not split."""
    body = total - layers_outside_blocks(stem)
    unit = CONVS_PER_BLOCK[block] * sum(split)
    if body <= 0 or body % unit:
        return None
    return tuple(body // unit * s for s in split)


def inner_shape(block: str, width: int, mid: int, groups: int) -> tuple[int, int]:
    """A stage's (inner width, cardinality) as built: a basic block's two convs keep its width, ungrouped."""
    return (width, 1) if block == "basic" else (mid, groups)


def _choice(value: Any, allowed: tuple[str, ...], field_name: str, aliases: dict | None = None) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ResnasError(f"must be one of {', '.join(allowed)}; got {value!r}", field=field_name)
    text = str(value)
    text = (aliases or {}).get(text, text)
    if text not in allowed:
        raise ResnasError(f"must be one of {', '.join(allowed)}; got {value!r}", field=field_name)
    return text


def _positive_int(value: Any) -> bool:
    return type(value) is int and value >= 1  # not isinstance: True is not a width


def _stage_error(i: int, name: str, message: str) -> ResnasError:
    return ResnasError(message, field=f"stages[{i}]{'.' if name else ''}{name}")


def _int(value: Any, field_name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ResnasError(f"must be an integer >= {low}; got {value!r}", field=field_name)
    return value


class Kind(NamedTuple):
    """The fields that shape every unit of a network (hashable: unit costs are cached on it)."""

    block: str
    stride_on: str
    unit_order: str
    shortcut: str
    modulation: str


def requested_task(
    own: str, task: str | None, latent: int | None, likelihood: str | None, what: str = "the arch is a classifier"
) -> str:
    """The task a command line's --task, --latent and --likelihood ask of an arch or a space whose own task
    is `own` (`what` says so when it classifies); refused, naming the option, when they disagree. A latent
    or likelihood alone changes a VAE, but never makes a classifier one: a stray flag must not silently
    train another kind of net."""
    given = " and ".join(f"--{n}" for n, v in (("latent", latent), ("likelihood", likelihood)) if v is not None)
    if task is None and own == "classify" and given:
        raise ResnasError(
            f"only a VAE has {'them' if ' and ' in given else 'one'}, and {what}: add --task vae "
            f"to make it a VAE, or drop {given}",
            field=given.split()[0],
        )
    task = task or own
    if task not in TASKS:
        raise ResnasError(f"must be {' or '.join(TASKS)}; got {task!r}", field="--task")
    if task == "classify" and (latent is not None or likelihood is not None):
        raise ResnasError("--latent and --likelihood are a VAE's: drop them or pass --task vae", field="--task")
    return task


def canonical_kind(kind: Kind) -> Kind:
    """One spelling of units that build the same network: a basic block's stride is on its first 3x3
    either way, and shortcut C already projects every unit, leaving a conv modulation nothing to replace."""
    if kind.block == "basic":
        kind = kind._replace(stride_on="3x3")
    if kind.shortcut == "C" and kind.modulation == "conv":
        kind = kind._replace(modulation="none")
    return kind


@dataclass(frozen=True)
class Stage:
    """`depth` blocks producing `width` channels; the first has `stride`. `mid` = C x d inner width."""

    depth: int
    width: int
    stride: int = 1
    mid: int = 0
    groups: int = 1

    def to_dict(self) -> dict:
        return {"depth": self.depth, "width": self.width, "stride": self.stride, "mid": self.mid, "groups": self.groups}


@dataclass(frozen=True)
class Arch:
    """A residual network, canonical. See `to_dict` for the serialised form."""

    stages: tuple[Stage, ...]
    block: str = "bottleneck"
    stem: str = "imagenet"
    stem_width: int = 64
    shortcut: str = "B"
    unit_order: str = "post"
    stride_on: str = "3x3"
    modulation: str = "none"
    modulation_value: float | None = None  # None: the modulation's default (MODULATION_DEFAULT)
    zero_init_last_bn: bool = False
    classes: int = 1000
    in_channels: int = 3
    resolution: int = 224
    task: str = "classify"  # classify: the stack ends in a classifier; vae: the encoder of a VAE (see nas_res.arch.vae)
    latent: int | None = None  # a VAE's latent dimension (default VAE_LATENT); none for a classifier
    likelihood: str | None = None  # a VAE's pixel likelihood (default bernoulli); none for a classifier
    _key: str = field(default="", init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        put = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen dataclass)
        block = _choice(self.block, BLOCKS, "block")
        stem = _choice(self.stem, STEMS, "stem", STEM_ALIASES)
        shortcut = _choice(self.shortcut, SHORTCUTS, "shortcut")
        unit_order = _choice(self.unit_order, UNIT_ORDERS, "unit_order")
        stride_on = _choice(self.stride_on, STRIDE_ON, "stride_on")
        modulation = _choice(self.modulation, MODULATIONS, "modulation")
        put("stem", stem)
        self._canonical_task(put)
        for name, value in canonical_kind(Kind(block, stride_on, unit_order, shortcut, modulation))._asdict().items():
            put(name, value)
        for name in ("stem_width", "classes", "in_channels", "resolution"):
            _int(getattr(self, name), name)
        if not isinstance(self.zero_init_last_bn, bool):
            raise ResnasError(f"must be true or false; got {self.zero_init_last_bn!r}", field="zero_init_last_bn")
        if not isinstance(self.stages, (list, tuple)) or not self.stages:
            raise ResnasError("must be a non-empty list of stages", field="stages")
        stages = tuple(self._canonical_stage(i, s) for i, s in enumerate(self.stages))
        put("stages", stages)

        value = self.modulation_value
        if value is None or value == "":
            value = MODULATION_DEFAULT[self.modulation]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ResnasError(f"must be a number; got {value!r}", field="modulation_value")
        value = float(value)
        if self.modulation in ("none", "conv"):
            value = 0.0
        if self.modulation in ("scale", "dropout") and not 0.0 <= value <= 1.0:
            raise ResnasError(f"must be in [0, 1] for {self.modulation}; got {value}", field="modulation_value")
        if self.shortcut == "none" and self.modulation != "none":
            raise ResnasError(
                "a plain network (shortcut: none) has no shortcut to modulate; use modulation: none", field="modulation"
            )
        put("modulation_value", value)
        if self.unit_order not in ENDS_IN_BN:
            put("zero_init_last_bn", False)  # the branch ends in a conv: there is no last BN to zero
        if self.shortcut == "none":
            put("zero_init_last_bn", False)  # without a shortcut a zeroed branch would zero the whole unit

        changes = [(cin, s.width, s.stride) for cin, s in self._first_blocks() if cin != s.width or s.stride != 1]
        if self.shortcut == "A":
            for cin, cout, _ in changes:
                if cout < cin:
                    raise ResnasError(
                        f"option A pads the identity with zeros, so widths may not shrink "
                        f"({cin} -> {cout}); use shortcut B, C or D",
                        field="shortcut",
                    )
        if not changes and self.shortcut in ("A", "D"):
            put("shortcut", "B")  # no unit changes shape: A, B and D are all the identity

    def _canonical_task(self, put) -> None:
        """A classifier has no latent or likelihood; a VAE predicts no classes (its `classes` is 1) and
        gets the default latent and likelihood when none is given."""
        task = _choice(self.task, TASKS, "task")
        put("task", task)
        if task == "classify":
            for name in ("latent", "likelihood"):
                if getattr(self, name) is not None:
                    raise ResnasError(f"only a VAE has a {name} (task: vae); got {getattr(self, name)!r}", field=name)
            return
        put("latent", _int(VAE_LATENT if self.latent is None else self.latent, "latent"))
        put("likelihood", _choice(self.likelihood or "bernoulli", LIKELIHOODS, "likelihood"))
        put("classes", 1)

    def _canonical_stage(self, i: int, stage: Any) -> Stage:
        bad = functools.partial(_stage_error, i)
        if isinstance(stage, dict):
            unknown = set(stage) - {"depth", "width", "stride", "mid", "groups"}
            if unknown:
                raise bad("", f"unknown key(s) {sorted(unknown, key=str)}; allowed: depth, width, stride, mid, groups")
            stage = Stage(**stage)
        if not isinstance(stage, Stage):
            raise bad("", f"must be a mapping with depth, width, stride, mid, groups; got {stage!r}")
        for name in ("depth", "width") if self.block == "basic" else ("depth", "width", "mid", "groups"):
            value = getattr(stage, name)
            if not _positive_int(value):
                raise bad(name, f"must be an integer >= 1; got {value!r}")
        if stage.stride not in (1, 2) or isinstance(stage.stride, bool):
            raise bad("stride", f"must be 1 or 2; got {stage.stride!r}")
        if self.block == "basic":
            if stage.groups not in (1, None):
                raise bad("groups", f"a basic block has no grouped conv: cardinality must be 1; got {stage.groups!r}")
            shape = inner_shape(self.block, stage.width, stage.mid, stage.groups)
            return (
                stage if (stage.mid, stage.groups) == shape else Stage(stage.depth, stage.width, stage.stride, *shape)
            )
        if stage.mid % stage.groups:
            raise bad("mid", f"inner width {stage.mid} is not divisible by cardinality {stage.groups}")
        return stage

    def _first_blocks(self):
        """(input width, stage) for each stage's first block: where shapes may change."""
        cin = self.stem_width
        for s in self.stages:
            yield cin, s
            cin = s.width

    @property
    def kind(self) -> Kind:
        return Kind(self.block, self.stride_on, self.unit_order, self.shortcut, self.modulation)

    # ---- identity -------------------------------------------------------------------------------
    @property
    def key(self) -> str:
        """Stable 16-hex-digit identity: equal for configurations that build the same network."""
        if not self._key:
            text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
            object.__setattr__(self, "_key", hashlib.sha256(text.encode()).hexdigest()[:16])
        return self._key

    @property
    def depth(self) -> int:
        """Weighted layers as the papers count them: convs along the main path, plus the stem's and fc (a
        VAE's: its encoder's, the fc being the map to the latent; the decoder mirrors them)."""
        return CONVS_PER_BLOCK[self.block] * sum(s.depth for s in self.stages) + layers_outside_blocks(self.stem)

    @property
    def cxd(self) -> str:
        """ResNeXt's C x d label of the first stage (cardinality x bottleneck width, "32x4d"); "-" for
        basic blocks, which have neither."""
        if self.block != "bottleneck":
            return "-"
        first = self.stages[0]
        return f"{first.groups}x{first.mid // first.groups}d"

    def summary(self) -> str:
        depths = "-".join(str(s.depth) for s in self.stages)
        widths = "-".join(str(s.width) for s in self.stages)
        text = f"{self.block} d{depths} w{widths}"
        if self.block == "bottleneck":
            text += f" {self.cxd}"
        text += f" sc:{self.shortcut} {self.unit_order}"
        if self.modulation != "none":
            text += f" mod:{self.modulation}"
        if self.task == "vae":
            text += f" vae z{self.latent} {self.likelihood}"
        return text

    # ---- serialisation --------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The fields; a VAE's add task, latent and likelihood and drop classes, so a classifier's dict
        (and key) is what it was before VAEs existed."""
        d = {
            "block": self.block,
            "stem": self.stem,
            "stem_width": self.stem_width,
            "stages": [s.to_dict() for s in self.stages],
            "shortcut": self.shortcut,
            "unit_order": self.unit_order,
            "stride_on": self.stride_on,
            "modulation": self.modulation,
            "modulation_value": self.modulation_value,
            "zero_init_last_bn": self.zero_init_last_bn,
            "classes": self.classes,
            "in_channels": self.in_channels,
            "resolution": self.resolution,
        }
        if self.task == "vae":
            del d["classes"]
            d.update(task=self.task, latent=self.latent, likelihood=self.likelihood)
        return d

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> Arch:
        """Build from a mapping (e.g. parsed YAML); any mistake names `where` and the field."""
        if not isinstance(data, dict):
            raise ResnasError(f"an arch must be a mapping of fields; got {type(data).__name__}", where=where)
        allowed = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = set(data) - allowed
        if unknown:
            raise ResnasError(
                f"unknown key(s) {sorted(unknown, key=str)}; allowed: {', '.join(sorted(allowed))}", where=where
            )
        if "stages" not in data:
            raise ResnasError("missing required key 'stages'", where=where)
        try:
            return cls(**data)
        except ResnasError as err:
            raise ResnasError(err.bare, where=where, field=err.field) from None

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def replace(self, **changes: Any) -> Arch:
        return dataclasses.replace(self, **changes)


def load_arch(path: str | Path) -> Arch:
    """Read an arch file (YAML or JSON). An exported file may wrap the arch under an `arch:` key."""
    data = read_yaml(path, "arch file")
    if isinstance(data, dict) and "arch" in data and "stages" not in data:
        data = data["arch"]
    return Arch.from_dict(data, where=str(path))
