"""OpenVINO compiled models for the exported UNet: fp32, bf16, and NNCF int8.

The inference precision is always set explicitly: on CPUs with AMX or avx512_bf16 OpenVINO
silently runs bf16 when no hint is given, so an "fp32" number taken with its defaults would
be a bf16 number. int8 is NNCF's post-training quantization (the PERFORMANCE preset,
symmetric activations and weights), calibrated on the same images as torch's int8.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

#: Our precision names -> OpenVINO's INFERENCE_PRECISION_HINT. int8 layers run in int8 and
#: the layers NNCF leaves in floating point run in fp32, so int8 keeps exact fp32 elsewhere.
PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


def quantize_nncf(model, calibration: Sequence[torch.Tensor]):
    import nncf

    dataset = nncf.Dataset([b.numpy() for b in calibration])
    return nncf.quantize(
        model, dataset, preset=nncf.QuantizationPreset.PERFORMANCE,
        subset_size=len(calibration),
    )  # fmt: skip


class OpenVinoRunner:
    """Calls an OpenVINO compiled model on torch tensors, returning fp32 torch logits."""

    def __init__(self, compiled) -> None:
        self.compiled = compiled
        self.request = compiled.create_infer_request()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        result = self.request.infer({0: x.numpy()}, share_inputs=True)
        return torch.from_numpy(result[self.compiled.output(0)].copy())


def build(
    model: Path, precision: str, threads: int, calibration: Sequence[torch.Tensor]
) -> OpenVinoRunner:
    """An OpenVINO runner of the exported `model` at `precision` (fp32, bf16 or int8), its
    shape fixed to the calibration batches' (OpenVINO plans static shapes best)."""
    import openvino as ov

    core = ov.Core()
    graph = core.read_model(str(model))
    graph.reshape({0: list(calibration[0].shape)})
    if precision == "int8":
        graph = quantize_nncf(graph, calibration)
    config = {
        "INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision],
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
    }
    return OpenVinoRunner(core.compile_model(graph, "CPU", config))
