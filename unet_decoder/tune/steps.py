"""The steps of a tune search, cheapest first: rule-outs, build and judge, time, threads.

A candidate that cannot be built (an engine or compiler that refuses the model, one of our
own refusals) is reported as failed and the search goes on; an exception raised by our own
code that is not one of our errors is a bug, and surfaces as one.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..bench.measure import time_interleaved
from ..bench.subjects import Subject
from ..deploy.build import build_artifact
from ..deploy.load import load_deployed
from ..deploy.optimize import optimize
from ..engines.backends import BACKENDS, check_cpu
from ..engines.export import EngineUnavailableError
from ..errors import FlagError, UNetDecoderError
from ..passes.accuracy import mean_iou, pixel_agreement, relative_error
from ..passes.policy import rewrites_for
from .candidates import Candidate

#: bf16 is ruled out where eager bf16 runs this much slower than eager fp32.
BF16_RULE_OUT = 1.25
#: The package's own source folder: an exception raised there is ours.
_OURS = Path(__file__).resolve().parents[1]


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:160]}" if text else type(error).__name__


def raised_by_us(error: BaseException) -> bool:
    """Whether the innermost frame of the error's traceback is in this package."""
    tb, last = error.__traceback__, None
    while tb is not None:
        last, tb = tb, tb.tb_next
    return last is not None and Path(last.tb_frame.f_code.co_filename).resolve().is_relative_to(
        _OURS
    )


def rule_out_bf16(model: nn.Module, subject: Subject, candidates: list[Candidate],
                  threads: int) -> None:  # fmt: skip
    """Cheap first: eager bf16 against eager fp32, a few calls each, before any bf16 compile."""
    bf16 = [c for c in candidates if c.precision == "bf16" and c.status == "pending"]
    for c in bf16:
        if c.backend != "torch":
            try:
                check_cpu(c.backend, c.flags)
            except FlagError as e:
                c.status, c.reason = "ruled out", str(e).split(": ", 1)[-1]
    if not any(c.backend == "torch" and c.status == "pending" for c in bf16):
        return
    x = subject.timing_input
    rewrites = rewrites_for(model)
    fp32 = optimize(model, [*rewrites, "channels_last"], example_input=x, threads=threads,
                    warmup=1)  # fmt: skip
    half = optimize(model, [*rewrites, "channels_last", "bf16"], example_input=x,
                    threads=threads, warmup=1)  # fmt: skip
    with torch.inference_mode():
        full, reduced = time_interleaved([lambda: fp32(x), lambda: half(x)], rounds=2,
                                         min_seconds=0.3, min_samples=2)  # fmt: skip
    ratio = reduced.median_ms / full.median_ms
    if ratio > BF16_RULE_OUT:
        for c in bf16:
            if c.backend == "torch":
                c.status = "ruled out"
                c.reason = (f"eager bf16 ran {ratio:.1f}x slower than eager fp32 here "
                            f"({reduced.median_ms:.0f} vs {full.median_ms:.0f} ms): no native "
                            "bf16")  # fmt: skip


def skip_missing_engines(candidates: list[Candidate], engines: bool) -> None:
    for c in candidates:
        if c.backend == "torch":
            continue
        if not engines:
            c.status, c.reason = "skipped", "engines not searched (--no-engines)"
            continue
        try:
            BACKENDS[c.backend].require(f"tune's {c.backend} candidates")
        except EngineUnavailableError as e:
            c.status, c.reason = "skipped", str(e)


def judge(c: Candidate, run: Callable, subject: Subject, reference: torch.Tensor) -> None:
    out = torch.cat([run(b) for b in subject.held_out])
    c.rel_error = relative_error(out, reference)
    c.pixel_agreement = pixel_agreement(out, reference)
    if subject.masks is not None and out.shape[1] == subject.num_classes:
        c.miou = mean_iou(out, subject.masks, subject.num_classes)
    if c.rel_error > c.budget["max_rel_error"] or c.pixel_agreement < c.budget["min_agreement"]:
        c.status = "over budget"
        c.reason = (f"relative error {c.rel_error:.1e} (budget {c.budget['max_rel_error']:.0e}), "
                    f"{100 * c.pixel_agreement:.2f}% of pixels unchanged "
                    f"(floor {100 * c.budget['min_agreement']:.0f}%)")  # fmt: skip


def build(c: Candidate, model: nn.Module, subject: Subject, folder: Path,
          onnx_cache: Path) -> Callable | None:  # fmt: skip
    """Build, load through `load_deployed` and return the runner; None if it failed."""
    start = time.perf_counter()
    try:
        # engines and NNCF print their own progress to stdout: our table is the output
        with contextlib.redirect_stdout(io.StringIO()):
            build_artifact(model, c.flags, subject.timing_input, folder, backend=c.backend,
                           threads=c.threads, calibration=subject.calibration,
                           onnx_cache=onnx_cache)  # fmt: skip
            c.build_s = time.perf_counter() - start
            run = load_deployed(folder)
    except UNetDecoderError as e:  # one of our refusals: reported, the search goes on
        c.status, c.reason = "failed", first_line(e)
        return None
    except Exception as e:  # an engine or compiler that failed on it, unless it is our bug
        if raised_by_us(e):
            raise
        c.status, c.reason = "failed", first_line(e)
        return None
    c.folder, c.load_s = str(folder), run.load_seconds
    return run


def time_side_by_side(entries: list[tuple[Candidate, Callable]], x: torch.Tensor,
                      **timing) -> None:  # fmt: skip
    timings = time_interleaved([lambda r=r: r(x) for _, r in entries], **timing)
    for (c, _), t in zip(entries, timings, strict=True):
        c.median_ms, c.iqr_ms, c.samples = t.median_ms, t.iqr_ms, t.samples


def _variant(c: Candidate, threads: int) -> Candidate:
    return Candidate(c.backend, list(c.flags), threads, status="finalist", folder=c.folder,
                     build_s=c.build_s, rel_error=c.rel_error,
                     pixel_agreement=c.pixel_agreement, miou=c.miou,
                     budget=dict(c.budget))  # fmt: skip


def search_threads(finalists: list[tuple[Candidate, Callable]], options: list[int],
                   model: nn.Module, subject: Subject, reference: torch.Tensor, workdir: Path,
                   note: Callable[[str], None]) -> list[tuple[Candidate, Callable]]:  # fmt: skip
    """Variants of the finalists at fewer threads; returns those worth the final rounds."""
    full = options[-1]
    cheap = [(c, r) for c, r in finalists if c.kind != "torch-aoti"]
    found: list[tuple[Candidate, Callable]] = []
    gains: set[int] = set()
    x = subject.timing_input
    for t in options[:-1]:
        probes = []
        for c, _ in cheap:
            v = _variant(c, t)
            run = load_deployed(c.folder, threads=t)
            v.load_s = run.load_seconds
            probes.append((v, run))
        if not probes:
            continue
        time_side_by_side(probes + cheap, x, rounds=2, min_seconds=0.3, min_samples=3)
        for (v, run), (c, _) in zip(probes, cheap, strict=True):
            v.screen_ms = v.median_ms
            if v.median_ms < c.median_ms:
                found.append((v, run))
                gains.add(t)
            else:
                v.status = "screened out"
                v.reason = f"{v.median_ms / c.median_ms:.2f}x its {full}-thread time"
                found.append((v, None))
    for c, _ in finalists:
        if c.kind != "torch-aoti":
            continue
        for t in sorted(gains):
            note(f"recompiling {c.label} for {t} thread(s): fewer threads paid off elsewhere")
            v = _variant(c, t)
            run = build(v, model, subject, workdir / f"{Path(c.folder).name}-t{t}",
                        workdir / "onnx")  # fmt: skip
            if run is not None:  # another thread count may sum in another order: judged again
                judge(v, run, subject, reference)
            found.append((v, run if v.status == "finalist" else None))
    return found
