"""`unet-decoder tune`: the fastest deployment of one model that keeps its answers, here.

Every candidate is built as the artifact a user would ship (`deploy.build_artifact`) and
measured through `load_deployed`, so the number that wins is the number of the file that is
written. The search is pruned by cheaper measurements before expensive ones (`steps`):

1. rule-outs that cost seconds: bf16 candidates when eager bf16 runs slower than eager fp32
   on this CPU (no native bf16 kernels), OpenVINO bf16 when its CPU plugin has no BF16;
2. build each remaining candidate and judge it on held-out images: a candidate over its
   precision's budget is never timed;
3. a short interleaved screening at the full thread count: candidates slower than
   `SCREEN_MARGIN` x the fastest are dropped;
4. fewer threads are tried where they cost no rebuild (engines, eager); an AOTInductor
   package is recompiled for fewer threads only when one of those ran faster with them;
5. the finalists, the thread variants and plain fp32 eager (the speed-up's baseline) are
   timed side by side in interleaved rounds; the fastest is written to `--out`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ..bench.measure import machine_info
from ..bench.neighbours import OtherProcessesCPU, load_average
from ..bench.subjects import Subject, check_data_options, subject_for
from ..deploy.build import copy_artifact
from ..deploy.load import load_deployed
from ..deploy.record import DeployRecord
from ..errors import UNetDecoderError
from ..files import write_atomically
from ..passes.accuracy import relative_error
from .candidates import BUDGETS, Candidate, TuneResult, plan_candidates, ranked, thread_options
from .steps import (
    build,
    judge,
    rule_out_bf16,
    search_threads,
    skip_missing_engines,
    time_side_by_side,
)

#: Screening: a candidate this much slower than the fastest cannot win the final rounds.
SCREEN_MARGIN = 1.3

Progress = Callable[[str, int], None]


def run_tune(
    encoder: str,
    *,
    out: str | Path,
    checkpoint: str | Path | None = None,
    images: str | Path | None = None,
    masks: str | Path | None = None,
    size: tuple[int, int] = (256, 256),
    batch: int = 1,
    threads: int | None = None,
    budget: str = "int8",
    min_seconds: float = 2.0,
    engines: bool = True,
    progress: Progress | None = None,
) -> TuneResult:
    """Search, measure and write the fastest candidate within its budget to `out`.

    Weights: `checkpoint` judged on `images` (and `masks`), else the encoder trained on the
    built-in task (cached). `threads` pins the thread count; by default 1, 2, 4... up to
    the usable cores are searched. `progress(label, total)` is called before each step
    (total 0: a note within a step).
    """
    if budget not in BUDGETS:
        raise UNetDecoderError(f"--budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
    check_data_options(checkpoint, images, masks)
    report = progress or (lambda label, total: None)
    start = time.perf_counter()
    load_before = load_average()
    options = thread_options(threads)
    full = options[-1]
    torch.set_num_threads(full)

    def note(label: str) -> None:
        report(label, 0)

    subject = subject_for(encoder, size=size, batch=batch, checkpoint=checkpoint,
                          images=images, masks=masks, progress=note)  # fmt: skip
    model = subject.model
    candidates = plan_candidates(model, budget, full)
    skip_missing_engines(candidates, engines)
    pending = [c for c in candidates if c.status == "pending"]
    total = 4 + len(pending)
    report("cheap rule-outs (bf16 on this CPU)", total)
    neighbours = OtherProcessesCPU().start()
    rule_out_bf16(model, subject, candidates, full)
    reference = subject.reference()
    workdir = Path(tempfile.mkdtemp(prefix="unet-decoder-tune-"))
    try:
        built: list[tuple[Candidate, Callable]] = []
        for i, c in enumerate(c for c in candidates if c.status == "pending"):
            report(f"building {c.label}", total)
            run = build(c, model, subject, workdir / f"{i:02d}", workdir / "onnx")
            if run is None:
                continue
            judge(c, run, subject, reference)
            if c.status == "pending":
                built.append((c, run))
        if not built:
            raise UNetDecoderError("no candidate was built within its budget; see the log.")
        x = subject.timing_input
        report(f"screening {len(built)} candidates", total)
        time_side_by_side(built, x, rounds=2, min_seconds=0.5, min_samples=4)
        fastest = min(c.median_ms for c, _ in built)
        finalists = []
        for c, run in built:
            c.screen_ms = c.median_ms
            if c.median_ms <= SCREEN_MARGIN * fastest:
                c.status = "finalist"
                finalists.append((c, run))
            else:
                c.status = "screened out"
                c.reason = f"{c.median_ms / fastest:.2f}x the fastest in the screening"
        report(f"threads {', '.join(map(str, options))}", total)
        variants = search_threads(finalists, options, model, subject, reference, workdir, note)
        candidates.extend(v for v, _ in variants)
        thread_note = _thread_note(options, variants)
        final = finalists + [(v, r) for v, r in variants if r is not None]
        baseline = next(((c, r) for c, r in built if c.baseline), None)
        if baseline is not None and baseline not in final:
            final.append(baseline)
        report(f"final: {len(final)} candidates in interleaved rounds", total)
        time_side_by_side(final, x, rounds=5, min_seconds=min_seconds)
        chosen = min((c for c, _ in final if c.status == "finalist"), key=lambda c: c.median_ms)
        chosen.status = "chosen"
        if baseline is not None:
            for c, _ in final:
                c.speedup = baseline[0].median_ms / c.median_ms
        machine = machine_info()
        machine.update(threads=chosen.threads, load_before=load_before,
                       others_cpu_pct=neighbours.stop())  # fmt: skip
        result = TuneResult(
            encoder=encoder, budget=budget, input_shape=list(x.shape), weights=subject.weights,
            machine=machine, candidates=ranked(candidates), search_seconds=0.0,
            thread_note=thread_note,
        )  # fmt: skip
        report(f"writing {chosen.label} to {out}", total)
        result.search_seconds = time.perf_counter() - start
        _write(result, chosen, Path(out), subject)
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _thread_note(options: list[int], variants) -> str:
    if len(options) == 1:
        return f"threads fixed at {options[0]}"
    gained = [v for v, r in variants if r is not None]
    if not gained:
        tried = ", ".join(map(str, options[:-1]))
        return (
            f"{tried} thread(s) ran slower than {options[-1]} for every finalist that switches "
            "threads without a rebuild; AOTInductor packages were not recompiled"
        )
    return f"threads searched: {', '.join(map(str, options))}"


def _write(result: TuneResult, chosen: Candidate, out: Path, subject: Subject) -> None:
    """The chosen artifact with its measurements in deployed.json, plus the whole search as
    tune.json and tune.png; then reloaded from `out` and compared with what was measured."""
    from .report import to_png

    staged = Path(chosen.folder)
    record = DeployRecord.read(staged)
    record.threads = chosen.threads
    record.measured = {
        "median_ms": chosen.median_ms, "iqr_ms": chosen.iqr_ms, "samples": chosen.samples,
        "speedup_vs_plain_fp32_eager": chosen.speedup, "rel_error": chosen.rel_error,
        "pixel_agreement": chosen.pixel_agreement, "miou": chosen.miou,
        "build_s": chosen.build_s, "load_s": chosen.load_s, "weights": result.weights,
        "search_budget": result.budget, "search_seconds": result.search_seconds,
        "load_before": result.machine.get("load_before"),
        "others_cpu_pct": result.machine.get("others_cpu_pct"),
        "candidates_measured": sum(c.median_ms is not None for c in result.candidates),
    }  # fmt: skip
    record.write(staged)
    write_atomically(staged / "tune.json", (json.dumps(result.to_dict(), indent=2) + "\n").encode())
    write_atomically(staged / "tune.png", to_png(result))
    copy_artifact(staged, out)
    result.artifact = str(out)
    tuned = load_deployed(staged, threads=chosen.threads)
    shipped = load_deployed(out)
    x = subject.held_out[0]
    result.reload_rel_error = relative_error(shipped(x), tuned(x))
    write_atomically(out / "tune.json", (json.dumps(result.to_dict(), indent=2) + "\n").encode())
