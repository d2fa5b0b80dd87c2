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
    """NNCF's post-training int8. Without VNNI, every layer's weights take 7 bits (NNCF's
    overflow fix; by default only the first layer's): int16 sums there saturate."""
    import nncf
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        OverflowFix,
    )

    from ..machine import int8_needs_reduced_range

    fix = OverflowFix.ENABLE if int8_needs_reduced_range() else OverflowFix.FIRST_LAYER
    dataset = nncf.Dataset([b.numpy() for b in calibration])
    return nncf.quantize(
        model, dataset, preset=nncf.QuantizationPreset.PERFORMANCE,
        subset_size=len(calibration),
        advanced_parameters=AdvancedQuantizationParameters(overflow_fix=fix),
    )  # fmt: skip


class OpenVinoRunner:
    """Calls an OpenVINO compiled model on torch tensors, returning fp32 torch logits."""

    def __init__(self, compiled) -> None:
        self.compiled = compiled
        self.request = compiled.create_infer_request()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        result = self.request.infer({0: x.numpy()}, share_inputs=True)
        return torch.from_numpy(result[self.compiled.output(0)].copy())


def prepare(model: Path, precision: str, calibration: Sequence[torch.Tensor]):
    """The OpenVINO model of the exported `model`, its shape fixed to the calibration
    batches' (OpenVINO plans static shapes best), NNCF-quantized for int8."""
    import openvino as ov

    graph = ov.Core().read_model(str(model))
    graph.reshape({0: list(calibration[0].shape)})
    return quantize_nncf(graph, calibration) if precision == "int8" else graph


def save(graph, out: Path) -> Path:
    """Write OpenVINO's IR (`out` .xml beside its .bin), weights kept in fp32: save_model's
    default compresses them to fp16, which would change an fp32 model's answers."""
    import openvino as ov

    ov.save_model(graph, str(out), compress_to_fp16=False)
    return out


def compile_runner(graph, precision: str, threads: int, *,
                   profiling: bool = False) -> OpenVinoRunner:  # fmt: skip
    """Compile an OpenVINO model (or an IR/ONNX path) for the CPU at `precision`;
    `profiling`: with per-layer performance counters (`census.profile`)."""
    import openvino as ov

    config = {
        "INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision],
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
        "PERF_COUNT": profiling,
    }
    if isinstance(graph, Path):
        graph = str(graph)
    return OpenVinoRunner(ov.Core().compile_model(graph, "CPU", config))


def plugin_runs_bf16() -> bool:
    """Whether OpenVINO's CPU plugin runs bf16 on this CPU (its own answer, which can differ
    from torch's: `machine.torch_has_native_bf16`); elsewhere the bf16 hint is ignored and a
    "bf16" model is the fp32 one under another name."""
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def build(
    model: Path, precision: str, threads: int, calibration: Sequence[torch.Tensor]
) -> OpenVinoRunner:
    """An OpenVINO runner of the exported `model` at `precision` (fp32, bf16 or int8)."""
    return compile_runner(prepare(model, precision, calibration), precision, threads)
