"""The engine of `unet-decoder bench`: every flag set of every encoder, measured in one process.

Each row is measured the same way: optimize (setup timed apart, int8 calibrated on images the
row is not judged on), then a median of many calls, the forward's own peak memory, and the
accuracy on held-out images against the plain fp32 eager model (relative error, pixel
agreement) and against the ground truth (mIoU) when there is one. By default the models are
trained on the synthetic task first (once per machine, cached): on random-init weights every
pass "agrees" with fp32 because the model predicts one class everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import FlagError, UNetDecoderError
from ..machine import has_native_bf16
from ..model import UNet
from ..passes.accuracy import mean_iou, pixel_agreement, relative_error
from ..passes.optimize import check_applicable, flags_label, optimize, parse_flags
from ..passes.registry import FLAGS, min_agreement
from .measure import (
    OtherProcessesCPU,
    Timing,
    conv_peak_gflops,
    count_flops,
    forward_peak_mb,
    load_average,
    machine_info,
    time_call,
    time_interleaved,
)

BEST_EXACT = ["reparam", "fuse_bn", "channels_last", "inference_mode"]
WEIGHTS = ("synthetic", "random")
CALIBRATION_IMAGES = 8

Progress = Callable[[str, int], None]


def default_flag_sets(model: torch.nn.Module, *, bf16: bool = True) -> list[list[str]]:
    """none, each applicable eager pass alone, the best eager, compiled, bf16 and int8 sets;
    without the bf16 ones when `bf16` is False (see `EMULATED_BF16_NOTE`)."""
    applicable = [n for n in FLAGS if FLAGS[n].applies_to(model) and (bf16 or n != "bf16")]
    singles = [[n] for n in applicable if n not in ("compile", "int8")]
    best = [n for n in BEST_EXACT if n in applicable]
    compiled = parse_flags([*best, "compile"])
    bf16_set = parse_flags([*best, "bf16", "compile"])
    int8 = parse_flags([n for n in best if n != "inference_mode"] + ["int8", "inference_mode"])
    sets = [[], *singles, parse_flags(best), compiled, *([bf16_set] if bf16 else []), int8]
    unique: list[list[str]] = []
    for s in sets:
        if s not in unique:
            unique.append(s)
    return unique


#: The engine rows of `--peers`: each engine at each precision it offers, on our exported
#: model after the rewrites that apply (reparam, fuse_bn), calibrated like our int8.
ENGINE_SETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("onnxruntime", ()),
    ("onnxruntime", ("int8",)),
    ("openvino", ()),
    ("openvino", ("bf16",)),
    ("openvino", ("int8",)),
)
PRECISIONS = ("fp32", "bf16", "int8")

#: Why the default leaves the bf16 rows out on a CPU without native bf16: torch emulates
#: bf16 there, slower than fp32 (5.8x on this project's AVX2 machine), and judging the
#: emulated rows on the held-out images took 8 minutes of setup. Such rows say nothing about
#: bf16 on a CPU that has it; `--flags` still measures them on request.
EMULATED_BF16_NOTE = (
    "bf16 rows left out: this CPU has no native bf16 (no avx512_bf16 or amx_bf16), so torch "
    "would emulate it, slower than fp32; measure the emulation anyway with --flags, e.g. "
    "--flags none bf16"
)


def precision_of(flags: Sequence[str]) -> str:
    return next((p for p in ("int8", "bf16") if p in flags), "fp32")


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


@dataclass
class Subject:
    """One encoder's model and the images its rows are timed, calibrated and judged on."""

    encoder: str
    model: nn.Module
    weights: str  # how the model got its weights, for the table and the JSON
    calibration: list[torch.Tensor]
    held_out: list[torch.Tensor]  # batches of the benchmark's batch size
    masks: torch.Tensor | None  # ground truth of the held-out images, when there is one
    num_classes: int

    @property
    def timing_input(self) -> torch.Tensor:
        return self.held_out[0]

    def reference(self) -> torch.Tensor:
        """The plain fp32 eager model's logits on the held-out images."""
        with torch.no_grad():
            return torch.cat([self.model(b) for b in self.held_out])


def _batches(images: torch.Tensor, batch: int, what: str) -> list[torch.Tensor]:
    if len(images) < batch:
        raise UNetDecoderError(f"{what} has {len(images)} images, fewer than --batch {batch}.")
    return [images[i : i + batch] for i in range(0, len(images) - batch + 1, batch)]


def synthetic_subject(
    encoder: str,
    size: int | tuple[int, int],
    batch: int,
    progress: Callable[[str], None] = lambda label: None,
) -> Subject:
    """The encoder trained on the built-in task (cached), its calibration and held-out images."""
    from ..training import NUM_CLASSES, TASK_NAME, make_batch, trained_unet
    from ..training.task import CALIBRATION_SEED, HELD_OUT_SEED
    from ..training.train import HELD_OUT_IMAGES

    def training(step: int, steps: int, loss: float) -> None:
        if step == 1 or step % 25 == 0 or step == steps:
            progress(f"training {encoder} on {TASK_NAME} (once per machine): step {step}/{steps}")

    trained = trained_unet(encoder, progress=training)
    n = batch * -(-HELD_OUT_IMAGES // batch)  # whole batches, at least the 16 images
    held = make_batch(n, size, seed=HELD_OUT_SEED)
    calibration = make_batch(max(CALIBRATION_IMAGES, batch), size, seed=CALIBRATION_SEED)
    return Subject(
        encoder, trained.model, f"trained on {TASK_NAME} (mIoU {trained.miou:.2f})",
        _batches(calibration.images, batch, "calibration"), _batches(held.images, batch, "task"),
        held.masks, NUM_CLASSES,
    )  # fmt: skip


def _random_subject(encoder: str, size: int, batch: int) -> Subject:
    model = UNet(encoder).eval()
    x = torch.randn(batch, model.in_chans, size, size, generator=torch.Generator().manual_seed(0))
    return Subject(encoder, model, "random init", [x], [x], None, model.num_classes)


def checkpoint_subject(
    encoder: str,
    checkpoint: Path,
    images: Path | None,
    masks: Path | None,
    size: int | tuple[int, int],
    batch: int,
) -> Subject:
    """The user's checkpoint, judged on their images (the first quarter calibrates); `size`
    is an int (square) or (height, width)."""
    from ..model.checkpoint import checkpoint_num_classes
    from ..training.images import load_user_data

    num_classes = checkpoint_num_classes(checkpoint) or 1
    model = UNet(encoder, num_classes=num_classes, checkpoint_path=checkpoint).eval()
    if images is None:
        height, width = (size, size) if isinstance(size, int) else size
        x = torch.randn(batch, model.in_chans, height, width)
        return Subject(encoder, model, f"{checkpoint.name}, random inputs", [x], [x], None,
                       num_classes)  # fmt: skip
    data = load_user_data(images, masks, size=size, in_chans=model.in_chans)
    held = _batches(data.images, batch, f"--images {images} (held out)")
    usable = len(held) * batch
    return Subject(
        encoder, model, f"{checkpoint.name} on {usable} held-out image(s) of {images}",
        _batches(data.calibration, 1, "calibration"), held,
        None if data.masks is None else data.masks[:usable], num_classes,
    )  # fmt: skip


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
    budget = max((FLAGS[f].tolerance for f in flags), default=FLAGS["inference_mode"].tolerance)
    floor = min_agreement(budget)
    miou = None
    if subject.masks is not None and getattr(model, "num_classes", 0) == subject.num_classes:
        miou = mean_iou(out, subject.masks, subject.num_classes)
    row = dict(
        flags=run.label, backend=backend, precision=precision_of(flags), peak_mb=peak_mb,
        max_rel_error=error, pixel_agreement=agreement, miou=miou, setup_s=run.setup_seconds,
        within_budget=error <= budget and agreement >= floor, budget=budget,
        min_agreement=floor,
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
    """`ENGINE_SETS` with the model rewrites that apply to this encoder; a set the engine
    would not really run on this CPU goes to `skipped`, with the reason."""
    from ..engines.deploy import MODEL_REWRITES, check_cpu

    rewrites = [n for n in MODEL_REWRITES if FLAGS[n].applies_to(model)]
    plans = []
    for backend, extra in ENGINE_SETS:
        flags = parse_flags([*rewrites, *extra])
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
    bf16 = has_native_bf16()
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


def run_bench(
    encoders: Sequence[str] = ("resnet18",),
    flag_sets: Sequence[Sequence[str]] | None = None,
    *,
    size: int = 256,
    batch: int = 1,
    threads: int | None = None,
    peers: bool = False,
    min_seconds: float = 1.0,
    weights: str = "synthetic",
    checkpoint: str | Path | None = None,
    images: str | Path | None = None,
    masks: str | Path | None = None,
    progress: Progress | None = None,
) -> dict[str, object]:
    """Measure every (encoder, flag set); return {"machine": ..., "conv_peak_gflops", "rows"}.

    `weights`: "synthetic" (trained on the built-in task, cached) or "random" (random init);
    `checkpoint` (one encoder) loads the user's weights instead, judged on `images` (and
    `masks`). `progress(label, total)` is called before each of the `total` steps.
    """
    if weights not in WEIGHTS:
        raise UNetDecoderError(f"--weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    if checkpoint is not None and len(encoders) != 1:
        raise UNetDecoderError("--checkpoint holds one encoder's weights: give one --encoders.")
    if (images is not None or masks is not None) and checkpoint is None:
        raise UNetDecoderError("--images and --masks judge your own --checkpoint; give it too.")
    if masks is not None and images is None:
        raise UNetDecoderError("--masks needs --images (a mask per held-out image).")
    load_before = load_average()  # before our own training raises it
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    # bad names and inapplicable flags fail before any training or timing
    plain = {name: UNet(name).eval() for name in encoders}
    skipped: list[str] = []  # rows that cannot run here, and why (printed under the table)
    plans = row_plans(plain, flag_sets, skipped)
    if peers:
        from ..engines.deploy import BACKENDS
        from .peers import smp_unet

        for backend in BACKENDS.values():
            backend.require("--peers (ONNX Runtime and OpenVINO rows)")
        peer_models = {name: smp_unet(name) for name in encoders}
        engines = {name: engine_plans(plain[name], skipped) for name in encoders}
    total = 1 + len(plans) + len(encoders)
    if peers:
        total += sum(2 + len(e) for e in engines.values())
    report = progress or (lambda label, total: None)

    def step(label: str) -> None:
        report(label, total)

    def note(label: str) -> None:  # a message that is not one of the counted steps
        report(label, 0)

    subjects: dict[str, Subject] = {}
    for name in encoders:
        if checkpoint is not None:
            subjects[name] = checkpoint_subject(
                name, Path(checkpoint), None if images is None else Path(images),
                None if masks is None else Path(masks), size, batch,
            )  # fmt: skip
        elif weights == "synthetic":
            subjects[name] = synthetic_subject(name, size, batch, note)
        else:
            subjects[name] = _random_subject(name, size, batch)

    neighbours = OtherProcessesCPU().start()
    step("conv peak")
    conv_peak = conv_peak_gflops(min_seconds=min_seconds)
    rows: list[Row] = []
    for name, subject in subjects.items():
        model = subject.model
        reference = subject.reference()
        flops = count_flops(model, subject.timing_input)
        x = subject.timing_input
        # (model label, call, row so far, flops): built and judged first, timed together
        built: list[tuple[str, Callable[[], object], dict[str, object], int | None]] = []
        mine = [flags for enc, flags in plans if enc == name]
        if [] not in mine:  # the speedup's baseline is always timed in the same rounds
            built.append(("baseline", lambda m=model, x=x: m(x), {}, flops))
        for flags in mine:
            step(f"{name} {flags_label(flags)}")
            call, row = prepare_row(model, subject, reference, flags, threads)
            built.append(("unet_decoder", call, row, flops))
        if peers:
            for backend, flags in engines[name]:
                step(f"{name} {backend}+{flags_label(flags)}")
                call, row = prepare_row(model, subject, reference, flags, threads, backend)
                built.append(("unet_decoder", call, row, flops))
            peer = peer_models[name]
            peer_subject = Subject(name, peer, "random init", [x], [x], None, 1)
            peer_reference = peer_subject.reference()
            peer_flops = count_flops(peer, x)
            for flags in ([], ["channels_last", "compile", "inference_mode"]):
                step(f"smp {name} {flags_label(flags)}")
                call, row = prepare_row(peer, peer_subject, peer_reference, flags, threads)
                built.append(("smp.Unet", call, row, peer_flops))
        step(f"{name}: timing {len(built)} rows in interleaved rounds")
        timings = time_interleaved([b[1] for b in built], min_seconds=min_seconds)
        baseline = None
        for (label, _, row, row_flops), timing in zip(built, timings, strict=True):
            if label == "baseline":
                baseline = timing.median_ms
                continue
            add_timing(row, timing, row_flops, None)  # % of peak once the peak is final
            rows.append(Row(encoder=name, model=label, speedup=0.0, **row))
            if label == "unet_decoder" and row["flags"] == "none":
                baseline = timing.median_ms
        for row in rows:
            if row.encoder == name:
                row.speedup = baseline / row.median_ms
    # The yardstick again after the rows: a neighbour's burst during one short measurement
    # must not halve it (the faster of the two is the machine's practical peak).
    conv_peak = max(conv_peak, conv_peak_gflops(min_seconds=min_seconds))
    for row in rows:  # every row against the one final peak
        if row.gflops is not None:
            row.peak_pct = 100 * row.gflops / conv_peak
    machine = machine_info()
    machine.update(threads=threads, load_before=load_before, others_cpu_pct=neighbours.stop())
    return {
        "machine": machine,
        "input": {"batch": batch, "channels": 3, "size": size},
        "weights": {name: s.weights for name, s in subjects.items()},
        "conv_peak_gflops": conv_peak,
        "rows": [asdict(r) for r in rows],
        "skipped": skipped,
    }


def fastest_within_budget(result: dict[str, object]) -> dict[str, object] | None:
    """The fastest of our rows (torch or an engine running our model) whose error and
    agreement are within their flags' budget."""
    ours = [r for r in result["rows"] if r["model"] == "unet_decoder" and r["within_budget"]]
    return min(ours, key=lambda r: r["median_ms"], default=None)


__all__ = ["FlagError", "default_flag_sets", "fastest_within_budget", "row_plans", "run_bench"]
