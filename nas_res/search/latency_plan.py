"""A study's latency, planned: `--max-latency` and `--objective accuracy+latency` measured as `--latency-on`
says, pinned with the study like its budget, and the refusal of a host whose device would time differently.

What a study stores (`SearchConfig.latency`): the limit in milliseconds (or None: the objective alone),
the setting, and the cache key its timings are kept under: the device's own name, batch, precision,
threads, mode and torch version. A host whose key differs would mix its device's latencies into the
study's, so it may not join or resume the study.
"""

from __future__ import annotations

from typing import Any

from ..errors import ResnasError
from ..latency.setting import Setting, parse_ms
from ..latency.timing import device_name, torch_version


def plan_latency(given: dict, stored: dict | None, objective: str, name: str) -> dict | None:
    """The study's latency section from the options (`max_latency`, `latency_on`) and the stored study (what
    is not given is taken from it; changing it is refused), or None where the study has no latency."""
    held = (stored or {}).get("latency")
    max_ms: Any = given.get("max_latency", held["max_ms"] if held else None)
    on: Any = given.get("latency_on", held["setting"] if held else None)
    if max_ms is None and objective != "accuracy+latency":
        if on is not None:
            raise ResnasError(
                "says how latency is measured, for --max-latency or --objective accuracy+latency: give one of them",
                field="--latency-on",
            )
        if stored is not None and held:
            raise ResnasError(f"study {name!r} has a latency limit, which a study cannot drop", field="--max-latency")
        return None
    setting = Setting.from_dict(on) if isinstance(on, dict) else Setting.parse(on) if on is not None else Setting()
    limit = None if max_ms is None else parse_ms(max_ms)
    key = setting.key(device_name(setting.device), torch_version())
    if stored is not None:
        if not held:
            raise ResnasError(
                f"study {name!r} was made without a latency; a latency limit or objective needs a new study",
                field="--max-latency" if limit is not None else "--objective",
            )
        if held["max_ms"] != limit or held["setting"] != setting.to_dict():
            raise ResnasError(
                f"study {name!r} measures latency as {_said(held['max_ms'], Setting.from_dict(held['setting']))}; "
                f"asked: {_said(limit, setting)}. A study keeps its limit and setting: start a new study",
                field="--max-latency",
            )
        if held["key"] != key:
            differ = ", ".join(f"{k} {held['key'][k]!r} here {key[k]!r}" for k in key if held["key"].get(k) != key[k])
            raise ResnasError(
                f"study {name!r} times its nets on {held['key']['device']!r}; this host's {setting.device} is "
                f"{key['device']!r} ({differ}): latencies from two devices do not compare. Join from a host "
                "with the same device, torch and threads, or start a new study",
                field="--latency-on",
            )
    return {"max_ms": limit, "setting": setting.to_dict(), "key": key}


def _said(limit: float | None, setting: Setting) -> str:
    return f"{'no limit' if limit is None else f'<= {limit:g} ms'} on {setting.describe()}"


def latency_note(latency: dict) -> str:
    """The banner's line: the limit and how candidates are measured against it."""
    setting = Setting.from_dict(latency["setting"])
    limit = "" if latency["max_ms"] is None else f"<= {latency['max_ms']:g} ms, "
    return (
        f"latency {limit}measured on {latency['key']['device']} ({setting.describe()}, torch "
        f"{latency['key']['torch']}) by this process while workers train: on a shared CPU pre-measure with "
        "resnas latency, which keeps timings for the search to read"
    )
