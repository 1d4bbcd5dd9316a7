"""Checkpoints: everything a resumed run needs, written atomically, read back only as plain data.

A checkpoint is a dict of tensors and plain Python values (no pickled classes), so it loads with
`torch.load(..., weights_only=True)`: a file that smuggles in other objects is refused, and a
truncated or damaged one ends in a message naming the file rather than a traceback.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch

from .errors import ResnasError

FORMAT = "resnas-checkpoint/1"
REQUIRED = ("format", "arch", "recipe", "data", "epoch", "history", "model", "optimizer", "scheduler", "rng")


def save(path: str | Path, state: dict) -> Path:
    """Write `state` to `path` via a temporary file and a rename: a crash leaves the old file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save({"format": FORMAT, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load(path: str | Path) -> dict:
    """A checkpoint written by `save`, tensors on the CPU; any other file is a `ResnasError`."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise ResnasError(f"{path}: no such checkpoint file", field="checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ResnasError(f"{path}: refused, it holds objects other than tensors and plain data, so it was "
                          f"tampered with or is not a resnas checkpoint ({first[:160]})", field="checkpoint") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ResnasError(f"{path}: unreadable, the file is truncated or corrupt ({first[:160]})",
                          field="checkpoint") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise ResnasError(f"{path}: not a resnas checkpoint (format {found!r}, expected {FORMAT!r})",
                          field="checkpoint")
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise ResnasError(f"{path}: damaged resnas checkpoint, missing {', '.join(missing)}", field="checkpoint")
    return state


def trained_model(path: str | Path):
    """The network a checkpoint holds, with its weights, and the checkpoint itself: `(model, state)`."""
    from .arch import Arch
    from .model import build

    state = load(path)
    model = build(Arch.from_dict(state["arch"], where=str(path)))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise ResnasError(f"{path}: weights do not match the arch it records ({str(e).splitlines()[0]})",
                          field="checkpoint") from None
    return model, state

