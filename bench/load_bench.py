"""Load benchmark: many coordinators on one study over PostgreSQL, with near-empty trials.

One `resnas search` creates the study and N-1 `resnas worker` processes join it, each with one
training process, as N hosts would; the trials train tiny nets (bench/load-space.yaml) on a few 4x4
synthetic images for one epoch, so what is measured is the database traffic around them: asks,
claims, heartbeats, reports, tells. Figures: trials per second (over the whole run, and over the
window in which all N were working), and errors: a process that failed, a database call that had
to be retried, a trial that failed, got lost or is left unfinished, a run row without its trial or
a counted trial without its run. Target: zero errors.

    python bench/load_bench.py [--workers 16] [--trials 160] [--storage postgresql://...]

Without --storage it makes (and drops) its own database on postgresql://postgres@127.0.0.1:5432/test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import sqlalchemy as sa

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from machine import describe, write

from nas_res.results import Store, safe_url
from nas_res.training.status import RunStatus

SERVER = "postgresql://postgres@127.0.0.1:5432/test"


@contextlib.contextmanager
def scratch(server: str):
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    name = f"resnas_load_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def resnas(command: str, *args: str, tmp: Path, index: int) -> subprocess.Popen:
    with open(tmp / f"{index:02d}.err", "w") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "nas_res.cli.main", command, *args, "--json"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"},
        )


def measure(storage: str, workers: int, trials: int, tmp: Path) -> dict:
    common = ("--storage", storage, "--checkpoints", str(tmp / "ck"), "--heartbeat", "5", "--grace", "60")
    procs = [
        resnas(
            "search",
            "--space",
            str(HERE / "load-space.yaml"),
            "--dataset",
            "synthetic:1x4x4:2:64",
            "--trials",
            str(trials),
            "--epochs",
            "1",
            "--pruner",
            "none",
            "--sampler",
            "random",
            "--study",
            "load",
            *common,
            tmp=tmp,
            index=0,
        )
    ]
    deadline = time.time() + 300
    while time.time() < deadline:  # the others join once the study exists
        if procs[0].poll() is not None:
            raise SystemExit(f"resnas search exited early:\n{(tmp / '00.err').read_text()[-2000:]}")
        with contextlib.suppress(Exception):
            if Store(storage).study_config("load"):
                break
        time.sleep(0.5)
    procs += [resnas("worker", "--study", "load", *common, tmp=tmp, index=i) for i in range(1, workers)]
    outs, failed = [], 0
    for i, p in enumerate(procs):
        stdout, _ = p.communicate(timeout=3600)
        err = (tmp / f"{i:02d}.err").read_text()
        if p.returncode != 0 or "Traceback" in err:
            failed += 1
            print(f"process {i} exited {p.returncode}:\n{err[-2000:]}", file=sys.stderr)
        else:
            outs.append(json.loads(stdout))
    runs = Store(storage).runs("load")
    study = optuna.load_study(study_name="load", storage=storage)
    all_trials = study.get_trials()
    counted_runs = [r for r in runs if r.status.counts]
    counted_trials = {t.number for t in all_trials if t.user_attrs.get("resnas:counted")}
    starts = {}  # each process' first claim and last finish, from the run rows
    by_owner: dict[str, list] = {}
    owner_of = {t.number: t.user_attrs.get("owner") for t in all_trials}
    for r in runs:
        by_owner.setdefault(owner_of.get(r.trial), []).append(r)
    for owner, rs in by_owner.items():
        starts[owner] = (min(r.created for r in rs), max(r.created + (r.wall_seconds or 0) for r in rs))
    t0 = min(s for s, _ in starts.values())
    t1 = max(e for _, e in starts.values())
    full0 = max(s for s, _ in starts.values())  # every process has started training
    full1 = min(e for _, e in starts.values())  # ... until the first one stops
    in_full = [r for r in counted_runs if full0 <= r.created + (r.wall_seconds or 0) <= full1]
    errors = {
        "processes_failed": failed,
        "database_retries": sum(o.get("db_errors", 0) for o in outs),
        "trials_failed_or_lost": sum(1 for r in runs if not (r.status.ranks or r.status is RunStatus.PRUNED)),
        "trials_unfinished": sum(1 for t in all_trials if not t.state.is_finished()),
        "runs_without_trial": len({r.trial for r in runs} - {t.number for t in all_trials}),
        "counted_mismatch": int(counted_trials != {r.trial for r in counted_runs} or len(counted_runs) != trials),
    }
    figures = {
        "workers": workers,
        "trials": len(counted_runs),
        "processes_that_trained": len(starts),
        "optuna_trials": len(all_trials),
        "repeats_and_over_budget": sum(
            1 for t in all_trials if t.user_attrs.get("status") in ("repeat", "over_budget", "surplus")
        ),
        "wall_seconds": t1 - t0,
        "trials_per_second": len(counted_runs) / (t1 - t0),
        "all_working_seconds": max(0.0, full1 - full0),
        "trials_per_second_all_working": len(in_full) / (full1 - full0) if full1 > full0 else None,
        "median_trial_seconds": sorted(r.wall_seconds for r in counted_runs)[len(counted_runs) // 2],
        "errors": errors,
        "total_errors": sum(errors.values()),
        "storage": safe_url(storage),
    }
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--trials", type=int, default=160)
    ap.add_argument("--storage", help="an empty PostgreSQL database (default: a scratch one on the local server)")
    a = ap.parse_args()
    import tempfile

    with (
        tempfile.TemporaryDirectory() as tmp,
        contextlib.nullcontext(a.storage) if a.storage else scratch(SERVER) as storage,
    ):
        f = measure(storage, a.workers, a.trials, Path(tmp))
    print(
        f"{f['workers']} workers, {f['trials']} trials on {f['storage']}: {f['trials_per_second']:.2f} trials/s "
        f"overall ({f['wall_seconds']:.0f} s), "
        + (
            f"{f['trials_per_second_all_working']:.2f} trials/s while all {f['processes_that_trained']} worked "
            f"({f['all_working_seconds']:.0f} s), "
            if f["trials_per_second_all_working"]
            else ""
        )
        + f"median trial {f['median_trial_seconds']:.2f} s; errors: {f['total_errors']} {f['errors']}"
    )
    print("machine:", describe())
    print("written:", write("load", f, "python bench/load_bench.py " + " ".join(sys.argv[1:])))


if __name__ == "__main__":
    main()
