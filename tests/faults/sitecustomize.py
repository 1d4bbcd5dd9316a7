"""Fault injection for tests/test_faults.py and test_orphans.py, for processes with this folder on PYTHONPATH.

RESNAS_TEST_FAULTS is a comma-separated list, one entry per network built, in order across every
worker process of the search (a counter file keeps the place across a worker that is replaced):
`raise` (an exception in the trial), `oom` (out of memory while building), `diverge` (NaN outputs),
`kill` (the worker process killed outright), `ok` (a normal trial). Networks past the list are normal.

RESNAS_TEST_SLOW_START=SECONDS delays every worker process before its own code runs (tests/test_orphans.py).
"""

import os

if os.environ.get("RESNAS_TEST_FAULTS"):
    import importlib
    import signal

    import torch

    train_module = importlib.import_module("nas_res.training.trainer")  # the package exports a function of that name

    faults = os.environ["RESNAS_TEST_FAULTS"].split(",")
    counter = os.environ["RESNAS_TEST_FAULTS_COUNTER"]
    real_build = train_module.build

    def faulty_build(arch):
        with open(counter, "a+") as f:
            f.seek(0)
            n = len(f.read())
            f.write("x")
        fault = faults[n] if n < len(faults) else "ok"
        if fault == "raise":
            raise RuntimeError(f"injected fault in build {n}")
        if fault == "oom":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB (injected)")
        if fault == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        model = real_build(arch)
        if fault == "diverge":
            model.fc.register_forward_hook(lambda m, i, o: o * float("nan"))
        return model

    train_module.build = faulty_build

if os.environ.get("RESNAS_TEST_SLOW_START") and "--multiprocessing-fork" in __import__("sys").argv:
    # a worker process that takes this long to start (as importing torch on a slow disk): room to kill
    # its coordinator before the worker's own code runs (tests/test_orphans.py)
    __import__("time").sleep(float(os.environ["RESNAS_TEST_SLOW_START"]))
