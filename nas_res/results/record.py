"""Typed records of resnas's rows: one run with its architecture, and a study's rows as a copy reads them."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from ..training.status import RunStatus

BITMAPS = ("val_correct", "test_correct")


@dataclass(frozen=True)
class Run:
    """One row of resnas_runs, decoded (recipe and history parsed, status a `RunStatus`), with its
    architecture's description and cost."""

    id: int
    study: str
    trial: int
    arch_key: str
    recipe_key: str
    recipe: dict
    data_key: str
    status: RunStatus
    reason: str
    history: list
    epochs: int
    best_val_acc: float | None
    test_acc: float | None
    checkpoint: str | None
    device: str | None
    wall_seconds: float | None
    train_seconds: float | None
    version: str
    reused_from: int | None  # the run whose result this one took; 0: one in another storage
    created: float
    arch: dict  # the architecture it trains, and its cost
    summary: str
    flops: int
    params: int
    acts: int
    # Which validation images its best epoch got right, and which test images it got right where it was
    # tested (paired.py's bitmaps); None for a VAE and for runs stored before resnas kept them.
    val_correct: bytes | None = field(default=None, repr=False)
    test_correct: bytes | None = field(default=None, repr=False)

    @property
    def task(self) -> str:
        """classify, or vae (a VAE's arch says so)."""
        return self.arch.get("task", "classify")

    @property
    def best_val_loss(self) -> float | None:
        """The lowest validation loss of its epochs (a VAE's negative ELBO per image, nats)."""
        losses = [h["val_loss"] for h in self.history if h.get("val_loss") is not None]
        return min(losses) if losses else None

    @property
    def best_epoch(self) -> dict | None:
        """The epoch it is ranked by: a classifier's of highest validation accuracy (the first such), a VAE's of
        lowest validation loss."""
        key = "val_loss" if self.task == "vae" else "val_acc"
        rows = [h for h in self.history if h.get(key) is not None]
        if not rows:
            return None
        return min(rows, key=lambda h: h[key]) if self.task == "vae" else max(rows, key=lambda h: h[key])

    @property
    def score(self) -> float | None:
        """What it is ranked by: a classifier's best validation accuracy, a VAE's lowest validation loss."""
        return self.best_val_loss if self.task == "vae" else self.best_val_acc

    @property
    def reused(self) -> bool:
        """Took another run's result instead of training."""
        return self.reused_from is not None

    def to_dict(self) -> dict:
        """Every field but the bitmaps (bytes, not JSON), the status as its text: what JSON output and
        comparisons use."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in BITMAPS}
        values["status"] = self.status.value
        return values


@dataclass(frozen=True)
class StudyRows:
    """A study's rows exactly as stored (JSON columns as text), read together: what a copy writes elsewhere."""

    study: dict  # its resnas_studies row
    runs: list[dict]  # its resnas_runs rows, by id
    archs: list[dict]  # the resnas_archs rows those runs train
    outside: dict[int, dict] = field(default_factory=dict)  # id -> study, trial, arch_key of reused runs elsewhere
