"""What a search keeps of its trials' checkpoints, and the deleting that holds it to that.

A trial writes checkpoint.pt (its weights and the optimizer state resuming needs) after every epoch:
about 100 MB a trial at 4 GFLOPs, pruned trials included, so a search filled gigabytes in minutes.
Once a trial has ended (done, pruned, failed) its optimizer state is of no use: its worker keeps only
the final weights of a ranked trial (weights.pt, what `resnas evaluate` and `resnas export --weights`
read), and the coordinator deletes the weights the policy no longer wants as the ranking changes. A
trial cut short from outside (Ctrl-C, a killed worker) keeps its checkpoint.pt: its retry continues
from it (`take_over`).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from ..errors import ResnasError
from ..files import check_writable, write_text
from ..results.report import pareto, rank
from ..results.storage import DEFAULT_STORAGE, sqlite_file
from ..results.store import Store
from ..training.checkpoint import FILE_NAME, WEIGHTS_NAME, keep_weights
from ..training.status import RunStatus
from .settings import BEST, DEFAULT_KEEP, KEEP_HELP  # noqa: F401 (still read from here)
from .state import Disk


@dataclass(frozen=True)
class KeepPolicy:
    """`best` (the top `count`), `ranked`, `all` or `none`."""

    mode: str = "best"
    count: int = BEST

    @classmethod
    def parse(cls, text: Any) -> KeepPolicy:
        if isinstance(text, KeepPolicy):
            return text
        found = re.fullmatch(r"\s*(best)(?::\s*(\d+))?\s*|\s*(ranked|all|none)\s*", str(text).lower())
        if not found or (found.group(2) is not None and int(found.group(2)) < 1):
            raise ResnasError(f"must be best:K (K >= 1), ranked, all or none; got {text!r}", field="keep_checkpoints")
        if found.group(3):
            return cls(found.group(3), 0)
        return cls("best", int(found.group(2) or BEST))

    def __str__(self) -> str:
        return f"best:{self.count}" if self.mode == "best" else self.mode


STUDY_MARKER = ".resnas-study"  # in a checkpoints folder: the study whose trials it holds


def checkpoint_root(study: str, given: str | None, storage: str | None) -> Path:
    """Where a study's trials write their checkpoints: `given` (--checkpoints), else `checkpoints/STUDY`
    beside a SQLite file, else studies/checkpoints/STUDY. Checked writable before any training, and
    marked as the study's: trial folders are named by trial number, so two studies sharing one folder
    would overwrite (and delete) each other's checkpoints."""
    url = make_url(storage or DEFAULT_STORAGE)
    base = Path(str(url.database)).expanduser().parent if sqlite_file(url) else Path("studies")
    root = Path(given) if given else base / "checkpoints" / study
    check_writable(root, field="--checkpoints", folder=True)
    marker = root / STUDY_MARKER
    owner = marker.read_text().strip() if marker.is_file() else None
    if owner is not None and owner != study:
        raise ResnasError(
            f"{root} holds the checkpoints of study {owner!r}; give study {study!r} a folder of its own",
            field="--checkpoints",
        )
    if owner is None:
        write_text(marker, study + "\n", field="--checkpoints")
    return root


def trial_folder(root: Path, number: int) -> Path:
    return root / f"trial-{number:05d}"


def checkpoint_of(folder: Path) -> Path | None:
    """What a trial's folder holds for later commands: its final weights, else its full checkpoint."""
    for name in (WEIGHTS_NAME, FILE_NAME):
        if (folder / name).is_file():
            return folder / name
    return None


def discard(folder: Path) -> None:
    """Delete a trial's checkpoint files (and the folder, once empty); never anything else."""
    for name in (FILE_NAME, WEIGHTS_NAME):
        with contextlib.suppress(OSError):
            (folder / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        for stale in folder.glob(".*.pt.*.tmp"):  # a write cut short by a kill
            stale.unlink()
        folder.rmdir()


# ---- the worker's side: a trial has just ended, in this process -------------------------------------


def end_files(folder: Path, status: RunStatus, policy: KeepPolicy) -> None:
    """At the end of a trial: its final weights if it ranks and the policy keeps weights, else nothing
    (`all`: everything, as written). The coordinator then trims the kept weights to the policy."""
    if policy.mode == "all":
        return
    if status.ranks and policy.mode != "none" and (folder / FILE_NAME).is_file():
        try:
            keep_weights(folder)
            return
        except ResnasError:  # damaged: nothing worth keeping
            pass
    discard(folder)


def take_over(previous: Path, folder: Path) -> bool:
    """Move the checkpoint of the attempt a trial retries into the trial's own folder; False when there
    is none to move."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.replace(previous / FILE_NAME, folder / FILE_NAME)
    except OSError:
        return False
    discard(previous)
    return True


# ---- the coordinator's side: the study's ranking decides -------------------------------------------


class Keeper:
    """Holds this host's checkpoint folder to the policy (`settle`) and measures it (`measure`)."""

    def __init__(self, policy: KeepPolicy, root: Path, study: str, store: Store, db: Callable, pareto_too: bool):
        self.policy, self.root, self.study, self.store, self.db = policy, root, study, store, db
        self.pareto_too = pareto_too  # a two-objective study exports its Pareto front: keep it whole
        self.disk = Disk(policy=str(policy), folder=str(root))
        self._measured = 0.0

    def wanted(self, runs: list) -> set[int]:
        """The trials whose final weights the policy keeps."""
        if self.policy.mode == "ranked":
            return {r.trial for r in runs if r.status.ranks}
        if self.policy.mode != "best":
            return set()
        if not self.pareto_too:
            return {row["trial"] for row in rank(runs, self.policy.count)}
        rows = rank(runs)
        return {row["trial"] for row in rows[: self.policy.count] + pareto(rows)}

    def settle(self) -> None:
        """Delete what the policy does not keep of the study's ended trials, strip the resumable state of
        kept ones that still have it, and say so in their run rows. Only trials whose recorded checkpoint
        lies in this host's folder are touched: never another host's, another study's, or a running one."""
        if self.policy.mode == "all":
            return
        runs = self.db(self.store.runs, self.study)
        keep = self.wanted(runs)
        for r in runs:
            if r.status is RunStatus.RUNNING or not r.status.counts or not r.checkpoint:
                continue
            folder = trial_folder(self.root, r.trial)
            if Path(r.checkpoint).parent != folder:
                continue  # reused from elsewhere, or written under another --checkpoints
            if r.trial in keep and (folder / FILE_NAME).is_file():
                with contextlib.suppress(ResnasError):
                    keep_weights(folder)  # left in full by an earlier `all`
            if r.trial not in keep:
                discard(folder)
            now = checkpoint_of(folder) if r.trial in keep else None
            if str(now) != r.checkpoint:
                self.db(self.store.finish_run, r.id, only_running=False, checkpoint=str(now) if now else None)

    def measure(self, force: bool = False) -> Disk:
        """The bytes this host's trial folders hold now (at most every two seconds unless forced)."""
        if not force and time.time() - self._measured < 2.0:
            return self.disk
        self._measured = time.time()
        trials = size = 0
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.root):
                if not (entry.name.startswith("trial-") and entry.is_dir()):
                    continue
                sizes = [f.stat().st_size for f in os.scandir(entry.path) if f.is_file()]
                trials += bool(sizes)
                size += sum(sizes)
        self.disk.trials, self.disk.bytes = trials, size
        return self.disk
