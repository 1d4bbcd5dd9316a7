"""Measured latencies in the storage (the `resnas_latency` table): looked up before anything is timed, so no
net or part is measured twice under one setting, and joined to a study's rows by arch key.

The key of a timing is what makes two comparable (`KEY`): the device's own name, batch, precision, threads,
mode and torch version. `nas_res.latency` measures; this module only keeps and reads what it measured.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import sqlalchemy as sa

from .final import SUFFIX
from .schema import latencies
from .store import Store

KEY = ("device", "batch", "precision", "threads", "mode", "torch")
TIMING = ("median_ms", "low_ms", "high_ms", "repeats", "inner", "processes", "spread")


@dataclass(frozen=True)
class Timing:
    """One thing timed: the median milliseconds a call took over `repeats` timed runs of `inner` calls each,
    with the median's 95% interval, in the fastest of `processes` fresh processes; `spread`: the slowest
    process's median over the fastest's (1.0: the processes agreed)."""

    median_ms: float
    low_ms: float
    high_ms: float
    repeats: int
    inner: int
    processes: int = 1
    spread: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Measured:
    """A timing with what was timed: `item` (an arch key, or a part's key), `what` (net, stem, unit, head)
    and a label a person reads."""

    item: str
    what: str
    label: str
    timing: Timing


def _ready(store: Store) -> bool:
    return store.ready and sa.inspect(store.engine).has_table(latencies.name)


def _where(key: dict):
    return sa.and_(*(latencies.c[k] == key[k] for k in KEY))


def cached(store: Store, items: Iterable[str], key: dict) -> dict[str, Timing]:
    """item -> its stored timing under `key`, for the items that have one."""
    wanted = sorted(set(items))
    if not wanted or not _ready(store):
        return {}
    found: dict[str, Timing] = {}
    with store.engine.connect() as c:
        for at in range(0, len(wanted), 500):  # bounded IN lists
            rows = c.execute(sa.select(latencies).where(_where(key), latencies.c.item.in_(wanted[at : at + 500])))
            for r in rows.mappings():
                found[r["item"]] = Timing(**{k: r[k] for k in TIMING})
    return found


def record(store: Store, measured: Iterable[Measured], key: dict) -> None:
    """Keep timings under `key` (a later timing of the same item replaces the earlier one)."""
    rows = [
        {"item": m.item, "what": m.what, "label": m.label[:255], **m.timing.to_dict(), "measured": time.time(), **key}
        for m in measured
    ]
    if not rows:
        return
    if not _ready(store):
        latencies.create(store.engine, checkfirst=True)
    with store.engine.begin() as c:
        c.execute(latencies.delete().where(_where(key), latencies.c.item.in_([r["item"] for r in rows])))
        c.execute(latencies.insert(), rows)


def study_key(store: Store, study: str) -> dict | None:
    """The latency key a study pinned (`--max-latency` or `--objective accuracy+latency`; a re-training's:
    its search's), or None."""
    latency = (store.study_config(study) or {}).get("latency")
    if latency is None and study.endswith(SUFFIX):
        latency = (store.study_config(study[: -len(SUFFIX)]) or {}).get("latency")
    return dict(latency["key"]) if latency else None


def with_latency(rows: list[dict], store: Store, study: str) -> list[dict]:
    """Give each row `latency_ms`, its net's median latency under the study's pinned setting (None where not
    measured), when the study pinned one; rows are returned unchanged otherwise."""
    key = study_key(store, study)
    if key is None:
        return rows
    found = cached(store, (r["arch_key"] for r in rows if r.get("arch_key")), key)
    for r in rows:
        t = found.get(r.get("arch_key", ""))
        r["latency_ms"] = t.median_ms if t else None
    return rows
