"""The engine of `unet-decoder bench`: every flag set of every encoder, measured in one process.

Each row is measured the same way: optimize (setup timed apart), then a median of many calls,
the forward's own peak memory, and its error against the plain fp32 eager model on the same
input. The machine's conv peak is measured in the same run, so '% of peak' is honest here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch

from ..errors import FlagError
from ..model import UNet
from ..passes.accuracy import pixel_agreement, relative_error
from ..passes.optimize import check_applicable, flags_label, optimize, parse_flags
from ..passes.registry import FLAGS
from .measure import (
    OtherProcessesCPU,
    conv_peak_gflops,
    count_flops,
    forward_peak_mb,
    load_average,
    machine_info,
    time_call,
)

BEST_EXACT = ["reparam", "fuse_bn", "channels_last", "inference_mode"]


def default_flag_sets(model: torch.nn.Module) -> list[list[str]]:
    """none, each applicable eager pass alone, the best eager, compiled and int8 sets."""
    applicable = [n for n in FLAGS if FLAGS[n].applies_to(model)]
    singles = [[n] for n in applicable if n not in ("compile", "int8")]
    best = [n for n in BEST_EXACT if n in applicable]
    compiled = parse_flags([*best, "compile"])
    int8 = parse_flags([n for n in best if n != "inference_mode"] + ["int8", "inference_mode"])
    sets = [[], *singles, parse_flags(best), compiled, int8]
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
    median_ms: float
    iqr_ms: float
    samples: int
    speedup: float
    gflops: float
    peak_pct: float
    peak_mb: float | None
    max_rel_error: float
    pixel_agreement: float
    setup_s: float
    within_budget: bool
    budget: float


def _measure(
    model: torch.nn.Module,
    reference: torch.Tensor,
    flags: list[str],
    x: torch.Tensor,
    threads: int,
    flops: int,
    conv_peak: float,
    min_seconds: float,
) -> dict[str, object]:
    run = optimize(model, flags, example_input=x, threads=threads)
    timing = time_call(lambda: run(x), min_seconds=min_seconds)
    peak_mb = forward_peak_mb(lambda: run(x))
    out = run(x)
    error = relative_error(out, reference)
    budget = max((FLAGS[f].tolerance for f in flags), default=FLAGS["inference_mode"].tolerance)
    gflops = flops / (timing.median_ms * 1e-3) / 1e9
    return dict(
        flags=run.label,
        median_ms=timing.median_ms,
        iqr_ms=timing.iqr_ms,
        samples=timing.samples,
        gflops=gflops,
        peak_pct=100 * gflops / conv_peak,
        peak_mb=peak_mb,
        max_rel_error=error,
        pixel_agreement=pixel_agreement(out, reference),
        setup_s=run.setup_seconds,
        within_budget=error <= budget,
        budget=budget,
    )


def run_bench(
    encoders: Sequence[str] = ("resnet18",),
    flag_sets: Sequence[Sequence[str]] | None = None,
    *,
    size: int = 256,
    batch: int = 1,
    threads: int | None = None,
    peers: bool = False,
    min_seconds: float = 1.0,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, object]:
    """Measure every (encoder, flag set); return {"machine": ..., "conv_peak_gflops", "rows"}.

    `progress(label, total)` is called before each of the `total` steps.
    """
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    models = {name: UNet(name).eval() for name in encoders}  # bad names fail before any timing
    plans: list[tuple[str, list[str]]] = []
    for name, model in models.items():
        sets = [parse_flags(s) for s in flag_sets] if flag_sets else default_flag_sets(model)
        for flags in sets:
            check_applicable(model, flags)
            plans.append((name, flags))
    if peers:
        from .peers import smp_unet

        peer_models = {name: smp_unet(name) for name in encoders}
    total = 1 + len(plans) + (2 * len(encoders) if peers else 0)
    report = progress or (lambda label, total: None)

    def step(label: str) -> None:
        report(label, total)

    load_before = load_average()
    neighbours = OtherProcessesCPU().start()
    step("conv peak")
    conv_peak = conv_peak_gflops(min_seconds=min_seconds)
    torch.manual_seed(0)
    x = torch.randn(batch, 3, size, size)
    rows: list[Row] = []
    for name, model in models.items():
        with torch.no_grad():
            reference = model(x)
        flops = count_flops(model, x)
        for enc, flags in plans:
            if enc != name:
                continue
            step(f"{name} {flags_label(flags)}")
            r = _measure(model, reference, flags, x, threads, flops, conv_peak, min_seconds)
            rows.append(Row(encoder=name, model="unet_decoder", speedup=0.0, **r))
        if peers:
            peer = peer_models[name]
            with torch.no_grad():
                peer_reference = peer(x)
            peer_flops = count_flops(peer, x)
            for flags in ([], ["channels_last", "compile", "inference_mode"]):
                step(f"smp {name} {flags_label(flags)}")
                r = _measure(
                    peer, peer_reference, flags, x, threads, peer_flops, conv_peak, min_seconds
                )
                rows.append(Row(encoder=name, model="smp.Unet", speedup=0.0, **r))
        baseline = next(
            (r.median_ms for r in rows if r.encoder == name and r.model == "unet_decoder"
             and r.flags == "none"),
            None,
        )  # fmt: skip
        if baseline is None:  # no plain row asked for: time it, the speedup needs it
            step(f"{name} none (baseline)")
            baseline = time_call(lambda m=model: m(x), min_seconds=min_seconds).median_ms
        for row in rows:
            if row.encoder == name:
                row.speedup = baseline / row.median_ms
    machine = machine_info()
    machine.update(threads=threads, load_before=load_before, others_cpu_pct=neighbours.stop())
    return {
        "machine": machine,
        "input": {"batch": batch, "channels": 3, "size": size},
        "conv_peak_gflops": conv_peak,
        "rows": [asdict(r) for r in rows],
    }


def fastest_within_budget(result: dict[str, object]) -> dict[str, object] | None:
    """The fastest of our rows whose error is within its flags' stated budget."""
    ours = [r for r in result["rows"] if r["model"] == "unet_decoder" and r["within_budget"]]
    return min(ours, key=lambda r: r["median_ms"], default=None)


__all__ = ["FlagError", "default_flag_sets", "fastest_within_budget", "run_bench"]
