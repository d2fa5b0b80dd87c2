"""What else the dashboard tracks per encoder and flag set: accuracy, own memory, setup.

Accuracy is measured on weights with real margins: each encoder's UNet trained on the
synthetic shapes task (once per machine, cached), judged on 16 held-out images against the
trained fp32 model (relative error, pixel agreement) and against the ground truth (mIoU);
int8 calibrates on 8 other images. Each entry is measured once per asv run (one compile),
by the first of its track_ metrics, so adding a metric does not add compiles, and selecting
a few entries with -b measures only those.
"""

import time

import torch

from unet_decoder import optimize

from .common import (
    ENCODERS,
    FLAG_SETS,
    THREADS,
    cached_entry,
    measure,
    pixel_agreement,
    relative_error,
    resolve,
    trained,
)


def _measure(encoder, flags):
    """One grid entry on the trained model: accuracy, own memory, setup cost, speed."""
    from unet_decoder.passes.accuracy import mean_iou
    from unet_decoder.training import NUM_CLASSES

    names = resolve(encoder, flags)  # n/a before any training
    model_info, held, calibration = trained(encoder)
    m = model_info.model
    images = list(held.images.split(1))
    x = images[0]
    with torch.no_grad():
        reference = torch.cat([m(image) for image in images])
    flops = measure.count_flops(m, x)
    start = time.perf_counter()
    run = optimize(m, names, x, threads=THREADS, calibration=calibration.images.split(1))
    setup_s = time.perf_counter() - start
    out = torch.cat([run(image) for image in images])
    timing = measure.time_call(lambda: run(x), min_seconds=0.5)
    return {
        "relative_error": relative_error(out, reference),
        "pixel_agreement": 100 * pixel_agreement(out, reference),
        "miou": mean_iou(out, held.masks, NUM_CLASSES),
        "forward_peak_mb": measure.forward_peak_mb(lambda: run(x)),
        "setup_seconds": setup_s,
        "gflops": flops / (timing.median_ms * 1e-3) / 1e9,
    }


class Metrics:
    params = (ENCODERS, FLAG_SETS)
    param_names = ["encoder", "flags"]
    # 2: accuracy on trained weights and held-out task images (1: random init, random input)
    version = "2"
    timeout = 3600

    def setup(self, encoder, flags):
        # Each (benchmark, parameters) runs in its own process: the first of an entry's six
        # track_ metrics measures it, the others of the same asv run read that (no recompile).
        self.values = cached_entry("metrics-v2", f"{encoder}-{flags}",
                                   lambda: _measure(encoder, flags))  # fmt: skip

    def track_relative_error(self, encoder, flags):
        """Relative L2 error of the logits vs the trained fp32 eager model, held-out images."""
        return self.values["relative_error"]

    track_relative_error.unit = "relative L2 error"

    def track_pixel_agreement(self, encoder, flags):
        """Held-out pixels whose predicted class is the trained fp32 model's."""
        return self.values["pixel_agreement"]

    track_pixel_agreement.unit = "% pixels"

    def track_miou(self, encoder, flags):
        """Mean IoU against the synthetic task's ground truth (4 classes, 16 held-out images)."""
        return self.values["miou"]

    track_miou.unit = "mIoU"

    def track_forward_peak_mb(self, encoder, flags):
        """Peak memory the forward itself adds above the process's RSS before it."""
        return self.values["forward_peak_mb"]

    track_forward_peak_mb.unit = "MiB"

    def track_setup_seconds(self, encoder, flags):
        """One-off cost: reparam, folding, int8 calibration, torch.compile, warm-up."""
        return self.values["setup_seconds"]

    track_setup_seconds.unit = "seconds"

    def track_gflops(self, encoder, flags):
        """Useful work per second: FLOPs of the plain model / median forward time."""
        return self.values["gflops"]

    track_gflops.unit = "GFLOP/s"
