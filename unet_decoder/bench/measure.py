"""Measurements shared by `unet-decoder bench` and the asv suites, so both report the same thing.

Timings are medians of many calls after warm-up (one-off setup is timed apart); FLOPs come
from `torch.utils.flop_counter` on the plain model, so GFLOP/s is useful work per second for
every flag set; memory is the forward's own peak, apart from the interpreter's baseline.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..machine import cpu_flags, cpu_name


@dataclass(frozen=True)
class Timing:
    median_ms: float
    iqr_ms: float
    samples: int


def time_call(
    fn: Callable[[], object], *, min_samples: int = 10, min_seconds: float = 1.0
) -> Timing:
    """Call `fn` until both limits are met; median and interquartile range in milliseconds."""
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < min_samples or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return _summary(samples)


def _summary(samples: list[float]) -> Timing:
    """Median and interquartile range of samples in milliseconds."""
    quartiles = statistics.quantiles(samples, n=4) if len(samples) > 1 else [samples[0]] * 3
    return Timing(statistics.median(samples), quartiles[2] - quartiles[0], len(samples))


#: Pause between two candidates of an interleaved round (see `time_interleaved`).
SWITCH_PAUSE_S = 0.05


def time_interleaved(
    fns: list[Callable[[], object]],
    *,
    rounds: int = 5,
    min_seconds: float = 1.0,
    min_samples: int = 10,
) -> list[Timing]:
    """Time several candidates side by side: `rounds` rounds, each giving every candidate
    `min_seconds / rounds` of calls in turn, so a slow minute of the machine hits them all
    alike instead of whichever row happened to run then. Per candidate: median and IQR of
    all its samples."""
    samples: list[list[float]] = [[] for _ in fns]
    per_round = min_seconds / rounds
    per_round_calls = max(2, -(-min_samples // rounds))
    for _ in range(rounds):
        for fn, mine in zip(fns, samples, strict=True):
            # The previous candidate's thread pool (OpenMP, ONNX Runtime's, OpenVINO's TBB)
            # spins for a while after its last call and would steal this one's cores: let
            # it go idle, then warm this one's caches with an untimed call.
            time.sleep(SWITCH_PAUSE_S)
            fn()
            start, n = time.perf_counter(), 0
            while n < per_round_calls or time.perf_counter() - start < per_round:
                t0 = time.perf_counter()
                fn()
                mine.append((time.perf_counter() - t0) * 1e3)
                n += 1
    return [_summary(mine) for mine in samples]


def conv_peak_gflops(*, channels: int = 256, size: int = 56, min_seconds: float = 1.0) -> float:
    """This machine's practical fp32 conv rate: a large 3x3 channels_last conv, eager oneDNN.

    The yardstick for '% of peak': a UNet cannot run faster than its biggest convolutions do.
    """
    conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False).eval()
    conv = conv.to(memory_format=torch.channels_last)
    x = torch.randn(1, channels, size, size).contiguous(memory_format=torch.channels_last)
    flops = 2 * channels * channels * 9 * size * size
    with torch.inference_mode():
        for _ in range(3):
            conv(x)
        timing = time_call(lambda: conv(x), min_samples=20, min_seconds=min_seconds)
    return flops / (timing.median_ms * 1e-3) / 1e9


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _release_free_heap() -> None:
    """Give freed heap pages back to the OS, or a repeated forward reuses them unseen."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def forward_peak_mb(fn: Callable[[], object]) -> float | None:
    """Peak resident memory one call adds above the RSS before it (Linux; None elsewhere).

    Resets the process high-water mark through /proc/self/clear_refs, so the number is the
    forward's own activations and workspaces, not import torch's ~700 MiB.
    """
    _release_free_heap()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    before = _status_kib("VmRSS")
    fn()
    peak = _status_kib("VmHWM")
    if before is None or peak is None:
        return None
    return max(peak - before, 0) / 1024


def machine_info() -> dict[str, object]:
    """What a reader needs to trust or compare a number: versions, threads, CPU."""
    import timm

    return {
        "cpu": cpu_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
