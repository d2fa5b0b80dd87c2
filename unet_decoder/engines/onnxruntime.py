"""ONNX Runtime sessions for the exported UNet: fp32, and static int8 (QDQ) calibrated on images.

int8 follows ONNX Runtime's own CPU guidance: QDQ format, uint8 activations, int8 weights
quantized per output channel. The signed-activation default (s8s8) leaves many convs in fp32
on x86 and runs 1.5-2x slower. On CPUs without VNNI, weights take 7 bits (`reduce_range`):
there u8 x s8 products are summed in saturating int16 (ORT's quantization docs). The graph
is pre-processed first (shape inference and fusions
via `quant_pre_process`), as the quantization docs recommend.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch


def session_options(threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: its warnings are about fusions it skipped
    return options


def quantize_qdq(model: Path, out: Path, calibration: Sequence[torch.Tensor]) -> Path:
    """Static int8: QDQ, u8 activations, s8 per-channel weights, min-max over `calibration`."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter([{"image": b.numpy()} for b in calibration])

        def get_next(self):
            return next(self._batches, None)

    from ..machine import int8_needs_reduced_range

    prepared = out.with_name(out.stem + ".pre.onnx")
    quant_pre_process(str(model), str(prepared), skip_symbolic_shape=True)
    quantize_static(
        str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
        reduce_range=int8_needs_reduced_range(),
    )  # fmt: skip
    return out


class OrtRunner:
    """Calls an ONNX Runtime session on torch tensors, returning fp32 torch logits."""

    def __init__(self, model: Path, threads: int) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(
            str(model), session_options(threads), providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        (y,) = self.session.run(None, {self.input_name: np.ascontiguousarray(x.numpy())})
        return torch.from_numpy(y)


def write_model(
    model: Path, precision: str, calibration: Sequence[torch.Tensor], out: Path
) -> Path:
    """The file ONNX Runtime runs at `precision`: the export itself (fp32) or its QDQ int8."""
    if precision == "int8":
        with tempfile.TemporaryDirectory(prefix="unet-decoder-ort-") as tmp:
            # quant_pre_process writes beside its output: keep that out of `out`'s folder
            shutil.move(quantize_qdq(model, Path(tmp) / "model.int8.onnx", calibration), out)
    else:
        shutil.copyfile(model, out)
    return out


def build(
    model: Path, precision: str, threads: int, calibration: Sequence[torch.Tensor]
) -> OrtRunner:
    """An ONNX Runtime runner of the exported `model` at `precision` ("fp32" or "int8")."""
    if precision == "fp32":
        return OrtRunner(model, threads)
    with tempfile.TemporaryDirectory(prefix="unet-decoder-ort-") as tmp:
        return OrtRunner(write_model(model, precision, calibration, Path(tmp) / "m.onnx"), threads)
