"""What else the dashboard tracks per encoder and flag set: accuracy drift, own memory, setup.

All grid entries are measured once in `setup_cache` (one process, one compile each), then
every track_ returns its number, so adding a metric does not add compiles.
"""

import time

import torch

from unet_decoder import optimize

from .common import (
    ENCODERS,
    FLAG_SETS,
    THREADS,
    example_input,
    measure,
    model,
    pixel_agreement,
    relative_error,
    resolve,
)


def _measure_all():
    results = {}
    x = example_input()
    for encoder in ENCODERS:
        m = model(encoder)
        with torch.no_grad():
            reference = m(x)
        flops = measure.count_flops(m, x)
        for flags in FLAG_SETS:
            try:
                names = resolve(encoder, flags)
            except NotImplementedError:
                continue
            start = time.perf_counter()
            run = optimize(m, names, x, threads=THREADS)
            setup_s = time.perf_counter() - start
            out = run(x)
            timing = measure.time_call(lambda run=run: run(x), min_seconds=0.5)
            results[encoder, flags] = {
                "relative_error": relative_error(out, reference),
                "pixel_agreement": 100 * pixel_agreement(out, reference),
                "forward_peak_mb": measure.forward_peak_mb(lambda run=run: run(x)),
                "setup_seconds": setup_s,
                "gflops": flops / (timing.median_ms * 1e-3) / 1e9,
            }
    return results


class Metrics:
    params = (ENCODERS, FLAG_SETS)
    param_names = ["encoder", "flags"]
    version = "1"
    timeout = 3600

    def setup_cache(self):
        return _measure_all()

    def setup(self, results, encoder, flags):
        if (encoder, flags) not in results:
            raise NotImplementedError(f"{flags} does not apply to {encoder}")
        self.values = results[encoder, flags]

    def track_relative_error(self, results, encoder, flags):
        """Relative L2 error of the logits vs plain fp32 eager: accuracy drift is a regression."""
        return self.values["relative_error"]

    track_relative_error.unit = "relative L2 error"

    def track_pixel_agreement(self, results, encoder, flags):
        return self.values["pixel_agreement"]

    track_pixel_agreement.unit = "% pixels"

    def track_forward_peak_mb(self, results, encoder, flags):
        """Peak memory the forward itself adds above the process's RSS before it."""
        return self.values["forward_peak_mb"]

    track_forward_peak_mb.unit = "MiB"

    def track_setup_seconds(self, results, encoder, flags):
        """One-off cost: reparam, folding, int8 calibration, torch.compile, warm-up."""
        return self.values["setup_seconds"]

    track_setup_seconds.unit = "seconds"

    def track_gflops(self, results, encoder, flags):
        """Useful work per second: FLOPs of the plain model / median forward time."""
        return self.values["gflops"]

    track_gflops.unit = "GFLOP/s"
