"""What else the dashboard tracks per encoder and flag set: accuracy, own memory, setup.

Accuracy is measured on weights with real margins: each encoder's UNet trained on the
synthetic shapes task (once per machine, cached), judged on 16 held-out images against the
trained fp32 model (relative error, pixel agreement) and against the ground truth (mIoU);
int8 calibrates on 8 other images. All grid entries are measured once in `setup_cache` (one
process, one compile each), then every track_ returns its number, so adding a metric does not
add compiles.
"""

import time

import torch

from unet_decoder import optimize

from .common import (
    ENCODERS,
    FLAG_SETS,
    THREADS,
    measure,
    pixel_agreement,
    relative_error,
    resolve,
    trained,
)


def _measure_all():
    from unet_decoder.passes.accuracy import mean_iou
    from unet_decoder.training import NUM_CLASSES

    results = {}
    for encoder in ENCODERS:
        try:
            model_info, held, calibration = trained(encoder)
        except NotImplementedError:
            continue
        m = model_info.model
        images = list(held.images.split(1))
        x = images[0]
        with torch.no_grad():
            reference = torch.cat([m(image) for image in images])
        flops = measure.count_flops(m, x)
        for flags in FLAG_SETS:
            try:
                names = resolve(encoder, flags)
            except NotImplementedError:
                continue
            start = time.perf_counter()
            run = optimize(m, names, x, threads=THREADS, calibration=calibration.images.split(1))
            setup_s = time.perf_counter() - start
            out = torch.cat([run(image) for image in images])
            timing = measure.time_call(lambda run=run, x=x: run(x), min_seconds=0.5)
            results[encoder, flags] = {
                "relative_error": relative_error(out, reference),
                "pixel_agreement": 100 * pixel_agreement(out, reference),
                "miou": mean_iou(out, held.masks, NUM_CLASSES),
                "forward_peak_mb": measure.forward_peak_mb(lambda run=run, x=x: run(x)),
                "setup_seconds": setup_s,
                "gflops": flops / (timing.median_ms * 1e-3) / 1e9,
            }
    return results


class Metrics:
    params = (ENCODERS, FLAG_SETS)
    param_names = ["encoder", "flags"]
    # 2: accuracy on trained weights and held-out task images (1: random init, random input)
    version = "2"
    timeout = 3600

    def setup_cache(self):
        return _measure_all()

    def setup(self, results, encoder, flags):
        if (encoder, flags) not in results:
            raise NotImplementedError(f"{flags} does not apply to {encoder}")
        self.values = results[encoder, flags]

    def track_relative_error(self, results, encoder, flags):
        """Relative L2 error of the logits vs the trained fp32 eager model, held-out images."""
        return self.values["relative_error"]

    track_relative_error.unit = "relative L2 error"

    def track_pixel_agreement(self, results, encoder, flags):
        """Held-out pixels whose predicted class is the trained fp32 model's."""
        return self.values["pixel_agreement"]

    track_pixel_agreement.unit = "% pixels"

    def track_miou(self, results, encoder, flags):
        """Mean IoU against the synthetic task's ground truth (4 classes, 16 held-out images)."""
        return self.values["miou"]

    track_miou.unit = "mIoU"

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
