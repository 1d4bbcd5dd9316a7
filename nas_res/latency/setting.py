"""How a latency is measured (`Setting`: device, batch, threads, precision, mode) and the words for it.

Reading a setting or a time (`2.5ms`) imports nothing heavy, so a mistyped option is refused before torch
loads. A setting is written the way it is read: `cpu,batch=1,threads=2,precision=fp32,mode=infer`.
"""

from __future__ import annotations

import platform
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import ResnasError
from ..training.threads import usable_cores

PRECISIONS = ("fp32", "bf16", "fp16")
MODES = ("infer", "train")
FORMAT = "DEVICE[,batch=N][,threads=N][,precision=fp32|bf16|fp16][,mode=infer|train]"
_DEVICE = re.compile(r"cpu|cuda(:\d+)?")
_TIME = re.compile(r"(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)\s*(ms|us|µs|s)?")
_MS = {"ms": 1.0, "us": 1e-3, "µs": 1e-3, "s": 1e3}


@dataclass(frozen=True)
class Setting:
    """What a latency is measured under. `threads` None: every core this process may use (CPU), one (GPU:
    the host threads only launch kernels)."""

    device: str = "cpu"
    batch: int = 1
    threads: int | None = None
    precision: str = "fp32"
    mode: str = "infer"

    def __post_init__(self) -> None:
        if not isinstance(self.device, str) or not _DEVICE.fullmatch(self.device):
            raise ResnasError(f"must be cpu, cuda or cuda:N; got {self.device!r}", field="--device")
        for name, low in (("batch", 1), ("threads", 1)):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise ResnasError(f"must be an integer >= {low}; got {value!r}", field=f"--{name}")
        if self.precision not in PRECISIONS:
            raise ResnasError(f"must be one of {', '.join(PRECISIONS)}; got {self.precision!r}", field="--precision")
        if self.precision == "fp16" and self.device == "cpu":
            raise ResnasError("fp16 is a GPU precision; on a CPU use fp32 or bf16", field="--precision")
        if self.mode not in MODES:
            raise ResnasError(f"must be one of {', '.join(MODES)}; got {self.mode!r}", field="--mode")
        if self.mode == "train" and self.batch < 2:
            raise ResnasError(
                "training at batch 1 leaves BatchNorm one value per channel on small maps; use --batch 2 or more",
                field="--batch",
            )
        if self.threads is None:
            object.__setattr__(self, "threads", usable_cores() if self.device == "cpu" else 1)

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def describe(self) -> str:
        return f"{self.device},batch={self.batch},threads={self.threads},precision={self.precision},mode={self.mode}"

    def to_dict(self) -> dict:
        return asdict(self)

    def key(self, device_name: str, torch_version: str) -> dict:
        """The cache key of timings under this setting on a device called `device_name`: cuda:0 and cuda:1
        of one model share timings, two models never do."""
        return {
            "device": device_name,
            "batch": self.batch,
            "precision": self.precision,
            "threads": self.threads,
            "mode": self.mode,
            "torch": torch_version,
        }

    @classmethod
    def parse(cls, text: str, field: str = "--latency-on") -> Setting:
        """`cuda:0,batch=64,precision=bf16` (the device first, then any of the other fields)."""
        device, *rest = [p.strip() for p in str(text).split(",")]
        fields: dict = {"device": device}
        for part in rest:
            name, eq, value = part.partition("=")
            if not eq or name not in ("batch", "threads", "precision", "mode") or name in fields:
                raise ResnasError(f"cannot read {part!r} in {text!r}; write {FORMAT}", field=field)
            fields[name] = int(value) if name in ("batch", "threads") and value.isdigit() else value
        try:
            return cls(**fields)
        except ResnasError as e:
            raise ResnasError(f"{e.bare} (in {text!r}; write {FORMAT})", field=field) from None

    @classmethod
    def from_dict(cls, data: dict) -> Setting:
        return cls(**{k: data[k] for k in ("device", "batch", "threads", "precision", "mode")})


def parse_ms(text: str | float, field: str = "--max-latency") -> float:
    """'2.5ms', '2500us', '0.0025s' or a bare number (milliseconds) -> milliseconds, positive."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        m = _TIME.fullmatch(str(text).strip())
        if not m:
            raise ResnasError(f"cannot read {text!r} as a time; write e.g. 2.5ms, 800us or 0.1s", field=field)
        value = float(m.group(1)) * _MS[m.group(2) or "ms"]
    if not 0 < value < 1e9:
        raise ResnasError(f"must be a positive time; got {text!r}", field=field)
    return value


def cpu_name() -> str:
    """The CPU's model name (what a timing on `cpu` is keyed by)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown cpu"
