"""`optimize(model, flags, example_input)`: the public entry that runs a flag set in torch or
in an engine, under one accuracy contract.

It sits above both `passes` (torch) and `engines`, which it dispatches to, so that neither of
them needs the other's runtime.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from ..engines.runner import EngineModel, build_engine
from ..errors import FlagError
from ..passes.optimized import OptimizedModel, apply_passes
from ..passes.policy import check_applicable, parse_flags


def optimize(
    model: nn.Module,
    flags: str | Iterable[str] | None = (),
    example_input: torch.Tensor | None = None,
    *,
    threads: int | None = None,
    calibration: Iterable[torch.Tensor] | None = None,
    warmup: int = 2,
    backend: str = "torch",
    onnx_cache: str | Path | None = None,
) -> OptimizedModel | EngineModel:
    """Return a callable running `model` with `flags` applied; `model` itself is not modified.

    `example_input` fixes the shape used for folding, calibration (int8, unless `calibration`
    batches are given) and compilation; by default a 1x{in_chans}x256x256 normal tensor.
    `threads` sets torch's intra-op thread count for the process (recorded on the result).
    `backend` "onnxruntime" or "openvino" exports the (reparameterized, folded) model and runs
    it in that engine at the precision flag's precision (`engines` extra), built for
    `example_input`'s shape; flags then may be reparam, fuse_bn and int8 or bf16.
    `onnx_cache` (engines only): a folder that keeps exported graphs for reuse.
    """
    names = parse_flags(flags)
    check_applicable(model, names)
    if threads is not None:
        if threads < 1:
            raise FlagError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    if example_input is None:
        example_input = torch.randn(1, getattr(model, "in_chans", 3), 256, 256)
    batches = list(calibration) if calibration is not None else [example_input]
    if backend != "torch":
        return build_engine(model, names, example_input, backend=backend,
                            threads=torch.get_num_threads(), calibration=batches,
                            warmup=warmup, onnx_cache=onnx_cache)  # fmt: skip
    return apply_passes(model, names, example_input, batches, warmup=warmup)
