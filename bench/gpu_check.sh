#!/usr/bin/env bash
# One prepared check on a lent GPU machine (no network there): install resnas from the carried
# wheels, then the CUDA-relevant tests, the training benchmark, a short search and the search
# benchmark at the largest scale the time left allows. Everything lands under $OUT (./gpu-out when
# unset): check.log (every step's output), summary.txt (each step's exit code and seconds) and the
# results' JSON files and picture, 6 files at most.
#
# Prepare here first (bash bench/gpu_prepare.sh fills the git-ignored .gpu/), then, through the
# device tool:  command "bash bench/gpu_check.sh", carry [".gpu"], timeout_s 600.
#
# Runs as a whole in TOTAL_S seconds (540, under 9 minutes): every step's cap is cut to the time left.
# Knobs for dry runs elsewhere: PY (the Python holding torch; python3), STEPS (a subset of
# "install env tests train search latency nasbench"), TOTAL_S.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu-out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PY=${PY:-python3}
STEPS=${STEPS:-install env tests train search latency nasbench}
TOTAL_S=${TOTAL_S:-540}
WHEELS=$ROOT/.gpu/wheels
LOG=$OUT/check.log
SUMMARY=$OUT/summary.txt
START=$(date +%s)
rm -f /tmp/gpu-pythonpath
MARK=$(mktemp)  # results newer than this were written by this run
# The carried Fashion-MNIST: nas_res reads DEFAULT_DATA_DIR from RESNAS_DATA, and find_published
# takes the idx .gz files lying directly in it (before /usr/share/datasets/fashion-mnist).
export RESNAS_DATA=$ROOT/.gpu/data/fashion-mnist
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
export ROOT OUT PY WHEELS MARK
: >"$LOG"
printf '%-9s %4s %7s  %s\n' step rc seconds note >"$SUMMARY"

note() { echo "$(date +%T) $*" | tee -a "$LOG"; }
left() { echo $((TOTAL_S - ($(date +%s) - START))); }

# run NAME CAP FUNCTION: the step under `timeout`, its output teed into check.log, a line in summary.txt
run() {
    local name=$1 cap=$2 fn=$3 t0 rc dt room
    case " $STEPS " in *" $name "*) ;; *) return 0 ;; esac
    room=$(($(left) - 10))
    ((cap > room)) && cap=$room
    if ((cap < 20)); then
        note "=== $name: skipped, ${cap}s left"
        printf '%-9s %4s %7s  %s\n' "$name" - 0 "skipped: no time left" >>"$SUMMARY"
        return 0
    fi
    t0=$(date +%s)
    note "=== $name (cap ${cap}s)"
    timeout -k 10 "$cap" bash -c "$fn" 2>&1 | tee -a "$LOG"
    rc=${PIPESTATUS[0]}
    dt=$(($(date +%s) - t0))
    note "=== $name: exit $rc after ${dt}s"
    printf '%-9s %4s %7s  %s\n' "$name" "$rc" "$dt" "$( ((rc == 124 || rc == 137)) && echo 'timed out')" >>"$SUMMARY"
}

# Copy a result written by this run (not a stale committed one) to $OUT.
keep() {
    if [ -f "$1" ] && [ "$1" -nt "$MARK" ]; then cp "$1" "$OUT/"; else echo "no fresh $1"; return 1; fi
}

resnas() { "$PY" -c 'import sys; sys.argv[0] = "resnas"; from nas_res.cli.main import app; app()' "$@"; }

# (a) Into the image's own Python (/opt/torch/.venv, a venv itself: a venv made from it with
# --system-site-packages would not see its torch). Constraints pin every carried wheel at its version
# and every other installed distribution (torch, torchvision, numpy, ...) at the version it has, so
# nothing of the image is re-installed; resnas goes in editable, as ./dev installs it.
step_install() {
    "$PY" - "$WHEELS" >/tmp/gpu-constraints.txt <<'EOF' || return 1
import importlib.metadata as md, pathlib, re, sys
canon = lambda n: re.sub(r"[-_.]+", "-", n).lower()
carried = {}
for w in sorted(pathlib.Path(sys.argv[1]).glob("*.whl")):
    name, version = w.name.split("-")[:2]
    if canon(name) != "resnas":
        carried[canon(name)] = version
try:
    from packaging.version import Version
except ImportError:
    Version = str
pins = dict(carried)
for d in md.distributions():  # sys.path order: the copy that imports wins
    name = canon(d.metadata["Name"] or "")
    try:
        Version(d.version)  # a version pip cannot read would spoil the whole file
    except Exception:
        continue
    if name and name != "resnas":
        pins.setdefault(name, d.version)
print("\n".join(f"{n}=={v}" for n, v in sorted(pins.items())))
print(f"{len(carried)} carried wheels, {len(pins) - len(carried)} installed distributions pinned", file=sys.stderr)
EOF
    grep -E '^(torch|torchvision|numpy)==' /tmp/gpu-constraints.txt
    local pip=("$PY" -m pip install --no-index --find-links "$WHEELS" --no-compile)
    local tests=("pytest>=8" "hypothesis>=6" "pytest-xdist>=3")
    if "${pip[@]}" -c /tmp/gpu-constraints.txt "setuptools>=68" wheel &&
        "${pip[@]}" -c /tmp/gpu-constraints.txt --no-build-isolation -e "$ROOT" "${tests[@]}"; then
        echo "install: editable, every version pinned"
        return 0
    fi
    echo "install: pinned resolution failed; again with torch and torchvision pinned alone"
    grep -E '^(torch|torchvision)==' /tmp/gpu-constraints.txt >/tmp/gpu-torch.txt
    if "${pip[@]}" -c /tmp/gpu-torch.txt resnas "${tests[@]}"; then
        echo "install: the prepared resnas wheel, torch and torchvision pinned"
        return 0
    fi
    echo "install: resolution failed; every carried wheel without dependencies into /tmp/site"
    "$PY" -m pip install --no-index --no-deps --no-compile --target /tmp/site "$WHEELS"/*.whl || return 1
    echo /tmp/site >/tmp/gpu-pythonpath
    return 3  # usable, but not as resolved: say so in the summary
}

step_env() {
    nvidia-smi -L || true
    "$PY" - <<'EOF'
import importlib.metadata as md, sys
import torch, torchvision
print("python", sys.version.split()[0], sys.executable)
print("torch", torch.__version__, "torchvision", torchvision.__version__, "cuda", torch.version.cuda)
print("cuda available", torch.cuda.is_available())
print("device", torch.cuda.get_device_name(0))
import nas_res, optuna, fvcore, sqlalchemy  # noqa: E401
print("nas_res from", nas_res.__file__)
for n in ("resnas", "optuna", "fvcore", "sqlalchemy", "typer", "rich", "numpy", "scipy", "pytest"):
    print(f"  {n} {md.version(n)}")
EOF
}

# (b) The tests that name a GPU/CUDA/device, and test_small_refusals, whose `--gpus 0` refusal only
# runs without CUDA (no test is skipped for want of CUDA: those branches are `if`s).
step_tests() {
    "$PY" -m pytest tests/test_train.py tests/test_finalize.py tests/test_hostile_disk.py \
        -k "cuda or gpu or device or small_refusals" -p no:cacheprovider -q -rs
}

# (c) Throughput against a plain loop, and the 10-epoch CIFAR-10-sized proxy run (GPU only).
step_train() {
    "$PY" bench/train_bench.py --images 50000 --repeats 1 && keep bench/results/train-gpu.json
}

# (d) A short real search on the GPU: Fashion-MNIST, ResNet-20's FLOPs as the budget.
step_search() {
    rm -f /tmp/gpu-search.db
    resnas search --gpus 0 --dataset fashion-mnist --data-dir "$RESNAS_DATA" --budget 31112896 \
        --space small-resnext --trials 12 --epochs 3 --train-size 10000 --timeout 100s \
        --storage sqlite:////tmp/gpu-search.db --checkpoints /tmp/gpu-search-ckpt --study gpu-search \
        --json >"$OUT/search.json"
    local rc=$?
    cat "$OUT/search.json"
    return $rc
}

# (e) Measured latency on the GPU: ResNeXt's iso-FLOPs families at batch 1 and 64 (bench/latency_bench.py).
step_latency() {
    "$PY" bench/latency_bench.py --phase family --device cuda:0 --work /tmp/latency-gpu &&
        keep bench/results/latency-family-gpu.json
}

# (f) The search benchmark's next protocol (2: the 5,000 x 5 proxy), its search phase, resnas against
# random at seed 0, for the minutes left; the final phase is hours, so it is left out.
step_nasbench() {
    "$PY" bench/nas_bench.py --protocol 2 --phase search --work /tmp/nas-bench --gpus 0 --seeds 0 --methods resnas,random \
        --minutes "$NAS_MINUTES" --name nas-bench-gpu-check
    local rc=$?
    keep bench/results/nas-bench-gpu-check-gpu.json || { ((rc == 0)) && rc=1; }
    keep bench/results/nas-bench-gpu-check-anytime.png
    return $rc
}
export -f step_install step_env step_tests step_train step_search step_latency step_nasbench keep resnas

note "gpu_check on $(hostname): $PY, steps: $STEPS, $TOTAL_S s in all"
run install 120 step_install
[ -f /tmp/gpu-pythonpath ] && export PYTHONPATH=$(cat /tmp/gpu-pythonpath)
run env 60 step_env
run tests 150 step_tests
run train 150 step_train
run search 150 step_search
run latency 120 step_latency
case " $STEPS " in *" nasbench "*)
    # a trial started just before --minutes runs on, then the figures are written: 75 s of margin
    secs=$(($(left) - 75))
    if ((secs < 90)); then
        note "=== nasbench: skipped, only $(left)s left (needs 1.5 min of search)"
        printf '%-9s %4s %7s  %s\n' nasbench - 0 "skipped: $(left)s left" >>"$SUMMARY"
    else
        export NAS_MINUTES=$(awk "BEGIN{printf \"%.2f\", $secs/60}")
        note "nasbench: --minutes $NAS_MINUTES"
        run nasbench $(($(left) - 10)) step_nasbench
    fi
    ;;
esac
note "done after $(($(date +%s) - START))s"
echo "total $(($(date +%s) - START))" >>"$SUMMARY"
rm -f "$MARK"
cat "$SUMMARY"
ls -la "$OUT"
