"""What a benchmark ran on, written next to its figures."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def describe() -> dict:
    import torch

    from nas_res.latency.setting import cpu_name

    cpu = cpu_name()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "gpu": gpu,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def write(name: str, figures: dict, command: str) -> Path:
    """bench/results/NAME-<cpu|gpu>.json with the figures, the machine and the command that made them."""
    info = describe()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{'gpu' if info['gpu'] else 'cpu'}.json"
    path.write_text(json.dumps({"command": command, "machine": info, "figures": figures}, indent=2) + "\n")
    return path
