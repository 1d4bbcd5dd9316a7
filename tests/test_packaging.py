"""The wheel installs one top-level package (nas_res, with the CLI and the built-in templates inside), and the
templates resolve by name after a non-editable install."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_templates_and_resolves_them_by_name(tmp_path):
    dist = tmp_path / "dist"
    # setuptools packs whatever an earlier build left in build/lib (an older layout's cli/, say): start clean
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    build = "import sys; from setuptools import build_meta as b; print(b.build_wheel(sys.argv[1]))"
    name = (
        subprocess.run([sys.executable, "-c", build, str(dist)], cwd=ROOT, check=True, capture_output=True, text=True)
        .stdout.strip()
        .splitlines()[-1]
    )
    wheel = dist / name
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert {
            "nas_res/search_spaces/resnext.yaml",
            "nas_res/search_spaces/plain-vs-residual.yaml",
            "nas_res/cli/main.py",
        } <= names
        library = {f"nas_res/{p.relative_to(ROOT / 'nas_res').as_posix()}" for p in (ROOT / "nas_res").rglob("*.py")}
        assert library <= names, sorted(library - names)  # every subpackage is listed in pyproject.toml
        top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
        assert top == {"nas_res"}, top  # nothing generic (cli, search_spaces) at the top of site-packages
        entry = next(n for n in names if n.endswith("entry_points.txt"))
        assert "resnas = nas_res.cli.main:app" in z.read(entry).decode()
        site = tmp_path / "site"
        z.extractall(site)  # what a non-editable install puts in site-packages
    probe = (
        "import nas_res, nas_res.search_spaces, nas_res.cli.main; from nas_res import load_space; "
        "from nas_res.space.template import builtin_spaces; "
        "print(nas_res.__file__); print(len(builtin_spaces())); print(load_space('resnext').size())"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, check=True, capture_output=True, text=True
    ).stdout.split()
    assert out[0].startswith(str(site))
    assert int(out[1]) >= 6 and out[2] == "2064384"
