"""Hostile and wrong input, command by command.

Every mistake a user can make must end in ONE message that names the culprit (file, option or
value) and what is allowed, a non-zero exit, no traceback, no password, and no damage: a refused
command leaves files, studies and databases exactly as they were.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import pathlib
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from nas_res.cli.main import app
from servers import scratch_database, sqlite_url
from typer.testing import CliRunner

from nas_res.results import Store

ROOT = Path(__file__).resolve().parents[1]
SPACE, BUDGET = "plain-vs-residual", "20MFLOPs"  # 81 candidates, trained in seconds on the 8x8 digits
FAST = "synthetic:1x8x8:10:256"  # for the searches that only make a study to be hostile to
SECRET = "s3cret"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
runner = CliRunner()


# ---- helpers -----------------------------------------------------------------------------------


def squash(text: str) -> str:
    """Output without rich's boxes and line breaks, so a message wrapped in a panel still matches."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def invoke(args: list[str]):
    return runner.invoke(app, [str(a) for a in args])


def refused(result, *needles: str, usage: bool = False):
    """Exit 2, no traceback, one message naming every needle, no password anywhere."""
    text = result.stdout + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"uncaught {type(result.exception).__name__}: {result.exception}"
    )
    assert result.exit_code == 2, (result.exit_code, text)
    assert "Traceback" not in text, text
    assert SECRET not in text, text
    if usage:  # typer's own parsing error: one boxed message
        assert "Invalid value" in text or "No such option" in text or "Missing" in text, text
    else:
        assert text.count("error:") == 1, text
        assert result.stdout.strip() == "", result.stdout  # stdout stays clean (it may carry --json)
    flat = squash(text)
    for needle in needles:
        assert squash(str(needle)) in flat, (needle, text)
    return result


def run_cli(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """`resnas ARGS` as a separate process (a search spawns workers), from `cwd`."""
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "nas_res.cli.main", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def copy_db(src: Path, dst: Path) -> str:
    """A consistent copy of a SQLite study database (WAL included); returns its URL."""
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    a.close()
    b.close()
    return sqlite_url(dst.parent, dst.name)


def fingerprint(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def tree(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Every file under `folder` (links as their targets) with a hash of its bytes."""
    found = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if any(rel == s or rel.startswith(s + "/") for s in skip) or rel.endswith(("-wal", "-shm")):
            continue
        if p.is_symlink():
            found[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            found[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            found[rel] = "dir"
    return found


def studies_in(url: str) -> list[str]:
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
        return []  # nothing was even created
    r = invoke(["studies", "--storage", url, "--json"])
    assert r.exit_code == 0, r.output
    return [s["study"] for s in json.loads(r.stdout)]


# ---- fixtures: one real study and one real checkpoint, made through the CLI --------------------


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A finished two-trial study `s` (about 20 s), made by `resnas search` as a user would."""
    tmp = tmp_path_factory.mktemp("study")
    url = sqlite_url(tmp, "s.db")
    r = run_cli(
        [
            "search",
            "--space",
            SPACE,
            "--budget",
            BUDGET,
            "--trials",
            "2",
            "--epochs",
            "1",
            "--dataset",
            FAST,
            "--storage",
            url,
            "--study",
            "s",
        ],
        cwd=tmp,
    )
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    return tmp, url


@pytest.fixture
def study_copy(study, tmp_path):
    """A private copy of the study database, for cases that may write to it."""
    return copy_db(study[0] / "s.db", tmp_path / "copy.db")


TRAIN = ["train", "mnist_resnet", "--epochs", "1", "--batch-size", "64", "--device", "cpu"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real checkpoint from `resnas train` (one epoch on digits)."""
    out = tmp_path_factory.mktemp("trained") / "run"
    r = invoke([*TRAIN, "--out", out])
    assert r.exit_code == 0, r.output
    return out / "checkpoint.pt"


# ---- YAML files: templates, arch files, study files, recipe files -------------------------------

CONTENT = {  # per kind of file: a wrong type and an unknown key that each kind must name
    "template": {
        "wrong_type": (ROOT / "search_spaces" / f"{SPACE}.yaml")
        .read_text()
        .replace("resolution: 28", "resolution: abc"),
        "unknown_key": "widht: 16\n",
    },
    "arch": {"wrong_type": "stages: 5\n", "unknown_key": "stages: []\nstagess: []\n"},
    "study": {
        "wrong_type": f"space: {SPACE}\nbudget: {BUDGET}\ntrials: many\n",
        "unknown_key": f"space: {SPACE}\nbudgets: {BUDGET}\n",
    },
    "recipe": {"wrong_type": "epochs: ten\n", "unknown_key": "epoch: 3\n"},
}
NEEDLE = {
    ("template", "wrong_type"): "resolution",
    ("template", "unknown_key"): "widht",
    ("arch", "wrong_type"): "stages",
    ("arch", "unknown_key"): "stagess",
    ("study", "wrong_type"): "trials",
    ("study", "unknown_key"): "budgets",
    ("recipe", "wrong_type"): "epochs",
    ("recipe", "unknown_key"): "epoch",
}
BAD_FILES = (
    "syntax",
    "wrong_type",
    "unknown_key",
    "empty",
    "top_level_list",
    "mixed_keys",
    "folder",
    "binary",
    "nul_bytes",
    "missing",
    "unreadable",
)


def make_bad_file(folder: Path, kind: str, how: str) -> Path:
    path = folder / ("folder" if how == "folder" else f"{how}.yaml")
    if how == "syntax":
        path.write_text("a: [1, 2\nb: {c\n")
    elif how in ("wrong_type", "unknown_key"):
        path.write_text(CONTENT[kind][how])
    elif how == "empty":
        path.write_text("")
    elif how == "top_level_list":
        path.write_text("- 1\n- 2\n")
    elif how == "mixed_keys":  # keys of different types: sorting them for a message must not crash
        path.write_text("1: a\nfoo: b\nnull: c\n")
    elif how == "folder":
        path.mkdir()
    elif how == "binary":
        path.write_bytes(bytes(range(256)) * 8)
    elif how == "nul_bytes":
        path.write_bytes(b"\x00" * 64)
    elif how == "unreadable":
        if IS_ROOT:
            pytest.skip(
                "runs as root: chmod 000 does not stop root from reading (the folder case covers "
                "a file that cannot be read as one)"
            )
        path.write_text(CONTENT[kind]["wrong_type"])
        path.chmod(0)
    return path


def file_command(command: str, path: Path, tmp: Path) -> list:
    storage = ["--storage", sqlite_url(tmp)]
    return {
        "space show": ["space", "show", path],
        "space sample": ["space", "sample", path, "-n", "2"],
        "cost": ["cost", path],
        "iso --like": ["iso", "--like", path, "--cardinality", "1,2"],
        "search --space": ["search", "--space", path, "--budget", BUDGET, "--trials", "1", *storage],
        "search STUDY_FILE": ["search", path, *storage],
        "search --recipe": [
            "search",
            "--space",
            SPACE,
            "--budget",
            BUDGET,
            "--recipe",
            path,
            "--trials",
            "1",
            *storage,
        ],
        "train --recipe": ["train", "mnist_resnet", "--recipe", path, "--out", tmp / "run"],
    }[command]


KIND = {
    "space show": "template",
    "space sample": "template",
    "cost": "arch",
    "iso --like": "arch",
    "search --space": "template",
    "search STUDY_FILE": "study",
    "search --recipe": "recipe",
    "train --recipe": "recipe",
}


FILE_CASES = [pytest.param(c, h, id=f"{c}-{h}") for c in KIND for h in BAD_FILES]


@pytest.mark.parametrize("command,how", FILE_CASES)
def test_bad_yaml_file_is_one_message_naming_it(command, how, tmp_path):
    kind = KIND[command]
    path = make_bad_file(tmp_path, kind, how)
    before = tree(tmp_path)
    r = refused(invoke(file_command(command, path, tmp_path)), str(path))
    if (kind, how) in NEEDLE:
        assert NEEDLE[kind, how] in r.stderr, r.stderr
    assert not (tmp_path / "run").exists()  # nothing trained, nothing written
    assert {k: v for k, v in tree(tmp_path).items() if not k.startswith("db.sqlite")} == before


# ---- budgets ------------------------------------------------------------------------------------

BUDGETS = [
    (["--budget", "1FLOPs"], ["no candidate", "FLOPs <= 1"]),
    (["--budget", "abc"], ["'abc'", "4G, 600M"]),
    (["--budget=-5MFLOPs"], ["'-5MFLOPs'"]),
    (["--budget", "5-3GFLOPs"], ["'5-3GFLOPs'", "inverted"]),
    (["--budget", "0FLOPs"], ["'0FLOPs'", "positive"]),
    (["--budget", "1e400"], ["'1e400'", "too large"]),
    (["--budget", "4 GFLOPs of compute"], ["'4 GFLOPs of compute'"]),
    (["--max-params=-1"], ["'-1'", "params"]),
    (["--max-params", "0"], ["'0'", "params"]),
    (["--max-params", "1"], ["no candidate", "params <= 1"]),
]


@pytest.mark.parametrize("command", ["space show", "space sample", "search"])
@pytest.mark.parametrize("budget,needles", BUDGETS, ids=[" ".join(b[0]) for b in BUDGETS])
def test_impossible_or_unreadable_budget(command, budget, needles, tmp_path):
    head = {
        "space show": ["space", "show", SPACE],
        "space sample": ["space", "sample", SPACE],
        "search": [
            "search",
            "--space",
            SPACE,
            "--trials",
            "1",
            "--epochs",
            "1",
            "--storage",
            sqlite_url(tmp_path),
            "--study",
            "b",
        ],
    }[command]
    refused(invoke([*head, *budget]), *needles)
    if command == "search":
        assert studies_in(sqlite_url(tmp_path)) == []


# ---- numeric and choice options -----------------------------------------------------------------


def _search(tmp: Path, *extra) -> list:
    return [
        "search",
        "--space",
        SPACE,
        "--budget",
        BUDGET,
        "--trials",
        "1",
        "--epochs",
        "1",
        "--storage",
        sqlite_url(tmp),
        "--study",
        "n",
        *extra,
    ]


OPTIONS = [  # (id, args builder, needles, typer usage error?)
    ("search --trials 0", lambda t: [*_search(t), "--trials", "0"], ["trials", "0"], False),
    ("search --trials abc", lambda t: [*_search(t), "--trials", "abc"], ["--trials"], True),
    ("search --epochs -1", lambda t: [*_search(t), "--epochs=-1"], ["--epochs", "-1"], False),
    ("search --workers 0", lambda t: [*_search(t), "--workers", "0"], ["workers", "0"], False),
    ("search --gpus x", lambda t: [*_search(t), "--gpus", "x"], ["--gpus", "'x'"], False),
    ("search --gpus 0,-1", lambda t: [*_search(t), "--gpus", "0,-1"], ["gpus", "-1"], False),
    ("search --timeout 5x", lambda t: [*_search(t), "--timeout", "5x"], ["--timeout", "'5x'"], False),
    ("search --timeout 0", lambda t: [*_search(t), "--timeout", "0"], ["--timeout", "positive"], False),
    ("search --trial-timeout soon", lambda t: [*_search(t), "--trial-timeout", "soon"], ["--trial-timeout"], False),
    ("search --seed -1", lambda t: [*_search(t), "--seed=-1"], ["seed", "-1"], False),
    ("search --sampler cmaes", lambda t: [*_search(t), "--sampler", "cmaes"], ["--sampler", "tpe"], False),
    ("search --objective speed", lambda t: [*_search(t), "--objective", "speed"], ["--objective"], False),
    ("search --pruner sometimes", lambda t: [*_search(t), "--pruner", "sometimes"], ["--pruner"], False),
    ("search --recipe nonsense", lambda t: [*_search(t), "--recipe", "nonsense"], ["'nonsense'", "fast"], False),
    ("search --study ../up", lambda t: [*_search(t), "--study", "../up"], ["--study", "'../up'"], False),
    ("train --epochs -1", lambda t: [*TRAIN, "--out", t / "o", "--epochs=-1"], ["--epochs", "-1"], False),
    ("train --epochs 0", lambda t: [*TRAIN, "--out", t / "o", "--epochs", "0"], ["--epochs", "0"], False),
    ("train --epochs abc", lambda t: [*TRAIN, "--out", t / "o", "--epochs", "abc"], ["--epochs"], True),
    ("train --batch-size 0", lambda t: [*TRAIN, "--out", t / "o", "--batch-size", "0"], ["--batch-size"], False),
    ("train --lr nan", lambda t: [*TRAIN, "--out", t / "o", "--lr", "nan"], ["--lr", "nan"], False),
    ("train --lr inf", lambda t: [*TRAIN, "--out", t / "o", "--lr", "inf"], ["--lr", "inf"], False),
    ("train --weight-decay -1", lambda t: [*TRAIN, "--out", t / "o", "--weight-decay=-1"], ["--weight-decay"], False),
    (
        "train --label-smoothing 1",
        lambda t: [*TRAIN, "--out", t / "o", "--label-smoothing", "1"],
        ["--label-smoothing"],
        False,
    ),
    (
        "train --warmup-epochs -1",
        lambda t: [*TRAIN, "--out", t / "o", "--warmup-epochs=-1"],
        ["--warmup-epochs"],
        False,
    ),
    ("train --grad-clip 0", lambda t: [*TRAIN, "--out", t / "o", "--grad-clip", "0"], ["--grad-clip"], False),
    ("train --patience 0", lambda t: [*TRAIN, "--out", t / "o", "--patience", "0"], ["--patience"], False),
    ("train --seed -1", lambda t: [*TRAIN, "--out", t / "o", "--seed=-1"], ["--seed"], False),
    ("train --optimizer lion", lambda t: [*TRAIN, "--out", t / "o", "--optimizer", "lion"], ["sgd, adamw"], False),
    ("train --val-size nan", lambda t: [*TRAIN, "--out", t / "o", "--val-size", "nan"], ["--val-size", "nan"], False),
    ("train --val-size inf", lambda t: [*TRAIN, "--out", t / "o", "--val-size", "inf"], ["--val-size", "inf"], False),
    ("train --val-size -1", lambda t: [*TRAIN, "--out", t / "o", "--val-size=-1"], ["--val-size"], False),
    ("train --val-size 0", lambda t: [*TRAIN, "--out", t / "o", "--val-size", "0"], ["--val-size"], False),
    (
        "train --val-size 100000",
        lambda t: [*TRAIN, "--out", t / "o", "--val-size", "100000"],
        ["--val-size", "100000"],
        False,
    ),
    ("train --split-seed -1", lambda t: [*TRAIN, "--out", t / "o", "--split-seed=-1"], ["--split-seed"], False),
    ("train --image-size -1", lambda t: [*TRAIN, "--out", t / "o", "--image-size=-1"], ["--image-size"], False),
    ("train --device tpu", lambda t: [*TRAIN[:-2], "--out", t / "o", "--device", "tpu"], ["'tpu'"], False),
    (
        "train --resume --overwrite",
        lambda t: [*TRAIN, "--out", t / "o", "--resume", "--overwrite"],
        ["--resume", "--overwrite"],
        False,
    ),
    ("evaluate --batch-size 0", lambda t: ["evaluate", t / "none.pt", "--batch-size", "0"], ["--batch-size"], False),
    (
        "evaluate --split train",
        lambda t: ["evaluate", t / "none.pt", "--split", "train"],
        ["--split", "'train'"],
        False,
    ),
    ("space sample -n 0", lambda t: ["space", "sample", SPACE, "-n", "0"], ["-n", "0"], False),
    ("cost --resolution 0", lambda t: ["cost", "resnet18", "--resolution", "0"], ["--resolution", "0"], False),
    ("cost --resolution -3", lambda t: ["cost", "resnet18", "--resolution=-3"], ["--resolution", "-3"], False),
    (
        "iso --match speed",
        lambda t: ["iso", "--like", "resnet50", "--cardinality", "1,2", "--match", "speed"],
        ["speed"],
        False,
    ),
    ("zoo nonet", lambda t: ["zoo", "nonet"], ["'nonet'", "resnet18"], False),
    ("cost nonet", lambda t: ["cost", "nonet"], ["'nonet'", "resnet18"], False),
]


@pytest.mark.parametrize("make,needles,usage", [o[1:] for o in OPTIONS], ids=[o[0] for o in OPTIONS])
def test_bad_option_value(make, needles, usage, tmp_path):
    refused(invoke(make(tmp_path)), *needles, usage=usage)
    assert not (tmp_path / "o").exists()  # train refused before writing anything
    if (tmp_path / "db.sqlite").exists():
        assert studies_in(sqlite_url(tmp_path)) == []


def test_search_refuses_zero_epochs(tmp_path):
    refused(invoke([*_search(tmp_path), "--epochs", "0", "--timeout", "1s"]), "--epochs", "0")


@pytest.mark.parametrize("top", ["0", "-1"])
def test_search_refuses_a_top_that_is_not_a_count(study_copy, top):
    refused(invoke(["search", "--study", "s", "--storage", study_copy, f"--top={top}"]), "--top", top)


# ---- datasets -----------------------------------------------------------------------------------


def image_folder(root: Path, how: str) -> Path:
    from PIL import Image

    def images(folder: Path, n: int = 3) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(folder / f"{i}.png")

    if how == "missing":
        return root / "nowhere"
    root.mkdir()
    if how == "train_is_a_file":  # a file where a folder is expected: unreadable as a folder, even for root
        (root / "train").write_text("not a folder")
    elif how == "no_classes":
        (root / "train").mkdir()
    elif how == "no_images":
        (root / "train" / "cat").mkdir(parents=True)
        (root / "train" / "dog").mkdir()
    elif how in ("corrupt_image", "broken_link", "no_val_for_test", "unreadable_class"):
        images(root / "train" / "cat")
        images(root / "train" / "dog")
        if how == "corrupt_image":
            (root / "train" / "cat" / "bad.png").write_bytes(b"not an image at all")
        elif how == "broken_link":
            (root / "train" / "dog" / "gone.png").symlink_to(root / "deleted.png")
        elif how == "unreadable_class":
            if IS_ROOT:
                pytest.skip(
                    "runs as root: chmod 000 does not stop root (train_is_a_file covers a folder that cannot be read)"
                )
            (root / "train" / "dog").chmod(0)
    elif how == "path_is_a_file":
        root.rmdir()
        root.write_text("a file, not a folder")
    return root


DATASETS = [
    "missing",
    "path_is_a_file",
    "train_is_a_file",
    "no_classes",
    "no_images",
    "corrupt_image",
    "broken_link",
    "no_val_for_test",
    "unreadable_class",
]


@pytest.mark.parametrize("how", DATASETS)
def test_imagefolder_that_cannot_be_used(how, tmp_path):
    root = image_folder(tmp_path / "data", how)
    args = [*TRAIN, "--dataset", f"imagefolder:{root}", "--image-size", "8", "--out", tmp_path / "o"]
    r = refused(invoke(args + (["--test"] if how == "no_val_for_test" else [])), str(root))
    assert "dataset" in r.stderr
    assert not (tmp_path / "o" / "checkpoint.pt").exists()


@pytest.mark.parametrize(
    "spec,needle",
    [
        ("imagenet", "'imagenet'"),
        ("synthetic:abc", "synthetic:abc"),
        ("synthetic:3x8x9", "square"),
        ("IMAGEFOLDER:", "imagefolder:"),
    ],
)
@pytest.mark.parametrize("command", ["train", "search", "evaluate"])
def test_unknown_or_malformed_dataset(command, spec, needle, tmp_path, trained):
    args = {
        "train": [*TRAIN, "--out", tmp_path / "o"],
        "search": _search(tmp_path),
        "evaluate": ["evaluate", trained, "--device", "cpu"],
    }[command]
    refused(invoke([*args, "--dataset", spec]), needle)


def test_torchvision_dataset_offline_names_the_files_and_folder(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    refused(
        invoke([*TRAIN, "--dataset", "cifar10", "--data-dir", data, "--no-download", "--out", tmp_path / "o"]),
        "data_batch_1",
        str(data),
    )


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--dataset", "imagenet"], "imagenet"),
        (["--dataset", "imagefolder:/nonexistent-resnas"], "nonexistent-resnas"),
        (["--gpus", "99"], "99"),
    ],
)
def test_a_refused_search_leaves_no_study_behind(extra, needle, tmp_path):
    url = sqlite_url(tmp_path)
    refused(invoke([*_search(tmp_path), "--study", "left", *extra]), needle)
    assert "left" not in studies_in(url)


# ---- storage URLs -------------------------------------------------------------------------------


def storage_case(how: str, tmp: Path) -> tuple[str, list[str]]:
    if how == "nonsense":
        return "nonsense", ["not a storage URL"]
    if how == "postgres_unreachable":
        return f"postgresql://u:{SECRET}@127.0.0.1:1/x", ["127.0.0.1", "u:***@"]
    if how == "mysql_unknown_host":
        return f"mysql://u:{SECRET}@no-such-host.invalid/x", ["no-such-host.invalid"]
    if how == "sqlite_with_password":
        return f"sqlite://u:{SECRET}@//{tmp}/x.db", ["u:***@"]
    if how == "sqlite_folder_under_a_file":
        (tmp / "a-file").write_text("x")
        return f"sqlite:///{tmp}/a-file/x.db", [f"{tmp}/a-file"]
    if how == "sqlite_folder_not_creatable":
        if IS_ROOT:
            pytest.skip(
                "runs as root: the folder /nonexistent-dir-root would be created (the a-file and /proc "
                "cases cover a folder that cannot be made)"
            )
        return "sqlite:////nonexistent-dir-root/x.db", ["/nonexistent-dir-root"]
    if how == "sqlite_in_proc":
        if not Path("/proc/self").exists():
            pytest.skip("no /proc here")
        return "sqlite:////proc/resnas-nowhere/x.db", ["/proc/resnas-nowhere"]
    if how == "sqlite_is_a_folder":
        (tmp / "folder.db").mkdir()
        return f"sqlite:///{tmp}/folder.db", [f"{tmp}/folder.db"]
    if how == "sqlite_not_a_database":
        (tmp / "garbage.db").write_bytes(b"definitely not SQLite " * 100)
        return f"sqlite:///{tmp}/garbage.db", [f"{tmp}/garbage.db", "not a database"]
    raise AssertionError(how)


STORAGES = [
    "nonsense",
    "postgres_unreachable",
    "mysql_unknown_host",
    "sqlite_with_password",
    "sqlite_folder_under_a_file",
    "sqlite_folder_not_creatable",
    "sqlite_in_proc",
    "sqlite_is_a_folder",
    "sqlite_not_a_database",
]


def storage_command(command: str, url: str, tmp: Path) -> list:
    return {
        "search": [*_search(tmp)[:-4], "--storage", url, "--study", "x"],
        "studies": ["studies", "--storage", url],
        "leaderboard": ["leaderboard", "s", "--storage", url],
        "export": ["export", "s", "--storage", url, "--out", tmp / "exported"],
        "plot": ["plot", "s", tmp / "p.png", "--storage", url],
        "compare": ["compare", "s", "--storage", url],
    }[command]


@pytest.mark.parametrize("how", STORAGES)
@pytest.mark.parametrize("command", ["search", "studies", "leaderboard", "export", "plot", "compare"])
def test_bad_or_unreachable_storage(command, how, tmp_path):
    url, needles = storage_case(how, tmp_path)
    before = tree(tmp_path)
    refused(invoke(storage_command(command, url, tmp_path)), "--storage", *needles)
    assert tree(tmp_path) == before  # nothing created, nothing exported, the non-database untouched


# ---- a database written by a newer resnas -------------------------------------------------------


def newer_db(path: Path) -> str:
    url = sqlite_url(path.parent, path.name)
    Store(url, create=True).dispose()
    with sqlite3.connect(path) as c:
        c.execute("UPDATE resnas_schema SET version = 99")
    c.close()
    return url


@pytest.mark.parametrize("command", ["search", "studies", "leaderboard", "export", "plot", "compare"])
def test_newer_schema_is_refused_and_the_file_left_alone(command, tmp_path):
    db = tmp_path / "newer.db"
    url = newer_db(db)
    before = fingerprint(db)
    refused(invoke(storage_command(command, url, tmp_path)), "--storage", str(db), "newer resnas", "99")
    assert fingerprint(db) == before
    assert not (tmp_path / "exported").exists() and not (tmp_path / "p.png").exists()


def test_newer_schema_with_another_layout_is_not_altered(tmp_path):
    db = tmp_path / "newer.db"
    with sqlite3.connect(db) as c:  # a newer resnas that renamed its tables
        c.execute("CREATE TABLE resnas_schema (version INTEGER NOT NULL)")
        c.execute("INSERT INTO resnas_schema VALUES (99)")
        c.execute("CREATE TABLE resnas_studies_v2 (name TEXT PRIMARY KEY)")
    c.close()
    before = fingerprint(db)[0]
    refused(invoke(["studies", "--storage", sqlite_url(db.parent, db.name)]), "newer resnas")
    assert fingerprint(db)[0] == before


def test_foreign_sqlite_database_is_not_altered_by_a_read_only_command(tmp_path):
    db = tmp_path / "other-app.db"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        c.execute("INSERT INTO customers VALUES (1, 'Ada')")
    c.close()
    before = fingerprint(db)[0]
    invoke(["studies", "--storage", sqlite_url(db.parent, db.name)])
    assert fingerprint(db)[0] == before


# ---- checkpoints --------------------------------------------------------------------------------


class Smuggled:
    """Pickles to a call that would create a file: loading must refuse it, never run it."""

    marker: Path

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def tamper(good: dict, raw: bytes, how: str, tmp: Path):
    """Bytes, or a state to torch.save, for each way a checkpoint can be damaged or foreign."""
    state = copy.deepcopy(good)
    if how == "truncated":
        return raw[: len(raw) // 2]
    if how == "truncated_to_nothing":
        return b""
    if how == "random_bytes":
        return bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0)).tolist())
    if how == "text_file":
        return b"epochs: 3\n"
    if how == "wrong_keys":
        return {"weights": {}, "step": 3}
    if how == "plain_state_dict":  # a foreign checkpoint: bare weights, as many projects save them
        return state["model"]
    if how == "a_tensor":
        return torch.zeros(3)
    if how == "smuggled_object":
        Smuggled.marker = tmp / "PWNED"
        return {**state, "extra": Smuggled()}
    if how == "legacy_format":
        return ("legacy", {"weights": torch.zeros(2)})
    if how == "missing_model":
        state.pop("model")
    elif how == "weights_wrong_shape":
        state["model"]["conv1.weight"] = torch.zeros(1)
    elif how == "weights_missing":
        state["model"].pop("fc.weight")
    elif how == "weights_extra":
        state["model"]["backdoor.weight"] = torch.zeros(2)
    elif how == "model_not_a_dict":
        state["model"] = "weights"
    elif how == "arch_tampered":
        state["arch"]["stages"] = "deep"
    elif how == "recipe_tampered":
        state["recipe"] = "fast"
    elif how == "data_tampered":
        state["data"] = {}
    elif how == "epoch_tampered":
        state["epoch"] = "one"
    elif how == "history_tampered":
        state["history"] = [{"loss": 1}]
    elif how == "optimizer_tampered":
        state["optimizer"] = {}
    elif how == "optimizer_groups_tampered":
        state["optimizer"]["param_groups"] = state["optimizer"]["param_groups"][:1]
    elif how == "optimizer_buffer_tampered":
        key = next(iter(state["optimizer"]["state"]))
        state["optimizer"]["state"][key] = {"momentum_buffer": torch.zeros(7)}
    elif how == "scheduler_tampered":
        state["scheduler"] = {}
    elif how == "rng_tampered":
        state["rng"]["torch"] = torch.zeros(3)
    elif how == "rng_missing":
        state["rng"].pop("batches")
    else:
        raise AssertionError(how)
    return state


TAMPERED = [
    "truncated",
    "truncated_to_nothing",
    "random_bytes",
    "text_file",
    "wrong_keys",
    "plain_state_dict",
    "a_tensor",
    "smuggled_object",
    "legacy_format",
    "missing_model",
    "weights_wrong_shape",
    "weights_missing",
    "weights_extra",
    "model_not_a_dict",
    "arch_tampered",
    "recipe_tampered",
    "data_tampered",
    "epoch_tampered",
    "history_tampered",
    "optimizer_tampered",
    "optimizer_groups_tampered",
    "optimizer_buffer_tampered",
    "scheduler_tampered",
    "rng_tampered",
    "rng_missing",
]


@pytest.mark.parametrize("how", TAMPERED)
@pytest.mark.parametrize("command", ["evaluate", "train --resume"])
def test_damaged_tampered_or_foreign_checkpoint(command, how, trained, tmp_path):
    good = torch.load(trained, weights_only=True)
    made = tamper(good, trained.read_bytes(), how, tmp_path)
    folder = tmp_path / "run"
    folder.mkdir()
    path = folder / "checkpoint.pt"
    if isinstance(made, bytes):
        path.write_bytes(made)
    elif isinstance(made, tuple):
        torch.save(made[1], path, _use_new_zipfile_serialization=False)
    else:
        torch.save(made, path)
    before = fingerprint(path)
    args = ["evaluate", path, "--device", "cpu"] if command == "evaluate" else [*TRAIN, "--out", folder, "--resume"]
    refused(invoke(args), str(path))
    assert fingerprint(path) == before  # refused, not overwritten
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.pt"]  # no metrics.json, no temporary files
    assert not (tmp_path / "PWNED").exists()  # the smuggled call never ran


@pytest.mark.parametrize("target", ["folder_without_checkpoint", "missing_file", "arch_yaml"])
def test_evaluate_something_that_is_not_a_checkpoint(target, tmp_path):
    path = {
        "folder_without_checkpoint": tmp_path,
        "missing_file": tmp_path / "nope.pt",
        "arch_yaml": tmp_path / "net.yaml",
    }[target]
    if target == "arch_yaml":
        path.write_text("stages: []\n")
    refused(invoke(["evaluate", path]), str(path.name))


def test_resume_without_a_checkpoint_or_with_another_run(trained, tmp_path):
    refused(invoke([*TRAIN, "--out", tmp_path / "empty", "--resume"]), "no such checkpoint")
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(trained, other / "checkpoint.pt")
    before = fingerprint(other / "checkpoint.pt")
    refused(
        invoke(
            [
                "train",
                "mnist_plain",
                "--epochs",
                "1",
                "--batch-size",
                "64",
                "--device",
                "cpu",
                "--out",
                other,
                "--resume",
            ]
        ),
        "another arch",
    )
    refused(invoke([*TRAIN[:3], "2", *TRAIN[4:], "--out", other, "--resume"]), "epochs=1 (now 2)")
    assert fingerprint(other / "checkpoint.pt") == before


# ---- export: where files go ---------------------------------------------------------------------


def export_args(url: str, out: Path, *extra) -> list:
    return ["export", "s", "--storage", url, "--out", out, *extra]


def test_export_out_is_an_existing_file(study_copy, tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("my notes")
    before = tree(tmp_path)
    refused(invoke(export_args(study_copy, target)), "--out", str(target), "not a folder")
    assert tree(tmp_path) == before


def test_export_out_under_a_file(study_copy, tmp_path):
    (tmp_path / "notes.txt").write_text("my notes")
    before = tree(tmp_path)
    refused(invoke(export_args(study_copy, tmp_path / "notes.txt" / "sub")), "--out", str(tmp_path / "notes.txt"))
    assert tree(tmp_path) == before


def test_export_name_taken_by_a_folder(study_copy, tmp_path):
    out = tmp_path / "out"
    r = invoke(export_args(study_copy, out))
    assert r.exit_code == 0, r.output
    name = Path(r.stdout.split()[0]).name
    (out / name).unlink()
    (out / name).mkdir()
    refused(invoke(export_args(study_copy, out)), str(out / name), "folder")


@pytest.mark.parametrize("extra", [[], ["--weights"], ["--format", "json"]])
def test_export_never_writes_through_a_link_out_of_its_folder(study_copy, tmp_path, extra):
    out = tmp_path / "out"
    r = invoke(export_args(study_copy, out, *extra))
    assert r.exit_code == 0, r.output
    victims = []
    for written in r.stdout.split():  # plant a link where each file goes, pointing outside --out
        victim = tmp_path / f"victim-{Path(written).name}"
        victim.write_text("precious")
        Path(written).unlink()
        Path(written).symlink_to(victim)
        victims.append(victim)
    r = invoke(export_args(study_copy, out, *extra))
    assert r.exit_code == 0, r.output
    for victim in victims:
        assert victim.read_text() == "precious"
    for written in r.stdout.split():
        assert not Path(written).is_symlink() and Path(written).parent == out


@pytest.mark.parametrize("name", ["../../escape", "/etc/evil", "..", "a/../../b", "~root", "-rf"])
def test_export_of_a_study_named_to_escape_stays_in_its_folder(study, tmp_path, name):
    db = tmp_path / "renamed.db"
    url = copy_db(study[0] / "s.db", db)
    with sqlite3.connect(db) as c:  # a study made elsewhere, by a resnas that did not check names
        c.execute("UPDATE resnas_studies SET name = ? WHERE name = 's'", (name,))
        c.execute("UPDATE resnas_runs SET study = ? WHERE study = 's'", (name,))
    c.close()
    work = tmp_path / "work"
    (work / "deep" / "er").mkdir(parents=True)
    out = work / "deep" / "er" / "out"
    before = tree(tmp_path, skip=("work/deep/er/out",))
    r = invoke(["export", "--storage", url, "--out", out, "--top", "2", "--weights", "--", name])
    assert r.exit_code == 0, r.output
    assert tree(tmp_path, skip=("work/deep/er/out",)) == before  # nothing written outside --out
    written = sorted(p for p in out.rglob("*"))
    assert written and all(p.parent == out and not p.name.startswith(".") for p in written)


def test_export_prints_whole_paths_however_long(study_copy, tmp_path):
    out = tmp_path / ("a-long-folder-name-" * 12) / "out"
    r = invoke(export_args(study_copy, out, "--weights"))
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and all(Path(line).is_file() and Path(line).parent == out for line in lines), lines


@pytest.mark.parametrize("top", ["0", "-1"])
def test_export_top_must_be_a_count(study_copy, tmp_path, top):
    refused(invoke(export_args(study_copy, tmp_path / "out", f"--top={top}")), "--top", top)
    assert not (tmp_path / "out").exists()


def test_export_format_and_weights_mistakes(study_copy, tmp_path):
    refused(invoke(export_args(study_copy, tmp_path / "out", "--format", "xml")), "--format", "'xml'")
    assert not (tmp_path / "out").exists()


# ---- unknown studies and report options ---------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["leaderboard", "nope"],
        ["export", "nope"],
        ["plot", "nope", "PNG"],
        ["compare", "s", "nope"],
        ["compare", "nope", "s"],
    ],
    ids=lambda a: " ".join(a),
)
def test_unknown_study_lists_the_ones_there(study_copy, tmp_path, args):
    args = [tmp_path / "p.png" if a == "PNG" else a for a in args]
    extra = ["--out", tmp_path / "out"] if args[0] == "export" else []
    refused(invoke([*args, "--storage", study_copy, *extra]), "'nope'", "studies there: s")
    assert not (tmp_path / "out").exists() and not (tmp_path / "p.png").exists()


@pytest.mark.parametrize("top", ["0", "-1"])
def test_leaderboard_top_must_be_a_count(study_copy, top):
    refused(invoke(["leaderboard", "s", "--storage", study_copy, f"--top={top}"]), "--top", top)


@pytest.mark.parametrize(
    "where,needle", [("a-file/p.png", "a-file"), ("folder", "folder"), ("noext", "suffix"), ("p.xyz", "'xyz'")]
)
@pytest.mark.parametrize("command", ["plot", "compare --plot"])
def test_plot_file_that_cannot_be_written(study_copy, tmp_path, command, where, needle):
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "folder").mkdir()
    target = tmp_path / where
    before = tree(tmp_path)
    args = ["plot", "s", target, "--kind", "edf"] if command == "plot" else ["compare", "s", "--plot", target]
    refused(invoke([*args, "--storage", study_copy]), needle)
    assert tree(tmp_path) == before


def test_plot_kind_and_compare_storages(study_copy, tmp_path):
    refused(
        invoke(["plot", "s", tmp_path / "p.png", "--kind", "violin", "--storage", study_copy]), "--kind", "'violin'"
    )
    refused(invoke(["compare", "s", "s", "s", "--storage", study_copy, "--storage", study_copy]), "--storage")


# ---- existing studies survive refused commands --------------------------------------------------


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--space", "resnext"], "space"),
        (["--dataset", "mnist"], "dataset"),
        (["--budget", "1FLOPs"], "no candidate"),
        (["--budget", "10MFLOPs"], "budget"),
        (["--recipe", "default"], "recipe"),
        (["--epochs", "3"], "epochs"),
        (["--objective", "accuracy+flops"], "objective"),
    ],
)
def test_refused_search_leaves_the_study_as_it_was(study_copy, extra, needle):
    def state():
        r = invoke(["leaderboard", "s", "--storage", study_copy, "--all", "--json"])
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout), studies_in(study_copy)

    before = state()
    refused(invoke(["search", "--study", "s", "--storage", study_copy, *extra]), needle)
    assert state() == before


# ---- passwords: never in output, files or stored metadata ---------------------------------------


@pytest.fixture
def pg_with_password():
    """A scratch PostgreSQL database, its URL carrying a password (the local server trusts, so any works)."""
    import sqlalchemy as sa

    with scratch_database("postgresql") as url:
        yield sa.engine.make_url(url).set(password=SECRET).render_as_string(hide_password=False)


def test_password_never_printed_written_or_stored(tmp_path, monkeypatch, pg_with_password):
    """A real search over PostgreSQL with a password in the URL; then every command's output, every file,
    and every table row are searched for it."""
    import sqlalchemy as sa

    url = pg_with_password
    assert SECRET in url
    monkeypatch.chdir(tmp_path)  # checkpoints of a non-SQLite storage go under ./studies/
    outputs = []
    r = run_cli(
        [
            "search",
            "--space",
            SPACE,
            "--budget",
            BUDGET,
            "--trials",
            "1",
            "--epochs",
            "1",
            "--dataset",
            FAST,
            "--storage",
            url,
            "--study",
            "pw",
        ],
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    outputs.append(r.stdout + r.stderr)
    for args in (
        ["studies", "--storage", url],
        ["studies", "--storage", url, "--json"],
        ["leaderboard", "pw", "--storage", url, "--csv"],
        ["export", "pw", "--storage", url, "--out", tmp_path / "exported", "--weights"],
        ["export", "pw", "--storage", url, "--out", tmp_path / "exported", "--format", "json"],
    ):
        r = invoke(args)
        assert r.exit_code == 0, r.output
        outputs.append(r.stdout + r.stderr)
    for args in (
        ["leaderboard", "nope", "--storage", url],
        ["search", "--study", "pw", "--storage", url, "--space", "resnext"],
    ):
        outputs.append(refused(invoke(args)).output)
    for text in outputs:
        assert SECRET not in text
    for p in tmp_path.rglob("*"):
        if p.is_file():
            assert SECRET.encode() not in p.read_bytes(), p
    engine = sa.create_engine(url)
    with engine.connect() as c:
        for table in sa.inspect(engine).get_table_names():
            for row in c.execute(sa.text(f'SELECT * FROM "{table}"')):
                assert SECRET not in str(tuple(row)), (table, row)
    engine.dispose()
