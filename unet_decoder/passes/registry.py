"""The optimization passes: one small, documented transform per flag, in a canonical order.

Each pass edits a `Pipeline` (the module being built and how it will be called); `optimize`
applies the chosen passes sorted by `order` (`policy.parse_flags`), so any subset composes the
same way: reparam -> fuse_bn -> concat_free -> channels_last -> int8 | bf16 -> compile ->
inference_mode (wraps the call).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from .concat_free import has_concat_blocks, remove_concats
from .fusion import REPARAM_METHODS, fold_conv_bn

#: Relative L2 error budget against the plain fp32 eager model (see tests/test_passes.py).
EXACT_TOLERANCE = 1e-4
BF16_TOLERANCE = 3e-2
INT8_TOLERANCE = 5e-2
INT8_MIN_PIXEL_AGREEMENT = 0.98
#: Share of pixels whose class must not change, on trained weights and held-out images.
EXACT_MIN_PIXEL_AGREEMENT = 0.999
BF16_MIN_PIXEL_AGREEMENT = 0.99


@dataclass
class Pipeline:
    """The model under construction and how `OptimizedModel.__call__` will run it."""

    module: nn.Module
    example_input: torch.Tensor
    calibration: list[torch.Tensor]
    memory_format: torch.memory_format = torch.contiguous_format
    autocast_dtype: torch.dtype | None = None
    compile: bool = False
    inference_mode: bool = False
    static_shape: tuple[int, ...] | None = None
    notes: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Pass:
    name: str
    description: str
    order: int
    tolerance: float
    apply: Callable[[Pipeline], None]
    applies_to: Callable[[nn.Module], bool] = lambda model: True
    why_not: str = ""

    @property
    def exact(self) -> bool:
        """Exact-math passes change rounding only, never the arithmetic precision."""
        return self.tolerance <= EXACT_TOLERANCE


def _has_reparam_blocks(model: nn.Module) -> bool:
    encoder = getattr(model, "encoder", model)
    return any(
        callable(getattr(m, name, None)) for m in encoder.modules() for name in REPARAM_METHODS
    )


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def _reparam(p: Pipeline) -> None:
    from timm.utils.model import reparameterize_model

    p.module = reparameterize_model(p.module, inplace=True)


def _fuse_bn(p: Pipeline) -> None:
    p.notes["folded_conv_bn"] = fold_conv_bn(p.module, p.example_input)


def _concat_free(p: Pipeline) -> None:
    p.notes["concats_removed"] = remove_concats(p.module)


def _channels_last(p: Pipeline) -> None:
    p.memory_format = torch.channels_last
    p.module = p.module.to(memory_format=torch.channels_last)


def _bf16(p: Pipeline) -> None:
    p.autocast_dtype = torch.bfloat16


def _int8(p: Pipeline) -> None:
    from ..machine import int8_needs_reduced_range
    from .quantize import quantize_int8

    p.notes["int8_activation_bits"] = 7 if int8_needs_reduced_range() else 8
    batches = [x.contiguous(memory_format=p.memory_format) for x in p.calibration]
    p.module = quantize_int8(p.module, batches)
    p.static_shape = tuple(p.example_input.shape)
    p.compile = True


def _compile(p: Pipeline) -> None:
    p.compile = True


def _inference_mode(p: Pipeline) -> None:
    p.inference_mode = True


PASSES: tuple[Pass, ...] = (
    Pass(
        "reparam",
        "RepVGG/MobileOne/FastViT: merge train-time branches into one conv (timm)",
        10,
        EXACT_TOLERANCE,
        _reparam,
        _has_reparam_blocks,
        "its encoder has no reparameterizable (RepVGG/MobileOne-style) blocks",
    ),
    Pass(
        "fuse_bn",
        "fold every BatchNorm2d into the conv that feeds it (encoder and decoder)",
        20,
        EXACT_TOLERANCE,
        _fuse_bn,
        _has_batchnorm,
        "it has no BatchNorm2d to fold",
    ),
    Pass(
        "concat_free",
        "decoder convs split by input, conv(cat(up, skip)) = conv(up) + conv(skip): no concat",
        25,
        EXACT_TOLERANCE,
        _concat_free,
        has_concat_blocks,
        "it has no UNet decoder block that concatenates its skip",
    ),
    Pass(
        "channels_last",
        "NHWC memory format for weights and input (oneDNN's native conv layout)",
        30,
        EXACT_TOLERANCE,
        _channels_last,
    ),
    Pass(
        "int8",
        "PT2E static int8 quantization for x86 (torchao X86InductorQuantizer), compiled",
        40,
        INT8_TOLERANCE,
        _int8,
    ),
    Pass(
        "bf16",
        'torch.autocast("cpu", dtype=torch.bfloat16) around the forward; fp32 logits out',
        41,
        BF16_TOLERANCE,
        _bf16,
    ),
    Pass(
        "compile",
        "torch.compile (inductor) with freezing: weights become constants, convs prepacked",
        50,
        EXACT_TOLERANCE,
        _compile,
    ),
    Pass(
        "inference_mode",
        "run under torch.inference_mode() instead of building an autograd graph",
        90,
        EXACT_TOLERANCE,
        _inference_mode,
    ),
)

#: name -> Pass, in canonical order.
FLAGS: dict[str, Pass] = {p.name: p for p in sorted(PASSES, key=lambda p: p.order)}

#: Flags that cannot be combined, with the reason.
CONFLICTS: dict[frozenset[str], str] = {
    frozenset({"int8", "bf16"}): "int8 and bf16 are alternative precisions; pick one",
}


def no_grad_context(p: Pipeline) -> contextlib.AbstractContextManager:
    """inference_mode if asked; no_grad for compiled graphs (freezing needs it); else nothing."""
    if p.inference_mode:
        return torch.inference_mode()
    if p.compile:
        return torch.no_grad()
    return contextlib.nullcontext()


def inductor_config(p: Pipeline) -> contextlib.AbstractContextManager:
    """Inductor settings for compiled graphs, active whenever a (re)compile can happen.

    Freezing turns weights into constants so convs are prepacked once (and int8 q/dq pairs fold
    into oneDNN int8 kernels). It must be the global config during compilation:
    `torch.compile(options={"freezing": True})` fails on int8 graphs (torch 2.14).
    """
    if not p.compile:
        return contextlib.nullcontext()
    import torch._inductor.config as inductor

    return inductor.patch(freezing=True)
