"""A set of nets timed under one setting: what `resnas latency` names, measures and prints, and how well the
lookup table predicted the measurements (Spearman's rank correlation, mean absolute percentage error)."""

from __future__ import annotations

from pathlib import Path

from ..arch.budget import Budget
from ..arch.cost import cost
from ..arch.description import Arch
from ..arch.zoo import get, names, resolve_arch
from ..errors import ResnasError
from .meter import Meter

ZOO = "zoo"  # the target that names every classifier of the zoo


def resolve_targets(targets: list[str], budget: Budget, sample: int, seed: int) -> list[tuple[str, Arch]]:
    """(name, arch) for each target: `zoo` (every zoo classifier), a zoo name, an arch file, or a design
    space (built-in name or template file), of which `sample` nets inside `budget` are drawn uniformly."""
    from ..space.design_space import load_space
    from ..space.template import builtin_spaces

    out: list[tuple[str, Arch]] = []
    for target in targets:
        if target == ZOO:
            out += [(n, a) for n in names() if (a := get(n)).task == "classify"]
        elif target in builtin_spaces() or (Path(target).is_file() and not _is_arch_file(target)):
            space = load_space(target)
            drawn = space.sample(sample, budget, seed=seed)
            if not drawn:
                raise ResnasError(f"space {space.name} has no net inside {budget.describe()}", field="--budget")
            out += [(f"{space.name}#{i}", a) for i, a in enumerate(drawn, 1)]
        else:
            out.append(resolve_arch(target))
    seen: set[str] = set()
    return [(n, a) for n, a in out if not (a.key in seen or seen.add(a.key))]  # type: ignore[func-returns-value]


def _is_arch_file(path: str) -> bool:
    """An arch file lists `stages`; a template does not."""
    from ..yamlfile import read_yaml

    data = read_yaml(path)
    return isinstance(data, dict) and "stages" in data


def survey(meter: Meter, named: list[tuple[str, Arch]], predict: bool = False) -> list[dict]:
    """One row per net: its cost, its measured median and interval (ms), throughput, and the table's
    prediction where asked (the parts are timed first: fewer processes)."""
    predicted = meter.predict(a for _, a in named) if predict else {}
    timed = meter.nets(a for _, a in named)
    rows = []
    for name, arch in named:
        c, t = cost(arch), timed[arch.key]
        rows.append(
            {
                "name": name,
                "key": arch.key,
                "summary": arch.summary(),
                "cxd": arch.cxd,
                "block": arch.block,
                "flops": c.flops,
                "params": c.params,
                "latency_ms": t.median_ms,
                "low_ms": t.low_ms,
                "high_ms": t.high_ms,
                "repeats": t.repeats,
                "inner": t.inner,
                "processes": t.processes,
                "spread": t.spread,
                "images_per_s": meter.setting.batch * 1000 / t.median_ms,
                "predicted_ms": predicted.get(arch.key),
            }
        )
    return rows


def table_error(rows: list[dict]) -> dict | None:
    """How well the table's predictions match the measurements: Spearman's rho (rank, what a search needs),
    the mean absolute percentage error and the mean ratio predicted/measured (its bias); None under 3 nets."""
    pairs = [(r["latency_ms"], r["predicted_ms"]) for r in rows if r.get("predicted_ms") is not None]
    if len(pairs) < 3:
        return None
    from scipy.stats import spearmanr

    measured, predicted = zip(*pairs)
    rho = spearmanr(measured, predicted).statistic
    errors = [abs(p - m) / m for m, p in pairs]
    return {
        "nets": len(pairs),
        "spearman": float(rho),
        "mape": 100 * sum(errors) / len(errors),
        "ratio": sum(p / m for m, p in pairs) / len(pairs),
    }
