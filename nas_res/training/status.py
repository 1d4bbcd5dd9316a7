"""How a training run ended, and what each ending means for a study: one definition of every rule.

A run's status is stored as its text (`"ok"`, `"pruned"`, ...). `RunStatus` is a `str`, so it compares
equal to that text and is written to a database or JSON as it; its properties say which statuses
count toward a study's trial total, which are ranked on a leaderboard, which can be reused by
another study, and which are final.
"""

from __future__ import annotations

from enum import Enum


class RunStatus(str, Enum):
    """The outcome of one training run (the trainer's five, and the search's own for trials cut short)."""

    RUNNING = "running"  # claimed by a worker, not finished yet
    OK = "ok"  # trained every epoch
    STOPPED_EARLY = "stopped_early"  # early stopping on validation loss: a finished training
    PRUNED = "pruned"  # stopped by the search's pruner
    DIVERGED = "diverged"  # the loss became NaN or infinite
    OUT_OF_MEMORY = "out_of_memory"
    ERROR = "error"  # the candidate raised
    TIMEOUT = "timeout"  # ran past the trial timeout
    INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM
    CRASHED = "crashed"  # its worker process died
    LOST = "lost"  # its coordinator or host went quiet

    def __str__(self) -> str:
        return self.value

    @property
    def counts(self) -> bool:
        """Holds a slot of the study's trial total. A run cut short from outside (Ctrl-C, a killed
        process, a lost host) does not: its parameters are tried again."""
        return self not in _CUT_SHORT

    @property
    def ranks(self) -> bool:
        """A finished training with a validation accuracy worth ranking."""
        return self in _FINISHED_TRAINING

    @property
    def reusable(self) -> bool:
        """Another study may take this result instead of training the same arch with the same recipe."""
        return self in _FINISHED_TRAINING

    @property
    def terminal(self) -> bool:
        """The run will not change again."""
        return self is not RunStatus.RUNNING

    @property
    def failed(self) -> bool:
        """Ended without a result and not for a reason from outside: diverged, out of memory, error, timeout."""
        return self.terminal and self.counts and not self.ranks and self is not RunStatus.PRUNED

    @classmethod
    def where(cls, prop: str) -> tuple[RunStatus, ...]:
        """Every status with a property, e.g. `RunStatus.where("reusable")`, for database filters."""
        return tuple(s for s in cls if getattr(s, prop))


_FINISHED_TRAINING = frozenset({RunStatus.OK, RunStatus.STOPPED_EARLY})
_CUT_SHORT = frozenset({RunStatus.INTERRUPTED, RunStatus.CRASHED, RunStatus.LOST})
TRAINING_STATUSES = (
    RunStatus.OK,
    RunStatus.DIVERGED,
    RunStatus.OUT_OF_MEMORY,
    RunStatus.PRUNED,
    RunStatus.STOPPED_EARLY,
)  # what the trainer itself can return
