"""A trained network as an ONNX file that says what it expects: by default it takes plain [0, 1] pixels
and normalises them inside the graph, and its metadata carries the preprocessing record (mean, std,
size, channels, class names), so the file alone is enough to use it.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, cast

from ..arch.description import Arch
from ..errors import ResnasError
from ..files import write_atomic
from ..training.checkpoint import trained_model
from .preprocessing import ONNX_INPUT_HELP, Normalised, check_onnx_input


def onnx_module(checkpoint_path: str, preprocessing: dict, kind: str = "raw") -> tuple[Normalised, Arch]:
    """The module that goes into the ONNX file (the trained network behind the input `kind` asks for)
    and its arch."""
    net, state = trained_model(checkpoint_path)
    arch = Arch.from_dict(state["arch"])
    return Normalised(net.eval(), preprocessing["mean"], preprocessing["std"], kind).eval(), arch


def write_onnx(checkpoint_path: str, path: str | Path, preprocessing: dict, kind: str = "raw") -> Path:
    """The trained network as ONNX (batch, height and width dynamic), input as `kind` says
    (`ONNX_INPUTS`), the preprocessing record in the model's metadata_props."""
    import warnings

    import onnx
    import torch

    check_onnx_input(kind)
    model, arch = onnx_module(checkpoint_path, preprocessing, kind)
    dtype = torch.uint8 if kind == "uint8" else torch.float32
    x = torch.zeros(1, arch.in_channels, preprocessing["height"], preprocessing["width"], dtype=dtype)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                model,
                (x,),
                cast(Any, buffer),  # a file object works; torch's annotation names only paths
                dynamo=False,
                input_names=["images"],
                output_names=["logits"],
                dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch"}},
            )
        except Exception as e:  # noqa: BLE001 - exporter failures are reported, not raised as tracebacks
            raise ResnasError(
                f"ONNX export of {arch.summary()} failed: {type(e).__name__}: {e}", field="--onnx"
            ) from None
    proto = onnx.load_from_string(buffer.getvalue())
    describe(proto, preprocessing, kind, arch.summary())
    data = proto.SerializeToString()
    return write_atomic(path, lambda f: f.write(data), field="--out")


def describe(proto, preprocessing: dict, kind: str, summary: str) -> None:
    """Write what the model expects into its metadata_props and doc strings (Netron and onnxruntime's
    `get_modelmeta()` show them)."""
    import onnx

    props = {
        "resnas.input": kind,
        "resnas.input_expects": ONNX_INPUT_HELP[kind],
        "resnas.preprocessing": json.dumps(preprocessing),
        "resnas.mean": json.dumps(preprocessing["mean"]),
        "resnas.std": json.dumps(preprocessing["std"]),
        "resnas.class_names": json.dumps(preprocessing.get("class_names")),
        "resnas.arch": summary,
    }
    onnx.helper.set_model_props(proto, props)
    proto.doc_string = f"resnas {summary}; input 'images': {ONNX_INPUT_HELP[kind]}; output 'logits' N x classes"
    proto.graph.input[0].doc_string = ONNX_INPUT_HELP[kind]
