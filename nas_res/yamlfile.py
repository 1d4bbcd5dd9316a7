"""Reading a user's YAML (or JSON) file: every way it can fail is one message naming the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import ResnasError


def read_yaml(path: str | Path, what: str = "file") -> Any:
    """`yaml.safe_load` of the file (JSON is YAML too); `what` names the kind of file in messages."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
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
