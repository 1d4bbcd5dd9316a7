"""MNIST's idx files, read and checked by us: a wrong, truncated or swapped file is one clear message.

The format (yann.lecun.com/exdb/mnist): a big-endian magic number 0x000008NN (0x08: unsigned bytes,
NN: the number of dimensions), NN big-endian uint32 sizes, then exactly their product in bytes.
Labels are 0x00000801 (N), images 0x00000803 (N×rows×cols). Files may be the unzipped ones
torchvision keeps or the original `.gz` (gzip is recognised by its content, whatever the name).
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import ResnasError
from ..memory import check_room

MAGIC = {"labels": (0x00000801, 1), "images": (0x00000803, 3)}
_CHUNK = 1 << 24


def _describe(magic: int) -> str:
    """What a magic number says a file is, for a message about the wrong one."""
    if magic >> 8 == 0x08 and 1 <= magic & 0xFF <= 4:
        dims = magic & 0xFF
        return f"an idx file of {dims} dimension(s)" + {1: " (labels)", 3: " (images)"}.get(dims, "")
    if magic >> 16 == 0x1F8B:
        return "gzip data"
    return "not an idx file"


def read_idx(path: Path, kind: str) -> np.ndarray:
    """The uint8 array in an idx file of `kind` ("labels" or "images"), or an error naming the file and
    what is wrong: the magic number, the announced sizes against the bytes there, unreadable gzip."""
    expected, ndim = MAGIC[kind]
    try:
        with open(path, "rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
        with gzip.open(path, "rb") if gzipped else open(path, "rb") as f:
            head = f.read(4)
            magic = int.from_bytes(head, "big")
            if len(head) < 4 or magic != expected:
                got = f"its first bytes are {head.hex() or 'missing (empty file)'}"
                if len(head) == 4:
                    got = f"its magic number is 0x{magic:08x}, {_describe(magic)}"
                raise ResnasError(
                    f"{path}: not an idx {kind} file: {got}; idx {kind} start with 0x{expected:08x} "
                    f"(unsigned bytes, {ndim} dimension(s))",
                    field="dataset",
                )
            dims_raw = f.read(4 * ndim)
            if len(dims_raw) < 4 * ndim:
                raise ResnasError(f"{path}: ends inside its header ({ndim} sizes expected)", field="dataset")
            dims = struct.unpack(f">{ndim}I", dims_raw)
            size = math.prod(dims)
            check_room(size, f"{path} (header: {'x'.join(map(str, dims))})")
            body = bytearray()
            while len(body) <= size:  # one byte past the announced size tells a file with extra bytes
                chunk = f.read(min(_CHUNK, size + 1 - len(body)))
                if not chunk:
                    break
                body += chunk
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        why = f"corrupt gzip data, {e}" if isinstance(e, (zlib.error, EOFError)) else str(e)
        raise ResnasError(f"{path}: cannot be read ({why})", field="dataset") from None
    if len(body) != size:
        shape = "x".join(map(str, dims))
        amount = "more" if len(body) > size else f"only {len(body):,}"
        raise ResnasError(
            f"{path}: its header announces {shape} = {size:,} bytes of {kind} but the file holds {amount} "
            f"bytes after the header (truncated, or not the file it is named)",
            field="dataset",
        )
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)  # a bytearray: writable, no copy
