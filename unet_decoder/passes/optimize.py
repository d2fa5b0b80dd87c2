"""`optimize(model, flags, example_input)`: apply passes in canonical order, warm up, time setup."""

from __future__ import annotations

import contextlib
import copy
import difflib
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import FlagError, InputError
from .registry import CONFLICTS, FLAGS, Pass, Pipeline, inductor_config, no_grad_context

if TYPE_CHECKING:
    from ..engines.deploy import EngineModel


def parse_flags(flags: str | Iterable[str] | None) -> list[str]:
    """Accept ["a", "b"], "a,b", "a+b" or "none"/None; return canonical order, validated."""
    if flags is None:
        return []
    items = flags.replace("+", ",").split(",") if isinstance(flags, str) else list(flags)
    names = [f.strip() for f in items if f.strip() and f.strip() != "none"]
    for name in names:
        if name not in FLAGS:
            close = difflib.get_close_matches(name, FLAGS, n=2)
            hint = f" Did you mean {' or '.join(close)}?" if close else ""
            raise FlagError(
                f"Unknown optimization flag {name!r}.{hint} Known flags: {', '.join(FLAGS)}."
            )
    chosen = set(names)
    for pair, why in CONFLICTS.items():
        if pair <= chosen:
            raise FlagError(f"Flags {' and '.join(sorted(pair))} conflict: {why}.")
    return [name for name in FLAGS if name in chosen]


def check_applicable(model: nn.Module, names: Sequence[str]) -> None:
    """An inapplicable flag is an error, never a silent no-op reported as a speedup."""
    for name in names:
        flag: Pass = FLAGS[name]
        if not flag.applies_to(model):
            encoder = getattr(model, "encoder_name", type(model).__name__)
            raise FlagError(
                f"Flag {name!r} does not apply to encoder {encoder!r}: {flag.why_not}. "
                "Drop it from the flag set."
            )


def flags_label(names: Sequence[str]) -> str:
    """The canonical name of a flag set, as benchmarks and results files spell it."""
    return "+".join(names) if names else "none"


class OptimizedModel:
    """What `optimize` returns: call it like the model; it records how it was made.

    `setup_seconds` is the one-off cost (reparameterization, folding, calibration, compilation
    and warm-up calls) that steady-state timings must not include.
    """

    def __init__(self, pipeline: Pipeline, flags: list[str], in_chans: int, threads: int) -> None:
        self.module = pipeline.module
        self.flags = flags
        self.label = flags_label(flags)
        self.threads = threads
        self.in_chans = in_chans
        self.setup_seconds = 0.0
        self.notes = dict(pipeline.notes)
        self._pipeline = pipeline

    def _check(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise InputError(f"Expected a 4D input (batch, channels, height, width), got {shape}")
        if x.shape[1] != self.in_chans:
            raise InputError(
                f"Input has {x.shape[1]} channels but the model was built with "
                f"in_chans={self.in_chans}."
            )
        static = self._pipeline.static_shape
        if static is not None and tuple(x.shape) != static:
            raise InputError(
                f"This int8 model was exported for inputs of shape {static}, got "
                f"{tuple(x.shape)}; call optimize() again with an example_input of that shape."
            )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        p = self._pipeline
        autocast = (
            torch.autocast("cpu", dtype=p.autocast_dtype)
            if p.autocast_dtype is not None
            else contextlib.nullcontext()
        )
        with no_grad_context(p), autocast, inductor_config(p):
            y = self.module(x.contiguous(memory_format=p.memory_format))
        return y.float() if y.dtype != torch.float32 else y

    def __repr__(self) -> str:
        return f"OptimizedModel(flags={self.label!r}, threads={self.threads})"


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
    in_chans = getattr(model, "in_chans", 3)
    if example_input is None:
        example_input = torch.randn(1, in_chans, 256, 256)
    batches = list(calibration) if calibration is not None else [example_input]
    if backend != "torch":
        from ..engines.deploy import deploy

        return deploy(model, names, example_input, backend=backend,
                      threads=torch.get_num_threads(), calibration=batches,
                      warmup=warmup, onnx_cache=onnx_cache)  # fmt: skip
    start = time.perf_counter()
    module = copy.deepcopy(model).eval()
    pipeline = Pipeline(module=module, example_input=example_input, calibration=batches)
    for name in names:
        FLAGS[name].apply(pipeline)
    if pipeline.compile:
        pipeline.module = torch.compile(pipeline.module)
    result = OptimizedModel(pipeline, names, in_chans, torch.get_num_threads())
    for _ in range(warmup):
        result(example_input)
    result.setup_seconds = time.perf_counter() - start
    return result
