"""The one way resnas writes a file a user keeps: to a temporary name beside it, then a rename.

A crash or a full disk mid-write leaves the old file (or none), never half a file; a file or link
already at the destination is replaced, never written through, so nothing outside the destination's
folder changes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .errors import ResnasError


def write_atomic(
    path: str | Path, write: Callable[[BinaryIO], object], *, durable: bool = False, field: str = ""
) -> Path:
    """Call `write(f)` on a new temporary file beside `path`, then rename it to `path`.

    `durable`: flush to the disk before the rename (a checkpoint a resumed run depends on). A folder
    in the way, or a write the system refuses, is a `ResnasError` naming the path (and `field`, the
    option that chose it)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise ResnasError(f"cannot write {path}: a folder of that name is in the way", field=field)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.unlink(missing_ok=True)  # a stale one (or a planted link) is removed, not written through
        with open(tmp, "xb") as f:
            write(f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise ResnasError(f"cannot write {path} ({e.strerror or e})", field=field) from None
    finally:
        with contextlib.suppress(OSError):  # its folder could not be made: nothing to remove
            tmp.unlink(missing_ok=True)
    return path


def write_text(path: str | Path, text: str, *, field: str = "") -> Path:
    return write_atomic(path, lambda f: f.write(text.encode()), field=field)


def check_writable(path: str | Path, *, field: str = "", folder: bool = False) -> Path:
    """Refuse, before any work, a destination that cannot be written: a path under a file, a file (or,
    with `folder`, a file where a folder should be) in the way, or a read-only place (permissions, or a
    read-only file system). Nothing is created; the nearest existing ancestor is what is checked."""
    path = Path(path).expanduser()
    if path.exists():
        if folder and not path.is_dir():
            raise ResnasError(f"cannot write into {path}: it is a file, not a folder", field=field)
        if not folder and path.is_dir():
            raise ResnasError(f"cannot write {path}: a folder of that name is in the way", field=field)
        target = path if path.is_dir() else path.parent
    else:
        target = path.parent
        while not target.exists() and target != target.parent:
            target = target.parent
        if not target.is_dir():
            raise ResnasError(f"cannot write {path}: {target} is a file, not a folder", field=field)
    if not os.access(target, os.W_OK | os.X_OK) or (path.is_file() and not os.access(path, os.W_OK)):
        why = "a read-only file system" if _read_only_fs(target) else "no permission to write there"
        raise ResnasError(f"cannot write {path}: {target} is not writable ({why})", field=field)
    return path


def _read_only_fs(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False
