"""Steady-state speed and process memory of one forward, per encoder and flag set; and how
the cost grows with the input size, the batch and the thread count."""

import os
import statistics
import time

from .census import file_census
from .common import ENCODERS, FLAG_SETS, example_input, runner


def injected_delay(run, x) -> float:
    """Seconds to add to each timed forward: UNET_BENCH_INJECT_SLOWDOWN (a fraction) of its
    median time. `unet-decoder noise --inject` sets it on its slowed side alone; the gate and
    the nightly refuse to run while it is set, so no kept series is slowed by it."""
    fraction = float(os.environ.get("UNET_BENCH_INJECT_SLOWDOWN", "0") or 0)
    if fraction <= 0:
        return 0.0
    times = []
    for _ in range(5):
        start = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - start)
    return fraction * statistics.median(times)


class _Timed:
    """Builds (or loads) and warms up the runner in setup; the timed call is one forward."""

    def _prepare(self, encoder, flags, batch=1, size=256, threads=2):
        self.run = runner(encoder, flags, batch=batch, size=size, threads=threads)
        self.x = example_input(batch, size)
        self.delay = injected_delay(self.run, self.x)

    def _forward(self):
        self.run(self.x)
        if self.delay:
            time.sleep(self.delay)


class Forward(_Timed):
    """1x3x256x256, 2 intra-op threads (part of this benchmark's identity: changing either
    needs a `version` bump)."""

    params = (ENCODERS, FLAG_SETS)
    param_names = ["encoder", "flags"]
    # 3: the trained model (Metrics' weights; int8 calibrated on the task's images), one
    # artifact per code version shared with Metrics; 2: compiled sets and engines run as their
    # deployable artifact (an AOTInductor package, an ONNX Runtime or OpenVINO file), built
    # once per environment and commit by a child process, on random-init weights; 1:
    # torch.compile in every process (dynamo's guards timed too, compiler memory in peakmem)
    version = "3"
    timeout = 900
    # Two rounds, each a new process; both load the same artifact (common.deployed).
    rounds = 2
    repeat = (5, 20, 10.0)
    warmup_time = 0.5

    def setup(self, encoder, flags):
        self._prepare(encoder, flags)

    def time_forward(self, encoder, flags):
        """Median wall time of one forward (compile/calibration excluded)."""
        self._forward()

    # after `setup`, in this process: the census of what it times (track_census reads it)
    time_forward.setup = file_census

    def peakmem_forward(self, encoder, flags):
        """Peak RSS of the whole process (import torch, model, loading the artifact or
        applying eager passes, forward): what a deployment pays; compilation happens in
        another process. See track_forward_peak_mb for the forward's own share."""
        self.run(self.x)


#: (batch, size, threads) around the 1x256, 2-thread point: one axis changed at a time.
SHAPES = {
    "1x256 2t": (1, 256, 2),
    "1x512 2t": (1, 512, 2),
    "8x256 2t": (8, 256, 2),
    "1x256 1t": (1, 256, 1),
}


class Scaling(_Timed):
    """How resnet34's forward grows with work: 4x the pixels, 8x the batch, half the threads.
    The shape parameter reads batch x size, threads."""

    params = (["none", "best_compiled"], list(SHAPES))
    param_names = ["flags", "shape"]
    version = "3"  # as Forward's
    timeout = 900
    rounds = 2
    repeat = (3, 10, 10.0)
    warmup_time = 0.5

    def setup(self, flags, shape):
        batch, size, threads = SHAPES[shape]
        self._prepare("resnet34", flags, batch=batch, size=size, threads=threads)

    def time_forward(self, flags, shape):
        self._forward()
