"""The report tables of `leaderboard`, `compare` and `search`'s summary: which columns, how each cell is
written (intervals, ties, paired tests), and the notes under each table."""

from __future__ import annotations

from rich.table import Table

from nas_res.arch.budget import human

from .common import mean_sd, out

COLUMNS = [
    ("rank", "rank"),
    ("trial", "trial"),
    ("val acc %", "val_acc"),
    ("test acc %", "test_acc"),
    ("FLOPs", "flops"),
    ("params", "params"),
    ("epochs", "epochs"),
    ("depth", "depths"),
    ("width", "width"),
    ("CxD", "cxd"),
    ("shortcut", "shortcut"),
    ("order", "unit_order"),
    ("status", "status"),
]


def cell(key: str, v) -> str:
    if v is None:
        return "-"
    if key in ("flops", "params"):
        return human(v)
    if key in ("val_acc", "test_acc", "val_nelbo"):
        return f"{v:.2f}"
    if key == "val_bpd":
        return f"{v:.4f}"
    if key == "latency_ms":
        return f"{v:.3g}"
    return str(v)


LEFT = ("depths", "width", "cxd", "shortcut", "unit_order", "status", "reason", "tie", "pair", "reference")
SHOWN = ("val_acc", "tie", "pair", "final", "status")  # cells leaderboard_cells formats


def _with_interval(r: dict) -> str:
    """A ranked row's validation accuracy with its 95% interval: `91.23 [90.5, 91.9]`."""
    acc, lo, hi = r.get("val_acc"), r.get("val_lo"), r.get("val_hi")
    if acc is None or lo is None or hi is None:
        return cell("val_acc", acc)
    return f"{acc:.2f} [{lo:.1f}, {hi:.1f}]"


def _tie(r: dict) -> str:
    """`best` for the top row, `tied` for a row the validation set cannot tell from it, else nothing."""
    if r.get("tied") is None:
        return ""
    return "best" if r.get("rank") == 1 else ("tied" if r["tied"] else "")


def _p(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3g}"


def _pair(r: dict) -> str:
    """McNemar against the best: `b/c, p` (b: images only the best got right, c: only this row); `-` where
    the row has no per-image record, nothing on the best row itself."""
    if r.get("rank") == 1:
        return ""
    b, c, p = r.get("vs_best_b"), r.get("vs_best_c"), r.get("vs_best_p")
    return "-" if b is None or c is None or p is None else f"{b}/{c}, {_p(p)}"


def leaderboard_cells(r: dict) -> dict:
    """The row as the tables show it: interval beside the accuracy, the tie mark, reuse with the status."""
    return {
        **r,
        "val_acc": _with_interval(r),
        "tie": _tie(r),
        "pair": _pair(r),
        "final": _final_cell(r),
        "status": r["status"] + (" (reused)" if r["reused"] else ""),
    }


def _final_cell(r: dict) -> str:
    """The architecture's re-trained accuracy (resnas finalize): mean ± sd over seeds, and its final rank."""
    mean, sd, seeds = r.get("final_val_mean"), r.get("final_val_sd"), r.get("final_seeds")
    if mean is None:
        return "-"
    return f"#{r['final_rank']}: {mean_sd(mean, sd)} ({seeds} seed{'s' if seeds != 1 else ''})"


def leaderboard_columns(rows: list[dict]) -> list[tuple[str, str]]:
    """COLUMNS, with the tie mark after the accuracy where it is known, and the final training's result
    where the study was finalized."""
    columns = list(COLUMNS)
    if any(r.get("task") == "vae" for r in rows):  # a VAE's score: validation negative ELBO, lower is better
        columns = [c for c in columns if c[1] != "test_acc"]
        at = next(i for i, (_, k) in enumerate(columns) if k == "val_acc")
        columns[at : at + 1] = [("val -ELBO (nats)", "val_nelbo")]
        if any(r.get("val_bpd") is not None for r in rows):
            columns.insert(at + 1, ("bits/dim", "val_bpd"))
        return columns
    if any(r.get("reference") for r in rows):  # the hand picks the search raced
        columns.insert(next(i for i, (_, k) in enumerate(columns) if k == "trial") + 1, ("reference", "reference"))
    if any("latency_ms" in r for r in rows):  # the study pinned a latency setting: its nets' measured medians
        columns.insert(next(i for i, (_, k) in enumerate(columns) if k == "params") + 1, ("latency ms", "latency_ms"))
    at = next(i for i, (_, k) in enumerate(columns) if k == "val_acc") + 1
    if any(r.get("final_rank") is not None for r in rows):
        columns.insert(at, ("final val % (re-trained)", "final"))
    if any(r.get("vs_best_b") is not None for r in rows):
        columns.insert(at, ("vs best: b/c, p", "pair"))
    if any(r.get("tied") is not None for r in rows):
        columns.insert(at, ("vs best", "tie"))
    return columns


def leaderboard_notes(rows: list[dict]) -> list[str]:
    """What the intervals and tie marks mean, and how much one validation image weighs."""
    from nas_res.results.paired import PAIRED, UNPAIRED  # here: the listing of commands imports no SciPy

    ranked = [r for r in rows if r.get("rank") is not None]
    if not ranked:
        return []
    if ranked[0].get("task") == "vae":
        return [
            "val -ELBO: the validation negative ELBO per image in nats (reconstruction + KL, one latent draw from "
            "a fixed seed), lowest first"
        ]
    n = ranked[0].get("val_images")
    if n is None:
        return [
            "validation image count not stored for this study (searched before resnas recorded it): "
            "intervals and ties unknown"
        ]
    notes = [
        f"val acc [lo, hi]: 95% Wilson interval on {n} validation images; "
        f"tied: statistically tied with the best (95%, {n} validation images)"
    ]
    if any(r.get("tie_test") == PAIRED for r in ranked):
        notes.append(
            "ties by McNemar's exact test on the same validation images: b images only the best got right, "
            "c only this row; tied when p >= 0.05"
        )
    unpaired = sum(1 for r in ranked if r.get("tie_test") == UNPAIRED and r.get("rank") != 1)
    if unpaired:
        notes.append(
            f"ties for {unpaired} row{'s' if unpaired != 1 else ''} use the unpaired test: no per-image record "
            "(runs stored before resnas kept per-image results)"
        )
    if n < 1000:
        notes.append(
            f"warning: with {n} validation images one image moves accuracy by {100 / n:.2f} points; "
            "gaps inside the intervals are noise, not findings"
        )
    return notes


def print_leaderboard(study: str, rows: list[dict]) -> None:
    """The table, each validation accuracy with its 95% interval and rows tied with the best marked; with
    unranked runs listed (--all), a last column says why each has no result. Footnotes say how to read it."""
    columns = leaderboard_columns(rows) + ([("reason", "reason")] if any(r.get("reason") for r in rows) else [])
    table = Table(title=f"leaderboard: {study}")
    for title, key in columns:
        left = key in (
            "depths",
            "width",
            "cxd",
            "shortcut",
            "unit_order",
            "status",
            "reason",
            "tie",
            "pair",
            "reference",
        )
        table.add_column(title, justify="left" if left else "right", overflow="fold" if key == "reason" else "ellipsis")
    for r in rows:
        shown = leaderboard_cells(r)
        table.add_row(*[shown[k] if k in SHOWN else cell(k, r[k]) for _, k in columns])
    out.print(table)
    if not rows:
        out.print("no finished trial yet")
    for line in leaderboard_notes(rows):
        out.print(line, markup=False, highlight=False, soft_wrap=True)


def best_cell(r: dict) -> str:
    """A study's best: a classifier's validation accuracy, a VAE's validation negative ELBO."""
    if r.get("task") == "vae":
        return "-" if r["best_val_nelbo"] is None else f"{r['best_val_nelbo']:.2f} nats"
    return cell("val_acc", r["best_val_acc"])


def print_reference_summary(summary: dict | None) -> None:
    """One line: whether the search's best beat the best hand pick it raced (nothing without one)."""
    from nas_res.results.references import describe as describe_reference

    if summary is not None:
        out.print(describe_reference(summary), markup=False, highlight=False, soft_wrap=True)


def print_final_reference(versus: dict | None) -> None:
    """One line: whether the re-trained best beat the hand pick re-trained beside it (nothing without one)."""
    from nas_res.results.references import describe_final

    if versus is not None:
        out.print(describe_final(versus), markup=False, highlight=False, soft_wrap=True)


COMPARE_COLUMNS = [
    ("study", "study"),
    ("models", "models"),
    ("best %", "best"),
    ("best vs first", "vs_first_best"),
    ("best vs first: b/c, p", "vs_first_pair"),
    ("median %", "median"),
    ("median vs first", "vs_first_median"),
    ("q25 %", "q25"),
    ("q75 %", "q75"),
    ("models at matched FLOPs", "matched_models"),
    ("best there %", "matched_best"),
    ("median there %", "matched_median"),
    ("best's latency ms", "best_latency_ms"),  # where the study pinned a latency setting
]
TEXT_KEYS = ("study", "models", "matched_models")  # shown as they are; the other statistics are accuracies


def _signed(v: float) -> str:
    return f"{v:+.2f}"


def _difference(r: dict, stat: str) -> str:
    """A study's difference to the first with its interval: `+0.42 [-0.31, +1.20]`."""
    d, lo, hi = r.get(f"diff_{stat}"), r.get(f"diff_{stat}_lo"), r.get(f"diff_{stat}_hi")
    if d is None or lo is None or hi is None:
        return "-"
    return f"{_signed(d)} [{_signed(lo)}, {_signed(hi)}]"


def compare_cells(stats: list[dict]) -> list[dict]:
    """The comparison rows as the tables show them: each difference to the first beside its interval."""
    return [
        {
            **r,
            "vs_first_best": _difference(r, "best"),
            "vs_first_pair": _first_pair(r),
            "vs_first_median": _difference(r, "median"),
        }
        for r in stats
    ]


def _first_pair(r: dict) -> str:
    """The study's best against the first study's best by McNemar: `b/c, p`; `-` where they do not pair."""
    b, c, p = r.get("best_vs_first_b"), r.get("best_vs_first_c"), r.get("best_vs_first_p")
    return "-" if b is None or c is None or p is None else f"{b}/{c}, {_p(p)}"


def compare_notes(stats: list[dict]) -> list[str]:
    """How to read the differences, and which studies' intervals leave out validation noise."""
    if len(stats) < 2:
        return []
    notes = [
        f"vs first: difference to {stats[0]['study']} in points, with its bootstrap 95% interval (models "
        "resampled, validation noise redrawn); an interval containing 0 means no detectable difference"
    ]
    if any(r.get("best_paired") for r in stats):
        notes.append(
            f"best vs first: McNemar's exact test of each best model against {stats[0]['study']}'s on the same "
            f"validation images: b images only {stats[0]['study']}'s best got right, c only this study's"
        )
    for r in stats[1:]:
        if r.get("best_unpaired") and r["models"]:
            notes.append(f"{r['study']}: {r['best_unpaired']}: its best is compared unpaired (the interval) only")
    unknown = [r["study"] for r in stats if r.get("val_images") is None and r["models"]]
    if unknown:
        notes.append(
            f"no validation image count stored for {', '.join(unknown)} (searched before resnas recorded it): "
            "their intervals leave out validation noise and are too narrow"
        )
    return notes
