"""`unet-decoder tune`: the fastest deployment of one model that keeps its answers, here.

Every candidate is built as the artifact a user would ship (`artifact.build_artifact`) and
measured through `load_deployed`, so the number that wins is the number of the file that is
written. The search is pruned by cheaper measurements before expensive ones:

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

import contextlib
import io
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..artifact import build_artifact, copy_artifact, kind_of, load_deployed
from ..artifact.build import budget_of, precision_of
from ..artifact.record import DeployRecord
from ..engines.deploy import BACKENDS, MODEL_REWRITES
from ..errors import FlagError, UNetDecoderError
from ..machine import usable_cores
from ..passes.accuracy import mean_iou, pixel_agreement, relative_error
from ..passes.optimize import flags_label, optimize, parse_flags
from ..passes.registry import FLAGS
from .bench import Subject, checkpoint_subject, synthetic_subject
from .measure import OtherProcessesCPU, load_average, machine_info, time_interleaved

#: --budget -> the precisions it admits; each candidate is still judged by its own budget.
BUDGETS: dict[str, tuple[str, ...]] = {
    "exact": ("fp32",),
    "bf16": ("fp32", "bf16"),
    "int8": ("fp32", "bf16", "int8"),
}
#: Screening: a candidate this much slower than the fastest cannot win the final rounds.
SCREEN_MARGIN = 1.3
#: bf16 is ruled out where eager bf16 runs this much slower than eager fp32.
BF16_RULE_OUT = 1.25

#: Statuses, best first (the table's order).
STATUSES = ("chosen", "finalist", "screened out", "over budget", "ruled out", "failed",
            "skipped")  # fmt: skip

Progress = Callable[[str, int], None]


@dataclass
class Candidate:
    backend: str
    flags: list[str]
    threads: int
    status: str = "pending"
    reason: str = ""
    baseline: bool = False  # plain fp32 eager: timed in the final rounds whatever its status
    folder: str | None = None
    build_s: float | None = None
    load_s: float | None = None
    rel_error: float | None = None
    pixel_agreement: float | None = None
    miou: float | None = None
    screen_ms: float | None = None
    median_ms: float | None = None
    iqr_ms: float | None = None
    samples: int | None = None
    speedup: float | None = None
    budget: dict[str, float] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return kind_of(self.backend, self.flags)

    @property
    def precision(self) -> str:
        return precision_of(self.flags)

    @property
    def label(self) -> str:
        return f"{self.kind} {flags_label(self.flags)}"

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "kind": self.kind, "precision": self.precision,
                "label": self.label}  # fmt: skip


def thread_options(threads: int | None) -> list[int]:
    """The thread counts searched: 1, 2, 4... up to the usable cores (or the one asked)."""
    if threads is not None:
        return [threads]
    cores = usable_cores()
    options = {cores}
    t = 1
    while t < cores:
        options.add(t)
        t *= 2
    return sorted(options)


def plan_candidates(model: nn.Module, budget: str, threads: int) -> list[Candidate]:
    """Per precision the budget admits: torch (eager and AOTInductor) and each engine, with
    every exact rewrite that applies (they remove work, never add it)."""
    precisions = BUDGETS[budget]
    rewrites = [n for n in MODEL_REWRITES if FLAGS[n].applies_to(model)]
    eager = parse_flags([*rewrites, "channels_last", "inference_mode"])
    aoti = parse_flags([*rewrites, "channels_last", "compile"])
    plans: list[tuple[str, list[str]]] = [("torch", []), ("torch", eager), ("torch", aoti)]
    if "bf16" in precisions:
        plans.append(("torch", parse_flags([*aoti, "bf16"])))
    if "int8" in precisions:
        plans.append(("torch", parse_flags([*rewrites, "channels_last", "int8"])))
    for backend, engine in BACKENDS.items():
        for precision in ("fp32", *engine.precisions):
            if precision in precisions:
                extra = [] if precision == "fp32" else [precision]
                plans.append((backend, parse_flags([*rewrites, *extra])))
    found = [
        Candidate(backend, flags, threads, budget=budget_of(flags)) for backend, flags in plans
    ]
    found[0].baseline = True
    return found


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:160]}" if text else type(error).__name__


def _rule_out_bf16(model: nn.Module, subject: Subject, candidates: list[Candidate],
                   threads: int) -> None:  # fmt: skip
    """Cheap first: eager bf16 against eager fp32, a few calls each, before any bf16 compile."""
    bf16 = [c for c in candidates if c.precision == "bf16" and c.status == "pending"]
    if not bf16:
        return
    x = subject.timing_input
    for c in bf16:
        if c.backend != "torch":
            from ..engines.deploy import check_cpu

            try:
                check_cpu(c.backend, c.flags)
            except FlagError as e:
                c.status, c.reason = "ruled out", str(e).split(": ", 1)[-1]
    if not any(c.backend == "torch" and c.status == "pending" for c in bf16):
        return
    rewrites = [n for n in MODEL_REWRITES if FLAGS[n].applies_to(model)]
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
                c.status, c.reason = (
                    "ruled out",
                    (
                        f"eager bf16 ran {ratio:.1f}x slower than eager fp32 here "
                        f"({reduced.median_ms:.0f} vs {full.median_ms:.0f} ms): no native bf16"
                    ),
                )


def _skip_missing_engines(candidates: list[Candidate], engines: bool) -> None:
    from ..engines.export import EngineUnavailableError

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


def _judge(c: Candidate, run: Callable, subject: Subject, reference: torch.Tensor) -> None:
    out = torch.cat([run(b) for b in subject.held_out])
    c.rel_error = relative_error(out, reference)
    c.pixel_agreement = pixel_agreement(out, reference)
    if subject.masks is not None and out.shape[1] == subject.num_classes:
        c.miou = mean_iou(out, subject.masks, subject.num_classes)
    if c.rel_error > c.budget["max_rel_error"] or c.pixel_agreement < c.budget["min_agreement"]:
        c.status, c.reason = (
            "over budget",
            (
                f"relative error {c.rel_error:.1e} (budget {c.budget['max_rel_error']:.0e}), "
                f"{100 * c.pixel_agreement:.2f}% of pixels unchanged "
                f"(floor {100 * c.budget['min_agreement']:.0f}%)"
            ),
        )


def _build(c: Candidate, model: nn.Module, subject: Subject, folder: Path,
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
    except Exception as e:  # a candidate that cannot be built is reported, the search goes on
        c.status, c.reason = "failed", _first_line(e)
        return None
    c.folder, c.load_s = str(folder), run.load_seconds
    return run


def _time(entries: list[tuple[Candidate, Callable]], x: torch.Tensor, **timing) -> None:
    timings = time_interleaved([lambda r=r: r(x) for _, r in entries], **timing)
    for (c, _), t in zip(entries, timings, strict=True):
        c.median_ms, c.iqr_ms, c.samples = t.median_ms, t.iqr_ms, t.samples


def _variant(c: Candidate, threads: int) -> Candidate:
    return Candidate(c.backend, list(c.flags), threads, status="finalist", folder=c.folder,
                     build_s=c.build_s, rel_error=c.rel_error,
                     pixel_agreement=c.pixel_agreement, miou=c.miou,
                     budget=dict(c.budget))  # fmt: skip


def _search_threads(finalists: list[tuple[Candidate, Callable]], options: list[int],
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
        _time(probes + cheap, x, rounds=2, min_seconds=0.3, min_samples=3)
        for (v, run), (c, _) in zip(probes, cheap, strict=True):
            v.screen_ms = v.median_ms
            if v.median_ms < c.median_ms:
                found.append((v, run))
                gains.add(t)
            else:
                v.status, v.reason = (
                    "screened out",
                    (f"{v.median_ms / c.median_ms:.2f}x its {full}-thread time"),
                )
                found.append((v, None))
    for c, _ in finalists:
        if c.kind != "torch-aoti":
            continue
        for t in sorted(gains):
            note(f"recompiling {c.label} for {t} thread(s): fewer threads paid off elsewhere")
            v = _variant(c, t)
            run = _build(v, model, subject, workdir / f"{Path(c.folder).name}-t{t}",
                         workdir / "onnx")  # fmt: skip
            if run is not None:  # another thread count may sum in another order: judged again
                _judge(v, run, subject, reference)
            found.append((v, run if v.status == "finalist" else None))
    return found


@dataclass
class TuneResult:
    encoder: str
    budget: str
    input_shape: list[int]
    weights: str
    machine: dict[str, object]
    candidates: list[Candidate]
    search_seconds: float
    thread_note: str
    artifact: str | None = None
    reload_rel_error: float | None = None

    @property
    def chosen(self) -> Candidate:
        return next(c for c in self.candidates if c.status == "chosen")

    def to_dict(self) -> dict[str, object]:
        data = {k: v for k, v in asdict(self).items() if k != "candidates"}
        data["candidates"] = [c.to_dict() for c in self.candidates]
        data["chosen"] = self.chosen.to_dict()
        return data


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
    if (images is not None or masks is not None) and checkpoint is None:
        raise UNetDecoderError("--images and --masks judge your own --checkpoint; give it too.")
    if masks is not None and images is None:
        raise UNetDecoderError("--masks needs --images (a mask per held-out image).")
    report = progress or (lambda label, total: None)
    start = time.perf_counter()
    load_before = load_average()
    options = thread_options(threads)
    full = options[-1]
    torch.set_num_threads(full)

    def note(label: str) -> None:
        report(label, 0)

    if checkpoint is not None:
        subject = checkpoint_subject(
            encoder, Path(checkpoint), None if images is None else Path(images),
            None if masks is None else Path(masks), size, batch,
        )  # fmt: skip
    else:
        subject = synthetic_subject(encoder, size, batch, note)
    model = subject.model
    candidates = plan_candidates(model, budget, full)
    _skip_missing_engines(candidates, engines)
    pending = [c for c in candidates if c.status == "pending"]
    total = 4 + len(pending)
    report("cheap rule-outs (bf16 on this CPU)", total)
    neighbours = OtherProcessesCPU().start()
    _rule_out_bf16(model, subject, candidates, full)
    reference = subject.reference()
    workdir = Path(tempfile.mkdtemp(prefix="unet-decoder-tune-"))
    try:
        built: list[tuple[Candidate, Callable]] = []
        for i, c in enumerate(c for c in candidates if c.status == "pending"):
            report(f"building {c.label}", total)
            run = _build(c, model, subject, workdir / f"{i:02d}", workdir / "onnx")
            if run is None:
                continue
            _judge(c, run, subject, reference)
            if c.status == "pending":
                built.append((c, run))
        if not built:
            raise UNetDecoderError("no candidate was built within its budget; see the log.")
        x = subject.timing_input
        report(f"screening {len(built)} candidates", total)
        _time(built, x, rounds=2, min_seconds=0.5, min_samples=4)
        fastest = min(c.median_ms for c, _ in built)
        finalists = []
        for c, run in built:
            c.screen_ms = c.median_ms
            if c.median_ms <= SCREEN_MARGIN * fastest:
                c.status = "finalist"
                finalists.append((c, run))
            else:
                c.status, c.reason = (
                    "screened out",
                    (f"{c.median_ms / fastest:.2f}x the fastest in the screening"),
                )
        report(f"threads {', '.join(map(str, options))}", total)
        variants = _search_threads(finalists, options, model, subject, reference, workdir, note)
        candidates.extend(v for v, _ in variants)
        thread_note = _thread_note(options, variants, finalists)
        final = finalists + [(v, r) for v, r in variants if r is not None]
        baseline = next(((c, r) for c, r in built if c.baseline), None)
        if baseline is not None and baseline not in final:
            final.append(baseline)
        report(f"final: {len(final)} candidates in interleaved rounds", total)
        _time(final, x, rounds=5, min_seconds=min_seconds)
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
            machine=machine, candidates=_ranked(candidates), search_seconds=0.0,
            thread_note=thread_note,
        )  # fmt: skip
        report(f"writing {chosen.label} to {out}", total)
        result.search_seconds = time.perf_counter() - start
        _write(result, chosen, Path(out), subject)
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _thread_note(options: list[int], variants, finalists) -> str:
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


def _ranked(candidates: list[Candidate]) -> list[Candidate]:
    def key(c: Candidate):
        timed = c.median_ms if c.status in ("chosen", "finalist") else None
        rank = STATUSES.index(c.status) if c.status in STATUSES else len(STATUSES)
        return (rank, float("inf") if timed is None else timed, c.screen_ms or float("inf"))

    return sorted(candidates, key=key)


def _write(result: TuneResult, chosen: Candidate, out: Path, subject: Subject) -> None:
    """The chosen artifact with its measurements in deployed.json, plus the whole search as
    tune.json and tune.png; then reloaded from `out` and compared with what was measured."""
    from .report import write_atomically
    from .tune_report import to_png

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
    import json

    write_atomically(staged / "tune.json", (json.dumps(result.to_dict(), indent=2) + "\n").encode())
    write_atomically(staged / "tune.png", to_png(result))
    copy_artifact(staged, out)
    result.artifact = str(out)
    tuned = load_deployed(staged, threads=chosen.threads)
    shipped = load_deployed(out)
    x = subject.held_out[0]
    result.reload_rel_error = relative_error(shipped(x), tuned(x))
    write_atomically(out / "tune.json", (json.dumps(result.to_dict(), indent=2) + "\n").encode())
