"""What a running search looks like from one host: counts, the best so far, each worker's trial, and
what its checkpoints take on disk.

The coordinator updates it after every event and hands it to `on_update` (the CLI's live view);
`run` returns it when the search ends. The workers are the pool's own objects, not a copy.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

COUNT_KEYS = (
    "done",
    "pruned",
    "failed",
    "reused",
    "over_budget",
    "over_latency",
    "no_candidate",
    "repeats",
    "retried",
    "lost",
)


@dataclass
class Best:
    trial: int
    value: float
    flops: int
    params: int
    summary: str


@dataclass
class Fastest:
    """The fastest net a latency limit judged on this host: how many ms, measured or predicted."""

    ms: float
    how: str
    summary: str


@dataclass
class Disk:
    """This host's checkpoint folder: the policy holding it, the trials with files there, their bytes."""

    policy: str = ""
    folder: str = ""
    trials: int = 0
    bytes: int = 0


@dataclass
class SearchState:
    """`counts` are this coordinator's own; `counted` and `running_all` are the study's, over every host."""

    study: str
    target: int
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_KEYS, 0))
    counted: int = 0  # the study's finished trials that count toward the target
    running_all: int = 0  # the study's trials training now, on every host
    best: Best | None = None
    workers: list[Any] = field(default_factory=list)  # the pool's `Worker`s
    started: float = field(default_factory=time.time)
    trial_seconds: list[float] = field(default_factory=list)
    overheads: list[float] = field(default_factory=list)  # per trained trial: wall seconds outside train()
    interrupted: bool = False
    terminated: bool = False  # the interrupt was SIGTERM (the command exits 143), not Ctrl-C (130)
    lower_is_better: bool = False  # the best is the lowest value (a VAE's validation negative ELBO)
    stopped_by: str = ""
    db_errors: int = 0  # database calls that failed and were retried (a restart, say)
    disk: Disk = field(default_factory=Disk)
    fastest: Fastest | None = None  # under --max-latency: what to raise the limit to, when nothing fits it

    @property
    def running(self) -> int:
        return sum(1 for w in self.workers if w.job is not None)

    def eta(self) -> float | None:
        if not self.trial_seconds:
            return None
        left = max(0, self.target - self.counted - self.running_all)
        per = sum(self.trial_seconds) / len(self.trial_seconds)
        return per * (left + 0.5 * self.running) / max(1, len(self.workers))

    def offer_best(self, number: int, value: float | None, arch: Any, cost: Any) -> None:
        """Keep the best trial so far: the highest value, or the lowest where `lower_is_better` (a VAE's loss)."""
        better = self.best is None or (
            value is not None and (value < self.best.value if self.lower_is_better else value > self.best.value)
        )
        if value is not None and better:
            self.best = Best(number, value, cost.flops, cost.params, arch.summary())

    def to_dict(self) -> dict:
        """For --json: the counts, the study's totals, the best trial, the checkpoints kept, the threads."""
        return {
            "study": self.study,
            "counts": self.counts,
            "counted": self.counted,
            "interrupted": self.interrupted,
            "stopped_by": self.stopped_by,
            "best": dataclasses.asdict(self.best) if self.best else None,
            "db_errors": self.db_errors,
            "checkpoints": dataclasses.asdict(self.disk),
            "fastest_judged": dataclasses.asdict(self.fastest) if self.fastest else None,
            "threads": [w.threads for w in self.workers],  # per worker, as its last trial reported
        }
