"""Hostile places and outcomes: read-only and full disks, storages that do not last, searches that train
nothing or run twice, interrupts, and the small refusals of the outside trial (issue 11).

Each ends as the README promises: one `error:` line and exit 2 before any work (or exit 1 when a
search trained nothing), no traceback, and nothing lost: an earlier checkpoint or database survives
and the same command resumes. Full disks are a tiny tmpfs where this machine lets the tests mount
one, else a file-size limit (RLIMIT_FSIZE); read-only places are a read-only tmpfs, or a path under
a regular file (which no user, root included, can write).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
import torch
from servers import sqlite_url
from test_hostile import FAST, ROOT, SPACE, invoke, refused, run_cli, squash

from nas_res import __version__
from nas_res.results import Store
from nas_res.search.keep import checkpoint_root
from nas_res.search.liveness import patiently, storage_full
from nas_res.search.plan import default_study_name

TRAIN = ["train", "mnist_resnet", "--dataset", "digits", "--epochs", "1"]
SEARCH = ["search", "--space", SPACE, "--dataset", FAST, "--epochs", "1"]


@contextlib.contextmanager
def tmpfs(where: Path, size: str, read_only: bool = False):
    """A tmpfs of `size` mounted at `where`, or a skip saying why not (mounting needs privileges)."""
    where.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'}); needs root and CAP_SYS_ADMIN"
        )
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


@contextlib.contextmanager
def file_size_limit(max_bytes: int):
    """Files this process writes stop at `max_bytes` (EFBIG, not a SIGXFSZ kill), then the limit is lifted."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def start(args: list, cwd: Path) -> subprocess.Popen:
    """`resnas ARGS` started in its own process, its output piped: for tests that act while it runs."""
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "nas_res.cli.main", *map(str, args)]
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def running(storage: str, study: str) -> bool:
    """A trial of the study is training (the database may not exist yet)."""
    with contextlib.suppress(Exception):
        return bool(Store(storage).counts(study).get("running"))
    return False


def one_error(done: subprocess.CompletedProcess, *needles: str, rc: int = 2) -> str:
    text = done.stdout + done.stderr
    assert done.returncode == rc, text
    assert "Traceback" not in text, text
    assert text.count("error:") == 1, text
    for needle in needles:
        assert squash(needle) in squash(text), (needle, text)
    return text


# ---- read-only and full disks --------------------------------------------------------------------


def test_train_out_under_a_file_is_refused_before_any_work(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = refused(invoke([*TRAIN, "--out", blocker / "run"]), "--out", str(blocker), "not a folder")
    assert "epoch" not in result.stderr  # refused before the data loaded, not after an epoch


def test_train_out_on_a_read_only_file_system(tmp_path):
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
        result = refused(invoke([*TRAIN, "--out", ro / "run"]), "--out", "read-only file system")
    assert "epoch" not in result.stderr


def test_train_on_a_full_disk_keeps_the_last_checkpoint_and_resumes(tmp_path):
    out = tmp_path / "run"
    assert invoke([*TRAIN, "--out", out]).exit_code == 0
    before = (out / "checkpoint.pt").read_bytes()
    with file_size_limit(64_000):  # this process's files stop at 64 kB: the next checkpoint cannot be written
        full = invoke([*TRAIN, "--out", out, "--overwrite"])
    refused(full, "cannot write", str(out / "checkpoint.pt"))
    assert (out / "checkpoint.pt").read_bytes() == before  # the full disk cost the new run, not the old one
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    again = invoke([*TRAIN, "--out", out, "--resume", "--json"])  # the kept one is whole
    assert again.exit_code == 0, again.stdout
    assert len(json.loads(again.stdout)["history"]) == 1


def test_search_on_a_full_storage_says_so_and_keeps_what_was_committed(tmp_path):
    with tmpfs(tmp_path / "full", "600k") as full:
        storage = f"sqlite:///{full / 's.db'}"
        args = [*SEARCH, "--trials", "60", "--study", "f", "--storage", storage, "--checkpoints", tmp_path / "ck"]
        done = run_cli(args, tmp_path)
        one_error(done, "cannot write to the storage", "full", "run the same command to resume")
        assert Store(storage).study_config("f") is not None  # what was committed is still there


def test_a_disk_full_database_error_is_one_message_not_a_wait(tmp_path):
    """The real SQLite error (a page limit makes the file 'full'), as the coordinator's calls see it."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    sa.event.listen(engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA max_page_count=2"))
    with engine.begin() as c:
        c.execute(sa.text("create table t (x text)"))

    def fill() -> None:
        with engine.begin() as c:
            for _ in range(100):
                c.execute(sa.text("insert into t values (:x)"), {"x": "x" * 4000})

    started = time.time()
    with pytest.raises(Exception) as caught:
        patiently(fill, patience=30, what="sqlite:///x.db", on_retry=lambda e: None)
    assert time.time() - started < 10  # a full disk is not waited out like a restarting server
    assert "cannot write to the storage sqlite:///x.db" in str(caught.value)
    assert "database or disk is full" in str(caught.value)
    assert storage_full(sqlite3.OperationalError("no such table: t"), "s") is None


def test_search_with_read_only_storage_or_checkpoints_is_refused_before_the_study(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    storage = sqlite_url(tmp_path)
    result = refused(
        invoke([*SEARCH, "--trials", "2", "--storage", storage, "--checkpoints", blocker / "ck"]), "--checkpoints"
    )
    assert "new study" not in result.stderr
    assert not (tmp_path / "db.sqlite").exists() or Store(storage).study_names() == []
    refused(invoke([*SEARCH, "--trials", "2", "--storage", f"sqlite:///{blocker / 's.db'}"]), "--storage", "a-file")
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
        refused(invoke([*SEARCH, "--trials", "2", "--storage", f"sqlite:///{ro / 's.db'}"]), "--storage", "read-only")


# ---- storages that do not last, studies that train nothing or run twice ----------------------------


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite:///", "sqlite://"])
def test_a_storage_in_memory_is_refused_before_training(tmp_path, url):
    result = refused(invoke([*SEARCH, "--trials", "2", "--storage", url, "--checkpoints", tmp_path / "ck"]), "memory")
    assert "new study" not in result.stderr and not (tmp_path / "ck").exists()


def test_a_search_that_trains_nothing_exits_1_and_says_why(tmp_path):
    recipe = tmp_path / "wild.yaml"
    recipe.write_text("epochs: 1\nlr: 1.0e+12\nwarmup_epochs: 0\nbatch_size: 64\n")
    storage = sqlite_url(tmp_path)
    done = run_cli([*SEARCH[:-2], "--recipe", recipe, "--trials", "2", "--study", "w", "--storage", storage], tmp_path)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "nothing was trained" in done.stderr and "diverged" in done.stderr, done.stderr
    board = invoke(["leaderboard", "w", "--storage", storage, "--all", "--json"])
    assert board.exit_code == 0, board.stdout
    rows = json.loads(board.stdout)
    assert rows and all(r["status"] == "diverged" for r in rows)


def test_two_searches_of_one_sqlite_study_never_train_an_arch_twice(tmp_path):
    storage = sqlite_url(tmp_path)
    args = [*SEARCH, "--trials", "6", "--study", "two", "--storage", storage, "--sampler", "random"]
    first = start(args, tmp_path)
    deadline = time.time() + 120
    while time.time() < deadline and not running(storage, "two"):  # the first one trains
        time.sleep(0.5)
    second = run_cli(args, tmp_path)
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0 and second.returncode == 0, (first_err, second.stderr)
    assert "new study" in first_err
    assert "joining study two" in second.stderr and "is being searched by" in second.stderr, second.stderr
    runs = Store(storage).runs("two")
    trained = [r.arch_key for r in runs if r.status.counts and not r.reused]
    assert len(trained) == len(set(trained)) == 6  # each arch once, the total exactly reached


def test_resuming_an_interrupted_trial_prints_no_optuna_warning(tmp_path):
    storage = sqlite_url(tmp_path)
    args = ["search", "--space", SPACE, "--dataset", "synthetic:1x8x8:10:1024", "--epochs", "10", "--trials", "2"]
    args += ["--study", "r", "--storage", storage]
    proc = start(args, tmp_path)
    deadline = time.time() + 120
    while time.time() < deadline and not running(storage, "r"):
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    resumed = run_cli(args, tmp_path)  # takes the interrupted trial back first
    assert resumed.returncode == 0, resumed.stderr
    assert "already set" not in resumed.stderr and "Warning" not in resumed.stderr, resumed.stderr


# ---- interrupts and small refusals -----------------------------------------------------------------


def test_ctrl_c_before_the_first_epoch_says_nothing_was_saved(tmp_path):
    out = tmp_path / "run"
    data = "synthetic:3x32x32:7:50000"  # 7 classes: the zoo net is fitted, and says so once the data is loaded
    args = ["train", "resnet20_cifar", "--dataset", data, "--epochs", "1", "--out", out]
    proc = start(args, tmp_path)
    assert proc.stderr is not None
    first = proc.stderr.readline()  # blocks until the data is loaded and training starts
    assert "classes 10->7" in first, first
    time.sleep(1)  # inside the first epoch: 45,000 images take a CPU far longer
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 130, first + rest
    assert "before the first epoch ended; nothing was saved" in rest, rest
    assert "--resume" not in rest and not (out / "checkpoint.pt").exists()


def test_yaml_files_are_read_up_to_a_size(tmp_path):
    refused(invoke(["space", "show", "/dev/zero"]), "/dev/zero", "MiB")
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (2 << 20))
    refused(invoke(["space", "show", big]), str(big), "MiB")


def test_a_band_no_candidate_fits_is_refused_with_digits_that_tell_its_ends_apart():
    for command in (["space", "show", "resnext"], ["search", "--space", "resnext", "--trials", "1"]):
        refused(invoke([*command, "--budget", "4.0000-4.0001GFLOPs"]), "4.0000 G <= FLOPs <= 4.0001 G", "widen")
    assert default_study_name({"budget": "3.8-4.2GFLOPs"}) == "resnext-digits-3.8-4.2GFLOPs"


def test_small_refusals(tmp_path):
    refused(invoke([*SEARCH, "--study", ""]), "--study", "''")
    refused(invoke([*TRAIN, "--out", tmp_path / "o", "--val-size", "2.0"]), "--val-size", "for 2 images write 2")
    refused(invoke([*TRAIN, "--out", tmp_path / "o", "--val-size", "1437"]), "--val-size", "fewer than one per class")
    refused(invoke([*TRAIN, "--out", tmp_path / "o", "--batch-size", "5000"]), "--batch-size", "training images")
    refused(invoke([*TRAIN, "--out", tmp_path / "o", "--threads", "0"]), "--threads")
    beat = refused(invoke([*SEARCH, "--heartbeat", "0", "--storage", sqlite_url(tmp_path)]), "--heartbeat")
    assert "new study" not in beat.stderr
    if not torch.cuda.is_available():
        gpus = refused(invoke([*SEARCH, "--gpus", "0", "--storage", sqlite_url(tmp_path)]), "--gpus", "leave out")
        assert "new study" not in gpus.stderr
    assert not (tmp_path / "o").exists()


def test_version():
    done = invoke(["--version"])
    assert done.exit_code == 0 and done.stdout.strip() == f"resnas {__version__}"


def test_train_threads(tmp_path):
    before = torch.get_num_threads()
    try:
        done = invoke([*TRAIN, "--out", tmp_path / "o", "--threads", "1"])
        assert done.exit_code == 0, done.stdout
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_two_studies_cannot_share_a_checkpoints_folder(tmp_path):
    storage, folder = sqlite_url(tmp_path), tmp_path / "ck"
    assert checkpoint_root("one", str(folder), storage) == folder  # what study one's search did first
    assert checkpoint_root("one", str(folder), storage) == folder  # and does again on resume
    args = [*SEARCH, "--trials", "1", "--study", "two", "--storage", storage, "--checkpoints", folder]
    result = refused(invoke(args), "--checkpoints", str(folder), "'one'")
    assert "new study" not in result.stderr and Store(storage).study_config("two") is None
