"""What a search checks before it stores a study or starts a worker: that it can run at all.

Each refusal here is one message naming the option, given before the banner and before any training,
rather than a failure per trial (a missing GPU), after one (a storage or data that cannot be used),
or as a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from sqlalchemy.engine import make_url

from ..data.dataset import load_data
from ..errors import ResnasError
from ..files import check_writable
from ..results.storage import DEFAULT_STORAGE, sqlite_file
from ..training.device import resolve_device
from .config import SearchConfig


class Facts(NamedTuple):
    """What the data turned out to be: the archs' shape, and the sizes a report needs (`val_images`:
    the count every validation accuracy of the study is measured on, hence its uncertainty)."""

    shape: dict[str, int]  # in_channels, classes (a VAE's: in_channels, resolution)
    sizes: dict[str, int]  # val_images, train_images, resolution


def preflight(config: SearchConfig, heartbeat: int, grace: int) -> Facts:
    """Refuse what cannot run (heartbeat, GPUs, an unwritable SQLite file, data that does not load or
    is smaller than one batch); return what the data is."""
    if heartbeat < 1 or grace <= heartbeat:
        raise ResnasError(
            f"the heartbeat ({heartbeat} s) must be at least 1 s and shorter than the grace period ({grace} s)",
            field="--heartbeat",
        )
    for g in config.gpus:
        try:
            resolve_device(f"cuda:{g}")
        except ResnasError as e:
            raise ResnasError(
                f"{e.bare.split('; use')[0]}; leave out --gpus to train on the CPU", field="--gpus"
            ) from None
    url = make_url(config.storage or DEFAULT_STORAGE)
    if sqlite_file(url):  # its file is written after every trial
        check_writable(Path(str(url.database)).expanduser(), field="--storage")
    data = load_data(
        config.dataset,
        data_dir=config.data_dir,
        val_size=config.val_size,
        split_seed=config.split_seed,
        train_size=config.train_size,
    )
    config.recipe.check_batch(len(data.train))
    shape = {"in_channels": data.channels, "classes": data.classes}
    if config.task == "vae":  # a VAE is built for its images' side; it has no classes
        shape = {"in_channels": data.channels, "resolution": data.size}
    return Facts(
        shape,
        {"val_images": len(data.val), "train_images": len(data.train), "resolution": data.size},
    )
