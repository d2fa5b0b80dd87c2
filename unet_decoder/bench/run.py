"""`unet-decoder bench`: every flag set of every encoder, measured side by side in one process.

All rows of an encoder, plain fp32 eager included, are built and judged first and then timed
together in interleaved rounds (`measure.time_interleaved`), so a slow minute of the machine
hits them all alike; the speed-ups are ratios within those rounds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from ..census.take import count_flops
from ..engines.backends import BACKENDS
from ..errors import UNetDecoderError
from ..model import UNet
from ..passes.policy import flags_label
from .measure import conv_peak_gflops, machine_info, time_interleaved
from .neighbours import OtherProcessesCPU, load_average
from .rows import Row, add_timing, engine_plans, prepare_row, row_plans
from .subjects import WEIGHTS, Subject, check_data_options, subject_for

Progress = Callable[[str, int], None]

#: smp.Unet's rows in `--peers`: eager, and its best compiled set.
PEER_FLAG_SETS = ([], ["channels_last", "compile", "inference_mode"])


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
    check_data_options(checkpoint, images, masks)
    load_before = load_average()  # before our own training raises it
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    # bad names and inapplicable flags fail before any training or timing
    plain = {name: UNet(name).eval() for name in encoders}
    skipped: list[str] = []  # rows that cannot run here, and why (printed under the table)
    plans = row_plans(plain, flag_sets, skipped)
    if peers:
        from .peers import smp_unet

        for backend in BACKENDS.values():
            backend.require("--peers (ONNX Runtime and OpenVINO rows)")
        peer_models = {name: smp_unet(name) for name in encoders}
        engines = {name: engine_plans(plain[name], skipped) for name in encoders}
    total = 1 + len(plans) + len(encoders)
    if peers:
        total += sum(len(PEER_FLAG_SETS) + len(e) for e in engines.values())
    report = progress or (lambda label, total: None)

    def step(label: str) -> None:
        report(label, total)

    def note(label: str) -> None:  # a message that is not one of the counted steps
        report(label, 0)

    subjects = {
        name: subject_for(name, size=size, batch=batch, weights=weights, checkpoint=checkpoint,
                          images=images, masks=masks, progress=note)
        for name in encoders
    }  # fmt: skip
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
            for flags in PEER_FLAG_SETS:
                step(f"smp {name} {flags_label(flags)}")
                call, row = prepare_row(peer, peer_subject, peer_reference, list(flags), threads)
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
