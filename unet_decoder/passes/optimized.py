"""The torch side of `optimize`: apply passes in canonical order, warm up, time the setup."""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from ..errors import InputError
from .policy import flags_label
from .registry import FLAGS, Pipeline, inductor_config, no_grad_context


class OptimizedModel:
    """What `optimize` returns for torch: call it like the model; it records how it was made.

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


def apply_passes(
    model: nn.Module,
    names: Sequence[str],
    example_input: torch.Tensor,
    calibration: Iterable[torch.Tensor],
    *,
    warmup: int = 2,
) -> OptimizedModel:
    """`model` (not modified) with the validated, canonical `names` applied, warmed up."""
    start = time.perf_counter()
    module = copy.deepcopy(model).eval()
    pipeline = Pipeline(module=module, example_input=example_input, calibration=list(calibration))
    for name in names:
        FLAGS[name].apply(pipeline)
    if pipeline.compile:
        # static shapes: a model compiled for `example_input` and then called at another
        # shape is compiled again for that shape, never as a dynamic-shape graph (which
        # dynamo would switch to on the second shape, and where torch 2.14's inductor fails
        # on the decoder's pad arithmetic: "TensorReferenceAnalysis has no python_mod")
        pipeline.module = torch.compile(pipeline.module, dynamic=False)
    result = OptimizedModel(pipeline, list(names), getattr(model, "in_chans", 3),
                            torch.get_num_threads())  # fmt: skip
    for _ in range(warmup):
        result(example_input)
    result.setup_seconds = time.perf_counter() - start
    return result
