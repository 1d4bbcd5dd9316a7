"""Checkpoints: everything a resumed run needs, written atomically, read back only as plain data.

A run's `checkpoint.pt` holds its weights and the state that resuming needs (optimizer, schedule,
random generators); once a run has ended only the weights are of use, and `keep_weights` turns it
into `weights.pt`, the same record without that state (half the size with SGD's momentum gone, a
third with AdamW's two moments). Both load here, so evaluating and exporting read either.

A checkpoint is a dict of tensors and plain Python values (no pickled classes), so it loads with
`torch.load(..., weights_only=True)`: a file that smuggles in other objects is refused, and a
truncated or damaged one ends in a message naming the file rather than a traceback.
"""

from __future__ import annotations

import io
import pickle
import re
import warnings
import zipfile
from pathlib import Path

import torch

from ..arch.build import build
from ..arch.description import Arch
from ..data.splits import Data
from ..errors import ResnasError
from ..files import write_atomic
from .optim import make_optimizer
from .recipe import Recipe

FORMAT = "resnas-checkpoint/1"
WEIGHTS_FORMAT = "resnas-weights/1"  # an ended run's final weights: no optimizer, schedule or generators
FILE_NAME = "checkpoint.pt"  # in a run's folder, beside its metrics.json
WEIGHTS_NAME = "weights.pt"  # what `keep_weights` leaves in that folder instead
REQUIRED = ("format", "arch", "recipe", "data", "epoch", "history", "model", "optimizer", "scheduler", "rng")
RESUMABLE = ("optimizer", "scheduler", "rng")  # what only resuming needs
WEIGHTS_REQUIRED = tuple(k for k in REQUIRED if k not in RESUMABLE)


def save(path: str | Path, state: dict) -> Path:
    """Write `state` to `path` atomically and durably: a crash leaves the old file intact.

    Serialised in memory first: torch's zip writer reports a full disk as an opaque RuntimeError,
    a plain file write as the OSError `write_atomic` names."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    return write_atomic(path, lambda f: f.write(buffer.getbuffer()), durable=True)


def keep_weights(folder: str | Path) -> Path:
    """Replace `folder`'s checkpoint.pt by weights.pt (its weights, arch, recipe, data and history): what
    is worth keeping of a run that has ended. The checkpoint is checked as it is read, so a damaged one
    is a `ResnasError`, and is removed only once the weights are safely written."""
    source = Path(folder) / FILE_NAME
    state = load(source)
    kept = {k: state[k] for k in WEIGHTS_REQUIRED if k != "format"}
    path = write_atomic(
        Path(folder) / WEIGHTS_NAME, lambda f: torch.save({"format": WEIGHTS_FORMAT, **kept}, f), durable=True
    )
    source.unlink()
    return path


def training_state(
    model, optimizer, scheduler, train_batches, *, arch: Arch, recipe: Recipe, data: Data, history: list, device
) -> dict:
    """What `save` writes after an epoch: enough to continue the run exactly (weights, optimiser,
    schedule, every random generator) and to say what it is (arch, recipe, data, metrics so far)."""
    rng = {"torch": torch.get_rng_state(), "batches": train_batches.state().cpu()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return {
        "arch": arch.to_dict(),
        "recipe": recipe.to_dict(),
        "data": data.describe(),
        "epoch": len(history),
        "history": [m.to_dict() for m in history],
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng,
    }


def load(path: str | Path) -> dict:
    """A checkpoint written by `save` (or `keep_weights`), tensors on the CPU; any other file is a
    `ResnasError`. A folder means its checkpoint.pt, else its weights.pt.

    Every part a resumed run or an evaluation reads is checked here (types, the weights' names and
    shapes against the arch, the optimizer and scheduler states), so a damaged or tampered file is
    one message naming it, never a traceback halfway through restoring it."""
    path = Path(path)
    if path.is_dir():
        full, weights = path / FILE_NAME, path / WEIGHTS_NAME
        path = weights if weights.is_file() and not full.exists() else full
    if not path.is_file():
        raise ResnasError(f"{path}: no such checkpoint file", field="checkpoint")
    try:
        with warnings.catch_warnings():  # torch's warnings about a foreign pickle: the error below says it all
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        smuggled = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if smuggled:
            raise ResnasError(
                f"{path}: refused, it holds objects other than tensors and plain data "
                f"({smuggled.group(1)}), so it was tampered with or is not a resnas checkpoint",
                field="checkpoint",
            ) from None
        raise ResnasError(
            f"{path}: unreadable, not a PyTorch checkpoint, or truncated or corrupt ({_detail(e)})", field="checkpoint"
        ) from None
    except (
        RuntimeError,
        EOFError,
        OSError,
        ValueError,
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
        zipfile.BadZipFile,
    ) as e:
        raise ResnasError(
            f"{path}: unreadable, the file is truncated or corrupt ({_detail(e)})", field="checkpoint"
        ) from None
    if not isinstance(state, dict) or state.get("format") not in (FORMAT, WEIGHTS_FORMAT):
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise ResnasError(
            f"{path}: not a resnas checkpoint (format {found!r}, expected {FORMAT!r})", field="checkpoint"
        )
    missing = [k for k in (REQUIRED if state["format"] == FORMAT else WEIGHTS_REQUIRED) if k not in state]
    if missing:
        raise ResnasError(f"{path}: damaged resnas checkpoint, missing {', '.join(missing)}", field="checkpoint")
    _check(path, state)
    return state


def _detail(e: Exception) -> str:
    """The informative line of a torch.load failure, without its boilerplate and terminal colours."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    found = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    text = (found.group(1) if found else text).strip()
    first = text.splitlines()[0].strip() if text else type(e).__name__
    first = re.split(r"(?<=\.)\s+(?=This is|If you|Please|Check)", first)[0]  # torch's advice is not for users
    return first[:160]


def _check(path: Path, state: dict) -> None:
    """The parts of a checkpoint, each checked against what restoring it needs."""

    def damaged(part: str, what: str) -> ResnasError:
        return ResnasError(f"{path}: damaged resnas checkpoint: {part} {what}", field="checkpoint")

    arch = Arch.from_dict(state["arch"], where=f"{path} (arch)")
    recipe = Recipe.from_dict(state["recipe"], where=f"{path} (recipe)")
    data = state["data"]
    kinds: dict[str, type | tuple[type, ...]] = {
        "name": str,
        "spec": str,
        "train": int,
        "val": (int, float),
        "split_seed": int,
        "size": int,
    }
    if not isinstance(data, dict) or any(
        not isinstance(data.get(k), t) or isinstance(data.get(k), bool) for k, t in kinds.items()
    ):
        raise damaged("data", f"must record {', '.join(kinds)} of the training data")
    epoch, history = state["epoch"], state["history"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= recipe.epochs:
        raise damaged("epoch", f"must be a whole number of epochs from 0 to {recipe.epochs}; got {epoch!r}")
    fields = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_s")
    vae_fields = set(fields) | ({"val_recon", "val_kl", "val_bpd"} if arch.task == "vae" else set())
    if (
        not isinstance(history, list)
        or len(history) != epoch
        or any(
            not isinstance(m, dict)
            or not set(fields) <= set(m) <= vae_fields  # a VAE's add its ELBO's terms (bits/dim where it has them)
            or any(v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))) for v in m.values())
            for m in history
        )
    ):
        raise damaged("history", f"must be {epoch} epoch record(s) of {', '.join(fields)}")
    _check_restore(arch, recipe, state, damaged)


def _check_restore(arch, recipe, state: dict, damaged) -> None:
    """Restore weights, optimizer and scheduler onto a model on the meta device (no memory, no compute):
    what fails here would fail halfway through `resnas train --resume` or `resnas evaluate`. A weights
    file has only the weights to check."""
    weights = state["model"]
    if not isinstance(weights, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()
    ):
        raise damaged("model", "must map parameter names to tensors")
    with torch.device("meta"):
        model = build(arch)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    lost, extra = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
    wrong = [k for k in expected if k in weights and tuple(weights[k].shape) != expected[k]]
    if lost or extra or wrong:
        problem = (
            f"missing {', '.join(lost[:3])}"
            if lost
            else f"unexpected {', '.join(extra[:3])}"
            if extra
            else f"{wrong[0]} has shape {list(weights[wrong[0]].shape)}, the arch needs {list(expected[wrong[0]])}"
        )
        raise damaged("model", f"weights do not match the arch it records ({problem})")
    if state["format"] == WEIGHTS_FORMAT:
        return
    try:
        optimizer = make_optimizer(model, recipe)
        optimizer.load_state_dict(state["optimizer"])
        params = [p for group in optimizer.param_groups for p in group["params"]]
        for p in params:
            for value in optimizer.state.get(p, {}).values():
                if isinstance(value, torch.Tensor) and value.dim() and tuple(value.shape) != tuple(p.shape):
                    raise ValueError(
                        f"a state tensor of shape {list(value.shape)} for a parameter of shape {list(p.shape)}"
                    )
    except (KeyError, ValueError, TypeError, RuntimeError, AttributeError, IndexError) as e:
        raise damaged("optimizer", f"state does not fit the model ({_detail(e)})") from None
    scheduler = state["scheduler"]
    try:
        if not isinstance(scheduler, dict):
            raise TypeError(f"got {type(scheduler).__name__}")
        lambda_lr = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        lambda_lr.load_state_dict(dict(scheduler))  # a copy: it pops lr_lambdas from what it is given
        if isinstance(lambda_lr.last_epoch, bool) or not isinstance(lambda_lr.last_epoch, int):
            raise TypeError(f"last_epoch {lambda_lr.last_epoch!r}")
        lambda_lr.get_last_lr()
    except (KeyError, ValueError, TypeError, RuntimeError, AttributeError, IndexError) as e:
        raise damaged("scheduler", f"state is not a learning-rate schedule's ({_detail(e)})") from None
    rng = state["rng"]
    try:
        if not isinstance(rng, dict) or not {"torch", "batches"} <= set(rng):
            raise KeyError("torch and batches")
        for key in ("torch", "batches"):
            torch.Generator().set_state(rng[key])
        if "cuda" in rng and not (isinstance(rng["cuda"], torch.Tensor) and rng["cuda"].dtype == torch.uint8):
            raise TypeError("cuda")
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise damaged("rng", f"must hold the random generators' states ({_detail(e)})") from None


def trained_model(path: str | Path):
    """The network a checkpoint holds, with its weights, and the checkpoint itself: `(model, state)`."""
    state = load(path)  # checked: the weights fit the arch
    model = build(Arch.from_dict(state["arch"], where=str(path)))
    model.load_state_dict(state["model"])
    return model, state


def load_matching(path: Path | None, arch: Arch, recipe: Recipe, data: Data) -> dict:
    """The checkpoint to continue from, refused unless it is this arch, recipe and data split."""
    if path is None:
        raise ResnasError("resuming needs the output folder that holds checkpoint.pt", field="out")
    state = load(path)
    if state["format"] == WEIGHTS_FORMAT:
        raise ResnasError(
            f"{path}: holds an ended run's final weights only, without the optimizer state that resuming "
            "needs: evaluate or export it, or train again without --resume",
            field="resume",
        )
    if state["arch"] != arch.to_dict():
        raise ResnasError(
            f"{path}: the checkpoint is of another arch ({Arch.from_dict(state['arch']).summary()})", field="resume"
        )
    if state["recipe"] != recipe.to_dict():
        diff = [
            f"{k}={state['recipe'].get(k)!r} (now {v!r})"
            for k, v in recipe.to_dict().items()
            if state["recipe"].get(k) != v
        ]
        raise ResnasError(
            f"{path}: the checkpoint was trained with {', '.join(diff)}; resume with the same recipe", field="resume"
        )
    same = ("name", "train", "val", "split_seed", "size")
    if any(state["data"].get(k) != data.describe()[k] for k in same):
        raise ResnasError(
            f"{path}: the checkpoint was trained on {state['data'].get('name')} "
            f"({state['data'].get('train')} train / {state['data'].get('val')} val, split seed "
            f"{state['data'].get('split_seed')}); resume on the same data",
            field="resume",
        )
    return state
