"""What an exported ONNX model takes as input, in words: kept apart from `preprocessing` (which needs
torch) so that `resnas export --help` and a mistyped `--onnx-input` import nothing heavy."""

from __future__ import annotations

from ..errors import ResnasError

ONNX_INPUTS = ("raw", "uint8", "normalized")
ONNX_INPUT_HELP = {
    "raw": "float32 N x C x H x W pixels in [0, 1]; the normalisation is inside the graph",
    "uint8": "uint8 N x C x H x W pixels 0..255; the scaling and normalisation are inside the graph",
    "normalized": "float32 N x C x H x W already normalised as (pixels / 255 - mean) / std",
}


def check_onnx_input(kind: str) -> str:
    if kind not in ONNX_INPUTS:
        raise ResnasError(f"must be one of {', '.join(ONNX_INPUTS)}; got {kind!r}", field="--onnx-input")
    return kind
