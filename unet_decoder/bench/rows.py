"""One row of `unet-decoder bench` (and one asv grid entry): a flag set built, judged and timed.

Each row is measured the same way: optimize (setup timed apart, int8 calibrated on images the
row is not judged on), then a median of many calls, the forward's own peak memory, and the
accuracy on held-out images against the plain fp32 eager model (relative error, pixel
agreement) and against the ground truth (mIoU) when there is one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..deploy.optimize import optimize
from ..engines.backends import ENGINE_SETS, check_cpu
from ..errors import FlagError
from ..machine import torch_has_native_bf16
from ..passes.accuracy import mean_iou, pixel_agreement, relative_error
from ..passes.policy import (
    best_flags,
    budget_of,
    check_applicable,
    flags_label,
    parse_flags,
    precision_of,
    rewrites_for,
)
from ..passes.registry import FLAGS
from .measure import Timing, forward_peak_mb, time_call
from .subjects import Subject

#: Why the default leaves the bf16 rows out on a CPU without native bf16: torch emulates
#: bf16 there, slower than fp32 (5.8x on a 2-core AVX2 VM), and judging the emulated rows on
#: the held-out images took 8 minutes of setup. Such rows say nothing about bf16 on a CPU
#: that has it; `--flags` still measures them on request.
EMULATED_BF16_NOTE = (
    "bf16 rows left out: this CPU has no native bf16 (no avx512_bf16 or amx_bf16), so torch "
    "would emulate it, slower than fp32; measure the emulation anyway with --flags, e.g. "
    "--flags none bf16"
)


def default_flag_sets(model: torch.nn.Module, *, bf16: bool = True) -> list[list[str]]:
    """none, each applicable eager pass alone, and the `passes.policy.BEST` sets (eager,
    compiled, bf16, int8); without the bf16 ones when `bf16` is False (see `EMULATED_BF16_NOTE`)."""
    applicable = [n for n in FLAGS if FLAGS[n].applies_to(model) and (bf16 or n != "bf16")]
    singles = [[n] for n in applicable if n not in ("compile", "int8")]
    best = [n for n in ("best_eager", "best_compiled", "best_bf16", "best_int8")
            if bf16 or n != "best_bf16"]  # fmt: skip
    sets = [[], *singles, *(best_flags(model, name) for name in best)]
    unique: list[list[str]] = []
    for s in sets:
        if s not in unique:
            unique.append(s)
    return unique


@dataclass
class Row:
    encoder: str
    flags: str
    model: str
    backend: str
    precision: str
    median_ms: float
    iqr_ms: float
    samples: int
    speedup: float
    gflops: float | None
    peak_pct: float | None
    peak_mb: float | None
    max_rel_error: float
    pixel_agreement: float
    miou: float | None
    setup_s: float
    within_budget: bool
    budget: float
    min_agreement: float


def prepare_row(
    model: nn.Module,
    subject: Subject,
    reference: torch.Tensor,
    flags: list[str],
    threads: int,
    backend: str = "torch",
    onnx_cache: Path | None = None,
    prebuilt: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[Callable[[], object], dict[str, object]]:
    """One flag set, built and judged but not yet timed: optimize (setup timed apart), the
    forward's own peak memory, accuracy on the held-out images. Returns the call to time
    and the row so far. `prebuilt`: the flag set already built (a loaded artifact with its
    `label` and `setup_seconds`), judged as it is: the asv suites judge what they time."""
    x = subject.timing_input
    engine = {} if backend == "torch" else {"backend": backend, "onnx_cache": onnx_cache}
    run = prebuilt or optimize(model, flags, example_input=x, threads=threads,
                               calibration=subject.calibration, **engine)  # fmt: skip
    peak_mb = forward_peak_mb(lambda: run(x))
    out = torch.cat([run(b) for b in subject.held_out])
    error = relative_error(out, reference)
    agreement = pixel_agreement(out, reference)
    budget = budget_of(flags)
    miou = None
    if subject.masks is not None and getattr(model, "num_classes", 0) == subject.num_classes:
        miou = mean_iou(out, subject.masks, subject.num_classes)
    row = dict(
        flags=run.label, backend=backend, precision=precision_of(flags), peak_mb=peak_mb,
        max_rel_error=error, pixel_agreement=agreement, miou=miou, setup_s=run.setup_seconds,
        within_budget=error <= budget["max_rel_error"] and agreement >= budget["min_agreement"],
        budget=budget["max_rel_error"], min_agreement=budget["min_agreement"],
    )  # fmt: skip
    return (lambda: run(x)), row


def add_timing(
    row: dict[str, object], timing: Timing, flops: int | None, conv_peak: float | None
) -> dict[str, object]:
    gflops = None if flops is None else flops / (timing.median_ms * 1e-3) / 1e9
    row.update(
        median_ms=timing.median_ms, iqr_ms=timing.iqr_ms, samples=timing.samples, gflops=gflops,
        peak_pct=None if gflops is None or conv_peak is None else 100 * gflops / conv_peak,
    )  # fmt: skip
    return row


def measure_row(
    model: nn.Module,
    subject: Subject,
    reference: torch.Tensor,
    flags: list[str],
    threads: int,
    flops: int | None,
    conv_peak: float | None,
    min_seconds: float,
    backend: str = "torch",
    onnx_cache: Path | None = None,
    prebuilt: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, object]:
    """One flag set measured on its own: `prepare_row`, then a median of many calls; what
    the asv suites record per grid entry (the bench times its rows interleaved instead)."""
    call, row = prepare_row(model, subject, reference, flags, threads, backend, onnx_cache,
                            prebuilt)  # fmt: skip
    return add_timing(row, time_call(call, min_seconds=min_seconds), flops, conv_peak)


def engine_plans(model: nn.Module, skipped: list[str]) -> list[tuple[str, list[str]]]:
    """`ENGINE_SETS` twice: on a plain export (what a user who exports the model gets, engine
    defaults) and with the model rewrites that apply to this encoder; a set the engine would
    not really run on this CPU goes to `skipped`, with the reason."""
    rewrites = rewrites_for(model)
    plans = []
    every = [(b, [*r, *extra]) for b, extra in ENGINE_SETS.values() for r in ([], rewrites)]
    for backend, names in every:
        flags = parse_flags(names)
        if (backend, flags) in plans:
            continue
        try:
            check_cpu(backend, flags)
        except FlagError as e:
            note = f"{backend}+{flags_label(flags)} not run: {str(e).split(': ', 1)[-1]}"
            if note not in skipped:
                skipped.append(note)
            continue
        plans.append((backend, flags))
    return plans


def row_plans(
    models: dict[str, nn.Module],
    flag_sets: Sequence[Sequence[str]] | None,
    skipped: list[str],
) -> list[tuple[str, list[str]]]:
    """(encoder, flags) of every row, checked before any training or timing: the user's
    `flag_sets`, or the default ones, which leave bf16 out (noted in `skipped`) on a CPU
    that would only emulate it."""
    bf16 = torch_has_native_bf16()
    if not flag_sets and not bf16:
        skipped.append(EMULATED_BF16_NOTE)
    plans = []
    for name, model in models.items():
        sets = (
            [parse_flags(s) for s in flag_sets] if flag_sets
            else default_flag_sets(model, bf16=bf16)
        )  # fmt: skip
        for flags in sets:
            check_applicable(model, flags)
            plans.append((name, flags))
    return plans


def fastest_within_budget(result: dict[str, object]) -> dict[str, object] | None:
    """The fastest of our rows (torch or an engine running our model) whose error and
    agreement are within their flags' budget."""
    ours = [r for r in result["rows"] if r["model"] == "unet_decoder" and r["within_budget"]]
    return min(ours, key=lambda r: r["median_ms"], default=None)
