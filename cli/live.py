"""A search's live view on stderr while it runs (trials, workers, best so far), and why a search that
ended with nothing ranked did."""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .common import err

if TYPE_CHECKING:
    from nas_res.results.record import Run
    from nas_res.search import Coordinator, SearchState


def run_live(coordinator: Coordinator) -> SearchState:
    """Run the coordinator with its live view (trials, workers, best so far) on stderr."""
    if not err.is_terminal:  # a log gets the last view once, as lines (Live crops them, and ends without a newline)
        try:
            return coordinator.run()
        finally:
            err.print(_live_view(coordinator.state))
    with Live(console=err, refresh_per_second=4, transient=False) as live:
        coordinator.on_update = lambda state: live.update(_live_view(state))
        return coordinator.run()


def nothing_trained(runs: list[Run], state: SearchState) -> str:
    """Why a search ends without a result ("" when it has one): the study has no ranked run, or
    every trial this host ran failed. The reason is the failures' most common message."""
    c = state.counts
    here_ok = c["done"] + c["pruned"] + c["reused"]
    ranked = any(r.status.ranks for r in runs)
    if ranked and (here_ok or not c["failed"]):
        return ""
    failed = [r for r in runs if r.status.failed]
    parts = []
    if failed:
        reasons = Counter(f"{r.status}: {(r.reason or 'no reason recorded').splitlines()[0][:300]}" for r in failed)
        common, times = reasons.most_common(1)[0]
        parts.append(f"{len(failed)} trial(s) failed, {times} with {common}")
    if c["over_budget"]:
        parts.append(f"{c['over_budget']} suggestion(s) were over the budget")
    if c["over_latency"]:
        parts.append(f"{c['over_latency']} suggestion(s) were over the latency limit")
        if state.fastest is not None:  # how far the limit would have to move
            f = state.fastest
            how = "measured" if f.how == "measured" else "predicted by the lookup table"
            parts.append(f"the fastest net judged, {f.summary}, runs in {f.ms:.3g} ms ({how})")
    if c["no_candidate"]:
        parts.append(
            f"{c['no_candidate']} suggestion(s) built no net of the space (a depth total the block cannot split)"
        )
    if state.stopped_by:
        parts.append(f"stopped: {state.stopped_by}")
    if not parts:
        parts.append("no trial finished")
    return "; ".join(parts) + f". The whole list: resnas leaderboard {state.study} --all"


def _value(v: float | None) -> str:
    return f"{v:.2f}" if v is not None else "-"


def _live_view(state: SearchState) -> Group:
    from nas_res.arch.budget import human

    c = state.counts
    elapsed = time.time() - state.started
    eta = state.eta()
    head = Text.from_markup(
        f"[bold]{state.study}[/]  trials {state.counted}/{state.target}  running {state.running_all} "
        f"(here {state.running})  |  here: done {c['done']}  pruned {c['pruned']}  over budget {c['over_budget']}  "
        f"failed {c['failed']}  reused {c['reused']}  repeats {c['repeats']}"
        + (f"  over latency {c['over_latency']}" if c["over_latency"] else "")
        + (f"  lost {c['lost']}  retried {c['retried']}" if c["lost"] or c["retried"] else "")
        + (f"  database retries {state.db_errors}" if state.db_errors else "")
        + f"  elapsed {elapsed:,.0f} s"
        + (f"  ETA {eta:,.0f} s" if eta is not None else "")
    )
    parts: list[RenderableType] = [head]
    if state.best:
        b = state.best
        value = f"{b.value:.2f} val -ELBO" if state.lower_is_better else f"{b.value:.2f}% val acc"
        parts.append(
            Text(f"best: {value} (trial {b.trial}), {human(b.flops)}FLOPs, {human(b.params)} params, {b.summary}")
        )
    d = state.disk
    parts.append(
        Text(f"checkpoints: {d.bytes / 1e6:,.1f} MB on disk, {d.trials} trial(s) ({d.policy} kept) in {d.folder}")
    )
    table = Table(box=None, show_header=True, pad_edge=False)
    vae = state.lower_is_better  # a VAE search shows its validation negative ELBO
    for col in ("worker", "device", "threads", "trial", "epoch", "val -ELBO" if vae else "val acc %", "FLOPs", "arch"):
        table.add_column(col)
    for w in state.workers:
        job = w.job
        if job is None:
            table.add_row(str(w.index), w.device, str(w.threads), "-", "-", "-", "-", "idle")
        else:
            table.add_row(
                str(w.index),
                w.device,
                str(w.threads),
                str(job.number),
                f"{job.epoch}/{job.epochs}",
                _value(job.val_loss if vae else job.val_acc),
                human(job.cost.flops),
                job.arch.summary(),
            )
    parts.append(table)
    return Group(*parts)
