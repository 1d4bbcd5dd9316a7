"""Does the proxy rank architectures the way full training does, and better than their size does?

A search ranks on a cheap proxy (few epochs, small data); what matters is the ranking after full
training. If FLOPs or parameter count rank the final accuracies as well as the proxy, the search
learned nothing a size sort would not have told: the proxy ranking is then no evidence.
"""

from __future__ import annotations

import math
import warnings

from scipy import stats

PREDICTORS = {"proxy": "proxy_acc", "flops": "flops", "params": "params"}  # higher predicts better, each
LABELS = {"proxy": "proxy", "flops": "FLOPs", "params": "params"}
FEW = 5  # below this many models, a rank correlation is mostly noise


def fidelity(rows: list[dict]) -> dict:
    """Rank agreement of each predictor with `final_acc`, one row per architecture (keys proxy_acc,
    final_acc, flops, params): `{"n": models, "proxy": {...}, "flops": {...}, "params": {...}}`, each
    predictor `{"n", "spearman", "spearman_p", "kendall", "kendall_p", "note"}`. More FLOPs and more
    params count as predicting higher accuracy (the size baseline the proxy has to beat).

    Rows missing the predictor or the final accuracy are left out of that predictor's n. With fewer
    than 3 models, or a side where every value is equal, there is no ranking to agree with: the
    correlations are None and `note` says why. Kendall's tau is tau-b (ties allowed); scipy's p-values."""
    out: dict = {"n": sum(1 for r in rows if r.get("final_acc") is not None)}
    for name, key in PREDICTORS.items():
        pairs = [(r[key], r["final_acc"]) for r in rows if r.get(key) is not None and r.get("final_acc") is not None]
        out[name] = _agreement([float(p) for p, _ in pairs], [float(f) for _, f in pairs], LABELS[name])
    return out


def _agreement(x: list[float], y: list[float], label: str) -> dict:
    n = len(x)
    empty = {"n": n, "spearman": None, "spearman_p": None, "kendall": None, "kendall_p": None}
    if n < 3:
        return {**empty, "note": f"{n} model(s) with both {label} and a final accuracy: rank correlation needs 3"}
    if len(set(x)) < 2:
        return {**empty, "note": f"every model has the same {label}: it ranks nothing"}
    if len(set(y)) < 2:
        return {**empty, "note": "every model has the same final accuracy: there is no ranking to agree with"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exact-p fallbacks and the like: the numbers are what we report
        rho, rho_p = stats.spearmanr(x, y)
        tau, tau_p = stats.kendalltau(x, y)
    return {
        "n": n,
        "spearman": _num(rho),
        "spearman_p": _num(rho_p),
        "kendall": _num(tau),
        "kendall_p": _num(tau_p),
        "note": None,
    }


def _num(v) -> float | None:
    f = float(v)
    return None if math.isnan(f) else f


def verdict(result: dict) -> str:
    """One line in plain words: does the proxy rank final accuracy better (Kendall's tau) than FLOPs
    and params do? With few models, a caution that the comparison itself is noisy."""
    proxy = result["proxy"]
    n = proxy["n"]
    caution = f" (only {n} models: correlations on so few are noisy)" if n < FEW else ""
    if proxy["kendall"] is None:
        return f"cannot judge the proxy (n={n}): {proxy['note']}"
    size = {name: result[name]["kendall"] for name in ("flops", "params")}
    shown = " and ".join(
        f"{LABELS[name]} {tau:.2f}" if tau is not None else f"{LABELS[name]} n/a" for name, tau in size.items()
    )
    head = f"proxy Kendall {proxy['kendall']:.2f} vs {shown} (n={n})"
    baseline = max([tau for tau in size.values() if tau is not None], default=0.0)  # no size ranking: chance
    if proxy["kendall"] <= 0:
        return f"{head}: the proxy does not rank the final accuracies at all: do not trust its ranking{caution}"
    if proxy["kendall"] > baseline:
        return f"{head}: the proxy carries information beyond size{caution}"
    return f"{head}: the proxy does not beat ranking by size: treat the proxy ranking with suspicion{caution}"
