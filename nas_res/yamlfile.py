"""Reading a user's YAML (or JSON) file: every way it can fail is one message naming the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import ResnasError

MAX_BYTES = 1 << 20  # templates, arch, recipe and study files are a few KB; /dev/zero is not one


def read_yaml(path: str | Path, what: str = "file") -> Any:
    """`yaml.safe_load` of the file (JSON is YAML too), read up to `MAX_BYTES`; `what` names the kind of
    file in messages."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise ResnasError(
                f"more than {MAX_BYTES >> 20} MiB; a {what} is a short YAML text (is this the right file?)",
                where=str(path),
            )
        text = raw.decode("utf-8")
    except OSError as err:
        raise ResnasError(f"cannot read {what} ({err.strerror or err})", where=str(path)) from None
    except UnicodeDecodeError as err:
        raise ResnasError(
            f"not a text file: byte {err.start} is not UTF-8; a {what} is YAML text", where=str(path)
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ResnasError(f"not valid YAML: {' '.join(str(err).split())}", where=str(path)) from None
    except RecursionError:
        raise ResnasError(f"not a usable {what}: YAML nested too deeply", where=str(path)) from None
