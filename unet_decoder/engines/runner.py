"""An engine as a callable model: export once, hand the graph to the engine, same contract."""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from ..errors import InputError
from ..passes.policy import MODEL_REWRITES, flags_label, precision_of
from ..passes.registry import FLAGS, Pipeline
from .backends import check_backend, check_cpu
from .export import export_onnx


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


def rewritten(model: nn.Module, names: list[str], example_input: torch.Tensor,
              calibration: list[torch.Tensor]) -> Pipeline:  # fmt: skip
    """A copy of `model` with the `MODEL_REWRITES` among `names` applied: what is exported."""
    pipeline = Pipeline(copy.deepcopy(model).eval(), example_input, calibration)
    for name in names:
        if name in MODEL_REWRITES:
            FLAGS[name].apply(pipeline)
    return pipeline


def export_for(module: nn.Module, example_input: torch.Tensor, tmp: Path,
               onnx_cache: str | Path | None) -> Path:  # fmt: skip
    """A static export of `module`: into `tmp`, or kept in `onnx_cache` for reuse."""
    if onnx_cache is None:
        return export_onnx(module, tmp / "model.onnx", example_input, dynamic=False)
    return cached_export(module, example_input, Path(onnx_cache))


def build_engine(
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
    check_backend(backend, names).require(f"The {backend} backend")
    check_cpu(backend, names)
    start = time.perf_counter()
    pipeline = rewritten(model, names, example_input, calibration)
    if backend == "onnxruntime":
        from .onnxruntime import build
    else:
        from .openvino import build
    with tempfile.TemporaryDirectory(prefix=f"unet-decoder-{backend}-") as tmp:
        onnx = export_for(pipeline.module, example_input, Path(tmp), onnx_cache)
        runner = build(onnx, precision_of(names), threads, calibration)
    result = EngineModel(runner, backend, names, getattr(model, "in_chans", 3), threads,
                         tuple(example_input.shape))  # fmt: skip
    for _ in range(warmup):
        result(example_input)
    result.setup_seconds = time.perf_counter() - start
    return result
