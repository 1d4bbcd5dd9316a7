"""A seeded, class-balanced part of the training split: the cheap proxy a search trains on.

The subset is drawn after the validation split is carved, so proxy and final training are judged on
the same validation images. Classes get equal shares (a class too small for its share gives all it
has, the rest is spread over the others), so a 10% proxy does not drop a rare class by chance. The
draw is a torch.Generator seeded with the split seed: the same on any machine, and nested (a smaller
subset is part of a larger one with the same seed), so proxies of different sizes compare fairly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ResnasError

if TYPE_CHECKING:
    import torch

TrainSize = int | float | None  # a count of images, a fraction in (0, 1), or None: the whole split


def read_number(value: object, allowed: str, field: str) -> int | float:
    """A size as written: an int or float, or a string of one ("5000" an int, "0.1" a float); anything
    else is refused with `allowed`, which says what the option takes."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError:
                raise ResnasError(f"{allowed}; got {text!r}", field=field) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ResnasError(f"{allowed}; got {value!r}", field=field)
    return value


def parse_train_size(value: object, field: str = "train_size") -> TrainSize:
    """A training subset as written: None or "all" is the whole training split, an integer (5000,
    "5000") a count of images, a number in (0, 1] (0.1, "0.1") a fraction of it (1.0 is all)."""
    allowed = (
        "a count of images is an integer of at least 1 (e.g. 5000), a fraction is in (0, 1] (e.g. 0.1), "
        "'all' is the whole training split"
    )
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() == "all":
        return None
    value = read_number(value, allowed, field)
    if isinstance(value, int):
        if value < 1:
            raise ResnasError(f"{allowed}; got {value}", field=field)
        return value
    if not 0 < value <= 1:  # also nan
        hint = f" (for {int(value)} images write {int(value)})" if value > 1 and value.is_integer() else ""
        raise ResnasError(f"{allowed}; got {value!r}, not a fraction in (0, 1]{hint}", field=field)
    return None if value == 1 else value


def subset_count(train_size: TrainSize, available: int, classes: int, field: str = "train_size") -> int | None:
    """How many training images `train_size` asks for out of `available`, or None for all of them;
    refused when it is more than there are or fewer than one per class."""
    train_size = parse_train_size(train_size, field)
    if train_size is None:
        return None
    if isinstance(train_size, float):
        n = round(train_size * available)
        asked = f"{train_size} of the {available:,} training images is {n:,}"
    else:
        n = train_size
        asked = f"{n:,} training images asked for"
        if n > available:
            raise ResnasError(
                f"{asked}, but the training split holds only {available:,} (what validation left); "
                f"ask for at most {available:,}, a fraction, or all",
                field=field,
            )
    if n < classes:
        raise ResnasError(
            f"{asked}, fewer than one per class ({classes} classes); ask for at least {classes}", field=field
        )
    return n


def balanced_indices(labels: torch.Tensor, n: int, seed: int, classes: int) -> torch.Tensor:
    """Sorted indices of `n` items, as equal a number of each class as the classes allow, chosen with
    a generator seeded by `seed`. The remainder of `n // classes` goes to the first classes in a seeded
    order; a class with fewer items than its share gives them all and the others share the rest."""
    if n > len(labels):
        raise ValueError(f"{n} items asked for out of {len(labels)}")
    import torch  # here: parsing a train size (an experiment file's) needs no torch

    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(classes, generator=g).tolist()
    members = [torch.nonzero(labels == c).flatten() for c in range(classes)]
    # drawn before the quotas are known, and in a fixed order: a smaller subset is part of a larger one
    shuffled = [m[torch.randperm(len(m), generator=g)] for m in members]
    quota = _quotas([len(m) for m in members], n, order)
    picked = torch.cat([s[:q] for s, q in zip(shuffled, quota)])
    return picked.sort().values


def _quotas(sizes: list[int], n: int, order: list[int]) -> list[int]:
    """Water-filling: equal shares, capped at each class's size; the remainder in `order`."""
    quota = [0] * len(sizes)
    open_ = [c for c in order if sizes[c] > 0]
    left = n
    while open_:
        share = left // len(open_)
        small = [c for c in open_ if sizes[c] <= share]
        if not small:
            extra = left - share * len(open_)
            for i, c in enumerate(open_):
                quota[c] = share + (i < extra)
            return quota
        for c in small:
            quota[c] = sizes[c]
            left -= sizes[c]
        open_ = [c for c in open_ if c not in small]
    assert left == 0, "n is at most the number of items"
    return quota
