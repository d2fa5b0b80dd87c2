"""The engines as `optimize` backends: export once, hand the graph to the engine, same contract.

A backend run is judged exactly like a torch flag set: its logits against the plain fp32
eager model, within the budget of its precision flag (exact, bf16 or int8). Only the flags
that rewrite the model itself (reparam, fuse_bn) are applied before export; each engine
plans its own memory layout and graph, so torch's runtime flags do not apply to it.
"""

from __future__ import annotations

import copy
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import FlagError, InputError
from ..passes.optimize import flags_label
from ..passes.registry import FLAGS, Pipeline
from .export import export_onnx, require

#: Flags applied to the torch module before export (they change the model, not how it runs).
MODEL_REWRITES = ("reparam", "fuse_bn")


@dataclass(frozen=True)
class Backend:
    name: str
    precisions: tuple[str, ...]  # "fp32" is the absence of a precision flag
    packages: tuple[str, ...]  # what export, build and calibration import

    def require(self, what: str) -> None:
        """One line naming the extra to install when a package is missing."""
        for package in self.packages:
            require(package, what)

    def why_not(self, flag: str) -> str | None:
        if flag in MODEL_REWRITES or flag in self.precisions:
            return None
        if flag in ("int8", "bf16"):
            return f"{self.name} has no {flag} CPU kernels for this model"
        return f"it is a torch runtime flag; {self.name} plans its own layout and graph"


BACKENDS: dict[str, Backend] = {
    # ORT_ENABLE_ALL; int8: static QDQ, u8 activations, s8 per-channel weights
    "onnxruntime": Backend("onnxruntime", ("int8",), ("onnxscript", "onnxruntime")),
    # explicit precision hint; int8: NNCF post-training quantization
    "openvino": Backend("openvino", ("bf16", "int8"), ("onnxscript", "openvino", "nncf")),
}


def check_backend(backend: str, names: Sequence[str]) -> Backend:
    """The backend, or a one-line FlagError naming what to change."""
    if backend not in BACKENDS:
        raise FlagError(f"Unknown backend {backend!r}; pick torch or one of {', '.join(BACKENDS)}.")
    chosen = BACKENDS[backend]
    for name in names:
        why = chosen.why_not(name)
        if why:
            raise FlagError(f"Flag {name!r} does not apply to the {backend} backend: {why}.")
    return chosen


def check_cpu(backend: str, names: Sequence[str]) -> None:
    """A precision the engine would not really run on this CPU is refused, never reported
    under its name: OpenVINO ignores its bf16 hint where its CPU plugin has no BF16 (no
    avx512_bf16 or AMX) and runs fp32. Needs the engine installed."""
    if backend == "openvino" and "bf16" in names:
        from .openvino import has_native_bf16

        if not has_native_bf16():
            raise FlagError(
                "Flag 'bf16' does not apply to the openvino backend on this CPU: OpenVINO "
                "has no BF16 kernels here and would run fp32; drop bf16."
            )


class EngineModel:
    """What `optimize(..., backend=...)` returns: call it like the model (torch tensor in,
    fp32 torch logits out). The engine was built for `example_input`'s shape."""

    def __init__(self, runner, backend: str, flags: list[str], in_chans: int, threads: int,
                 shape: tuple[int, ...]) -> None:  # fmt: skip
        self.runner = runner
        self.backend = backend
        self.flags = flags
        self.label = f"{backend}+{flags_label(flags)}" if flags else backend
        self.in_chans = in_chans
        self.threads = threads
        self.shape = shape
        self.setup_seconds = 0.0
        self.notes: dict[str, object] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or tuple(x.shape) != self.shape:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise InputError(
                f"This {self.backend} model was built for inputs of shape {self.shape}, got "
                f"{got}; call optimize() again with an example_input of that shape."
            )
        return self.runner(x.detach().float().contiguous())

    def __repr__(self) -> str:
        return f"EngineModel({self.label!r}, threads={self.threads})"


def export_key(module: nn.Module, example_input: torch.Tensor) -> str:
    """What an exported graph depends on: every weight and buffer, the input shape, the
    model's class, and the torch and onnxscript versions (the exporter)."""
    import onnxscript

    from ..model.checkpoint import state_digest
    from .export import OPSET

    header = (
        type(module).__qualname__,
        getattr(module, "encoder_name", ""),
        tuple(example_input.shape),
        torch.__version__,
        onnxscript.__version__,
        OPSET,
    )
    return state_digest(module, header)[:24]


def cached_export(module: nn.Module, example_input: torch.Tensor, folder: Path) -> Path:
    """Export once per (weights, shape, versions) into `folder` and reuse it after: the asv
    suites build every engine entry of an encoder from one export per run."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{export_key(module, example_input)}.onnx"
    if not path.is_file():  # export_onnx renames into place: a file present is complete
        export_onnx(module, path, example_input, dynamic=False)
    return path


def deploy(
    model: nn.Module,
    names: list[str],
    example_input: torch.Tensor,
    *,
    backend: str,
    threads: int,
    calibration: list[torch.Tensor],
    warmup: int,
    onnx_cache: str | Path | None = None,
) -> EngineModel:
    """Rewrite (reparam, fuse_bn), export at `example_input`'s shape, build the engine.

    `onnx_cache`: a folder where exported graphs are kept and reused (see `cached_export`).
    """
    chosen = check_backend(backend, names)
    chosen.require(f"The {backend} backend")
    check_cpu(backend, names)
    start = time.perf_counter()
    pipeline = Pipeline(copy.deepcopy(model).eval(), example_input, calibration)
    for name in names:
        if name in MODEL_REWRITES:
            FLAGS[name].apply(pipeline)
    precision = next((n for n in names if n in chosen.precisions), "fp32")
    if backend == "onnxruntime":
        from .onnxruntime import build
    else:
        from .openvino import build
    with tempfile.TemporaryDirectory(prefix=f"unet-decoder-{backend}-") as tmp:
        if onnx_cache is None:
            onnx = export_onnx(pipeline.module, Path(tmp) / "model.onnx", example_input,
                               dynamic=False)  # fmt: skip
        else:
            onnx = cached_export(pipeline.module, example_input, Path(onnx_cache))
        runner = build(onnx, precision, threads, calibration)
    result = EngineModel(runner, backend, names, getattr(model, "in_chans", 3), threads,
                         tuple(example_input.shape))  # fmt: skip
    for _ in range(warmup):
        result(example_input)
    result.setup_seconds = time.perf_counter() - start
    return result
