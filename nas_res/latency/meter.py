"""`Meter`: the latencies of nets under one setting on this host's device, each measured at most once.

A net is timed whole in fresh processes of its own, or predicted from the lookup table: the sum over its
distinct parts (parts.py) of their timings times how often it runs each, the parts timed once on this
device and kept like nets. Both go through the storage's cache (`results.latencies`), keyed by the
device's name, so a later search, a report or another host with the same device reads them back.
`LatencyLimit` is the search's `--max-latency`: the table screens a candidate, a measurement decides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..arch.description import Arch
from ..errors import ResnasError
from ..results.latencies import Measured, Timing, cached, record
from ..results.store import Store
from .parts import CALL, Part, check_classifier, parts_of
from .setting import Setting
from .timing import PROCESSES, REPEATS, WARMUP, check_repeats, device_name, measure, torch_version

CHUNK = 64  # parts timed per fresh process
SCREEN = 1.5  # a candidate the table predicts above SCREEN x the limit is refused unmeasured (see docs)


class Meter:
    """Latencies under `setting` on this host, kept in `store`. `on_measure(label)` hears of each net or
    batch of parts before it is timed (progress)."""

    def __init__(
        self,
        setting: Setting,
        store: Store,
        repeats: int = REPEATS,
        warmup: int = WARMUP,
        on_measure: Callable[[str], None] | None = None,
        processes: int = PROCESSES,
    ):
        check_repeats(repeats, processes)
        self.setting, self.store, self.repeats, self.warmup = setting, store, repeats, warmup
        self.processes = processes
        self.device_name = device_name(setting.device)
        self.key = setting.key(self.device_name, torch_version())
        self.on_measure = on_measure or (lambda label: None)
        self.measured = 0  # things this meter timed (not read back)

    def nets(self, archs: Iterable[Arch]) -> dict[str, Timing]:
        """arch key -> its whole-net timing: read back where cached, else timed (each net in fresh processes of
        its own) and kept at once, so an interrupted run loses nothing it finished."""
        by_key = {a.key: a for a in archs}
        for a in by_key.values():
            check_classifier(a)
        found = cached(self.store, by_key, self.key)
        for key, arch in by_key.items():
            if key in found:
                continue
            self.on_measure(f"{arch.summary()} (key {key})")
            job = ("net", {"arch": arch.to_dict()}, _input(arch))
            (timing,) = measure([job], self.setting, self.repeats, self.warmup, self.processes)
            record(self.store, [Measured(key, "net", arch.summary(), timing)], self.key)
            self.measured += 1
            found[key] = timing
        return found

    def known(self, arch: Arch) -> Timing | None:
        """The net's whole-net timing if it was measured under this setting on this device; never times it."""
        return cached(self.store, {arch.key: arch}, self.key).get(arch.key)

    def parts(self, archs: Iterable[Arch]) -> dict[str, Timing]:
        """part key -> its timing, for every part of `archs`; the missing ones timed, CHUNK to a process."""
        wanted: dict[str, Part] = {CALL.key: CALL}
        for a in archs:
            for part, _ in parts_of(a):
                wanted.setdefault(part.key, part)
        found = cached(self.store, wanted, self.key)
        missing = [p for k, p in wanted.items() if k not in found]
        for at in range(0, len(missing), CHUNK):
            chunk = missing[at : at + CHUNK]
            self.on_measure(f"{len(chunk)} part(s) for the lookup table")
            jobs = [(p.what, p.build, p.shape) for p in chunk]
            timings = measure(jobs, self.setting, self.repeats, self.warmup, self.processes)
            record(self.store, [Measured(p.key, p.what, p.label, t) for p, t in zip(chunk, timings)], self.key)
            self.measured += len(chunk)
            found.update({p.key: t for p, t in zip(chunk, timings)})
        return found

    def predict(self, archs: Iterable[Arch]) -> dict[str, float]:
        """arch key -> the lookup table's milliseconds: the sum of its parts' medians, each as often as it runs,
        each less the harness's cost of a call, which the net pays once."""
        archs = list(archs)
        table = self.parts(archs)
        call = table[CALL.key].median_ms
        return {a.key: call + sum(max(0.0, table[p.key].median_ms - call) * n for p, n in parts_of(a)) for a in archs}


@dataclass(frozen=True)
class Verdict:
    """A candidate against the limit: its excess (> 0 over, the constraint a sampler learns from), the
    milliseconds it was judged by and how they were had (measured, or predicted by the table)."""

    excess: float
    ms: float
    how: str

    @property
    def over(self) -> bool:
        return self.excess > 0


class LatencyLimit:
    """`--max-latency`: a candidate the lookup table puts far over (> SCREEN x the limit) is refused
    without a measurement; every other is measured whole, and that measurement decides. With no limit
    (`--objective accuracy+latency` alone) every candidate is measured."""

    def __init__(self, meter: Meter, max_ms: float | None):
        if max_ms is not None and max_ms <= 0:
            raise ResnasError(f"must be a positive time; got {max_ms}", field="--max-latency")
        self.meter, self.max_ms = meter, max_ms

    def judge(self, arch: Arch) -> Verdict:
        if self.max_ms is None:
            return Verdict(-1.0, self.ms(arch), "measured")
        known = self.meter.known(arch)  # a measurement, where there is one, outranks the table
        if known is None:
            predicted = self.meter.predict([arch])[arch.key]
            if predicted > SCREEN * self.max_ms:
                return Verdict(predicted / self.max_ms - 1, predicted, "predicted")
        ms = known.median_ms if known is not None else self.ms(arch)
        return Verdict(ms / self.max_ms - 1, ms, "measured")

    def ms(self, arch: Arch) -> float:
        """The net's measured median (read back from the storage once it is measured)."""
        return self.meter.nets([arch])[arch.key].median_ms


def _input(arch: Arch) -> tuple[int, int, int]:
    return (arch.in_channels, arch.resolution, arch.resolution)
