#!/usr/bin/env bash
# Run here (network, .venv set up) before a device call: fills the git-ignored .gpu/ with what
# bench/gpu_check.sh needs on a lent GPU machine, which has no network and whose python3 (3.12) holds
# torch, torchvision and much else already (/work/.library/device/KINDS.md lists it):
#   .gpu/wheels/  resnas's wheel and its needs, runtime and tests, for CPython 3.12 manylinux x86_64, at
#                 the versions .venv has; sdist-only ones (fvcore, iopath) built here into pure wheels.
#                 Not carried: torch, torchvision (and what only they need), the large numeric packages
#                 the image holds, and pyyaml and pygments, which it holds too (IMAGE_BIG below: .gpu stays
#                 near 45 MiB), and ruff/mypy (lint only, not run there).
#   .gpu/data/fashion-mnist/  the four .gz idx files of Debian's dataset-fashion-mnist.
# Then checks: a wheel per requirement (or a stated reason why none), every wheel installable on
# cp312 manylinux x86_64, one version each, sizes inside the carry limit, and, where a Python 3.12 is
# here, that gpu_check.sh's install step resolves in a venv whose image packages are stand-ins.
set -euo pipefail
cd "$(dirname "$0")/.."
VPY=.venv/bin/python
GPU=.gpu
[ -x "$VPY" ] || { echo "no .venv: run ./dev test first" >&2; exit 1; }
grep -qx '.gpu/' .gitignore || { echo ".gitignore lacks .gpu/" >&2; exit 1; }
rm -rf "$GPU/wheels"
mkdir -p "$GPU/wheels" "$GPU/data/fashion-mnist"

# --- which distributions, at which versions --------------------------------------------------------
"$VPY" - >"$GPU/carried.txt" <<'EOF'
import importlib.metadata as md, sys
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name as canon
from packaging.version import Version
# the GPU machine: CPython 3.12 on x86-64 Linux
ENV = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
       "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
       "implementation_name": "cpython", "platform_python_implementation": "CPython"}
PROVIDED = {"torch", "torchvision"}  # the image's; their own needs are the image's business
NOT_NEEDED = {"ruff", "mypy"}        # [test] extras for lint and type checks, not run there
IMAGE_BIG = {"numpy", "scipy", "scikit-learn", "matplotlib", "onnx", "pillow", "fonttools", "kiwisolver",
             "contourpy", "ml-dtypes",  # on the image (KINDS.md), too big to carry
             "pyyaml", "pygments"}  # on the image too: left there to keep .gpu near 45 MiB
closure, todo = {}, [("resnas", ("test",))]
while todo:
    name, extras = todo.pop()
    for r in md.requires(name) or []:
        req = Requirement(r)
        if req.marker and not any(req.marker.evaluate({**ENV, "extra": e}) for e in (*extras, "")):
            continue
        n = canon(req.name)
        if n in PROVIDED | NOT_NEEDED | IMAGE_BIG:
            continue
        new = n not in closure
        closure.setdefault(n, set()).update(req.extras)
        if new or req.extras:
            todo.append((n, tuple(req.extras)))
missing = []
for n in sorted(closure):
    try:
        print(f"{n}=={Version(md.version(n))}")
    except md.PackageNotFoundError:
        missing.append(n)
if missing:
    sys.exit(f"needed on CPython 3.12 but not in .venv (add them by hand): {missing}")
EOF
echo "carrying $(wc -l <"$GPU/carried.txt") distributions (versions as in .venv)"

# --- wheels ------------------------------------------------------------------------------------------
TARGET=(--only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_24_x86_64
        --platform manylinux_2_27_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_31_x86_64
        --platform manylinux_2_34_x86_64 --platform manylinux1_x86_64 --platform any)
PIP=(python3 -m pip --disable-pip-version-check -q)
if ! "${PIP[@]}" download --no-deps "${TARGET[@]}" -d "$GPU/wheels" -r "$GPU/carried.txt"; then
    echo "one download failed: one by one, building what has no wheel (fvcore, iopath are sdist-only)"
    while read -r pin; do
        "${PIP[@]}" download --no-deps "${TARGET[@]}" -d "$GPU/wheels" "$pin" 2>/dev/null ||
            "${PIP[@]}" wheel --no-deps --no-binary :all: -w "$GPU/wheels" "$pin"
    done <"$GPU/carried.txt"
fi
"${PIP[@]}" wheel --no-deps --no-build-isolation -w "$GPU/wheels" . 2>/dev/null ||
    "${PIP[@]}" wheel --no-deps -w "$GPU/wheels" .  # resnas itself (the check installs the tree, editable)
rm -rf build

# --- data --------------------------------------------------------------------------------------------
SRC=/usr/share/datasets/fashion-mnist
[ -f "$SRC/train-images-idx3-ubyte.gz" ] || apt-get install -y dataset-fashion-mnist
cp "$SRC"/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz "$GPU/data/fashion-mnist/"

# --- checks ------------------------------------------------------------------------------------------
"$VPY" - "$GPU/wheels" "$GPU/carried.txt" <<'EOF'
import importlib.metadata as md, pathlib, sys
from packaging import tags
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name as canon, parse_wheel_filename
wheels, carried = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]).read_text().split()
plats = ["linux_x86_64", "manylinux1_x86_64", "manylinux2010_x86_64", "manylinux2014_x86_64"]
plats += [f"manylinux_2_{m}_x86_64" for m in range(5, 40)]
ok_tags = set(tags.cpython_tags((3, 12), ["cp312", "abi3", "none"], plats))
ok_tags |= set(tags.compatible_tags((3, 12), "cp312", plats))
have, bad = {}, []
for w in sorted(wheels.glob("*.whl")):
    name, version, _, wtags = parse_wheel_filename(w.name)
    if name in have:
        bad.append(f"two versions of {name}: {have[name]} and {version}")
    have[name] = str(version)
    if not wtags & ok_tags:
        bad.append(f"{w.name} does not install on CPython 3.12 manylinux x86_64")
for pin in carried:
    n, v = pin.split("==")
    if have.get(n) != v:
        bad.append(f"no wheel of {pin} (have {have.get(n)})")
# resnas's own requirements, runtime and [test], one by one
WHY = {"torch": "the image's", "torchvision": "the image's", "ruff": "lint only, not run there",
       "mypy": "type checks only, not run there"}
BIG = {"numpy", "scipy", "scikit-learn", "matplotlib", "onnx", "pyyaml"}
for r in md.requires("resnas"):
    n = canon(Requirement(r).name)
    if n in have:
        print(f"  {n:<16} {have[n]:<24} wheel")
    elif n in WHY:
        print(f"  {n:<16} {'-':<24} {WHY[n]}")
    elif n in BIG:
        print(f"  {n:<16} {'-':<24} the image's (not carried: size)")
    else:
        bad.append(f"requirement {r!r} has no wheel")
if "resnas" not in have:
    bad.append("no resnas wheel")
if bad:
    sys.exit("gpu_prepare: " + "; ".join(bad))
print(f"{len(have)} wheels, each for CPython 3.12 manylinux x86_64, one version each")
EOF

wheels_mb=$(du -sm "$GPU/wheels" | cut -f1)
gpu_mb=$(du -sm "$GPU" | cut -f1)
tree_mb=$(git ls-files -co --exclude-standard -z | du -cm --files0-from=- 2>/dev/null | tail -1 | cut -f1)
echo ".gpu: ${gpu_mb} MiB (wheels ${wheels_mb} MiB); the working tree ${tree_mb} MiB; 64 MiB may travel"
((gpu_mb <= 46)) || { echo ".gpu is over 46 MiB" >&2; exit 1; }
((gpu_mb + tree_mb <= 62)) || { echo ".gpu and the tree come to over 62 MiB" >&2; exit 1; }

# --- does gpu_check.sh's install step resolve? -------------------------------------------------------
# A Python 3.12 venv with stand-ins (metadata only) for the image's torch, torchvision and big
# packages, over a copy of what travels; gpu_check.sh's install step runs there unchanged.
PY312=
for c in "$(python3 -m uv python find 3.12 2>/dev/null)" "$HOME"/.pyenv/versions/3.12*/bin/python3.12 "$(command -v python3.12)"; do
    if [ -n "$c" ] && "$c" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then PY312=$c; break; fi
done
if [ -z "$PY312" ]; then
    echo "no Python 3.12 here: the install was not tried" >&2
    exit 0
fi
echo "trying gpu_check.sh's install step with $PY312 and stand-ins for the image's packages"
SIM=$(mktemp -d /tmp/gpu-sim.XXXXXX)
trap 'rm -rf "$SIM"' EXIT
"$PY312" -m venv "$SIM/venv"
SITE=$("$SIM/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
"$VPY" - "$SITE" <<'EOF'
import importlib.metadata as md, pathlib, sys
site = pathlib.Path(sys.argv[1])
image = {"torch": "2.11.0", "torchvision": "0.26.0", "numpy": "2.5.2", "onnx": "1.23.1"}  # KINDS.md
for n in ("scipy", "scikit-learn", "matplotlib", "pillow", "fonttools", "kiwisolver", "contourpy", "ml-dtypes",
          "pyyaml", "pygments"):
    image[n] = md.version(n)
for n, v in image.items():
    d = site / f"{n.replace('-', '_')}-{v}.dist-info"
    d.mkdir()
    (d / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {n}\nVersion: {v}\n")
    (d / "INSTALLER").write_text("gpu_prepare stand-in\n")
    (d / "RECORD").write_text("")
EOF
mkdir "$SIM/tree"
git ls-files -co --exclude-standard -z | tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "$SIM/tree"
ln -s "$PWD/$GPU" "$SIM/tree/.gpu"
if ! (cd "$SIM/tree" && OUT="$SIM/out" PY="$SIM/venv/bin/python" STEPS=install bash bench/gpu_check.sh >/dev/null); then
    echo "the install step failed to run" >&2
fi
cat "$SIM/out/summary.txt"
if ! grep -q '^install: editable, every version pinned' "$SIM/out/check.log"; then
    tail -30 "$SIM/out/check.log" >&2
    echo "gpu_prepare: gpu_check.sh's install did not resolve with every version pinned" >&2
    exit 1
fi
"$SIM/venv/bin/python" - <<'EOF'
import importlib.metadata as md
print("installed (simulated):", ", ".join(f"{n} {md.version(n)}" for n in
      ("resnas", "optuna", "fvcore", "iopath", "sqlalchemy", "psycopg", "pymysql", "typer", "pytest", "torch")))
EOF
echo "gpu_prepare: ready; device call: command 'bash bench/gpu_check.sh', carry ['.gpu'], timeout_s 600"
