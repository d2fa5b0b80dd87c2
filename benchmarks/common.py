"""Shared setup for the asv suites: the grid, the thread count, models built once per process.

Grid (environment variables, read when asv discovers the suite, so set them for `asv run`):
  UNET_BENCH_ENCODERS  comma-separated timm encoders (default: one of each encoder kind)
  UNET_BENCH_FLAGS     comma-separated flag sets, each "a+b", "none" or a best_* alias
  UNET_BENCH_SIZE      input height and width (default 256; batch is 1)
  UNET_BENCH_THREADS   torch intra-op threads (default 2, recorded by track_threads)
`asv run -b 'time_forward'` and `-b 'resnet34'` select benchmarks by regex, as usual.
"""

from __future__ import annotations

import os
import warnings

import torch

from unet_decoder import FLAGS, UNet, optimize
from unet_decoder.errors import FlagError

# asv runs today's benchmarks against every commit's own build, older ones included: import
# from the layout grouped by concern, falling back to the flat modules of earlier commits.
# measure, pixel_agreement and relative_error are re-exported for metrics.py and model.py.
try:
    from unet_decoder.passes import (
        check_applicable,
        parse_flags,
        pixel_agreement,
        relative_error,
    )
    from unet_decoder.tracking import measure
except ImportError:
    from unet_decoder.accuracy import pixel_agreement, relative_error  # noqa: F401
    from unet_decoder.optimize import check_applicable, parse_flags

    from unet_decoder import measure  # noqa: F401

warnings.filterwarnings("ignore", category=UserWarning)

DEFAULT_ENCODERS = "resnet34,efficientnet_b0,mobileone_s0,convnext_atto"
DEFAULT_FLAGS = (
    "none,inference_mode,channels_last,fuse_bn,reparam,bf16,best_eager,best_compiled,best_int8"
)


def _env_list(name: str, default: str) -> list[str]:
    return [v.strip() for v in os.environ.get(name, default).split(",") if v.strip()]


ENCODERS = _env_list("UNET_BENCH_ENCODERS", DEFAULT_ENCODERS)
FLAG_SETS = _env_list("UNET_BENCH_FLAGS", DEFAULT_FLAGS)
SIZE = int(os.environ.get("UNET_BENCH_SIZE", "256"))
THREADS = int(os.environ.get("UNET_BENCH_THREADS", "2"))

# best_* aliases: every exact pass that applies to the encoder (reparam only where it has
# reparameterizable blocks), plus the named extra. Resolved per encoder, always the same way.
BEST = {
    "best_eager": ["reparam", "fuse_bn", "channels_last", "inference_mode"],
    "best_compiled": ["reparam", "fuse_bn", "channels_last", "compile", "inference_mode"],
    "best_int8": ["reparam", "fuse_bn", "channels_last", "int8", "inference_mode"],
}

_models: dict[str, UNet] = {}
_trained: dict[str, object] = {}
_runners: dict[tuple[str, str], object] = {}


def model(encoder: str) -> UNet:
    if encoder not in _models:
        torch.manual_seed(0)
        _models[encoder] = UNet(encoder).eval()
    return _models[encoder]


def example_input() -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(1, 3, SIZE, SIZE, generator=generator)


def resolve(encoder: str, flags: str) -> list[str]:
    """The concrete flag list for a grid entry; NotImplementedError (asv: n/a) if inapplicable."""
    m = model(encoder)
    if flags in BEST:
        names = [f for f in BEST[flags] if FLAGS[f].applies_to(m)]
    else:
        names = parse_flags(flags)
    try:
        check_applicable(m, names)
    except FlagError as e:
        raise NotImplementedError(str(e)) from None
    return names


def runner(encoder: str, flags: str):
    """The optimized model for a grid entry, built (and compiled) once per process."""
    key = (encoder, flags)
    if key not in _runners:
        names = resolve(encoder, flags)
        _runners[key] = optimize(model(encoder), names, example_input(), threads=THREADS)
    torch.set_num_threads(THREADS)
    return _runners[key]


def trained(encoder: str):
    """The encoder's UNet trained on the synthetic task (cached per machine), with the
    held-out images and masks accuracy is judged on and the images int8 calibrates on."""
    if encoder not in _trained:
        try:
            from unet_decoder.training import make_batch, trained_unet
            from unet_decoder.training.task import CALIBRATION_SEED, HELD_OUT_SEED
        except ImportError:  # a commit from before trained weights existed
            raise NotImplementedError("this commit has no unet_decoder.training") from None
        result = trained_unet(encoder)
        _trained[encoder] = (
            result,
            make_batch(16, SIZE, seed=HELD_OUT_SEED),
            make_batch(8, SIZE, seed=CALIBRATION_SEED),
        )
    return _trained[encoder]
