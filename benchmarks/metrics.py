"""What else the dashboard tracks per encoder and flag set: accuracy, own memory, setup.

Accuracy is measured on weights with real margins: each encoder's UNet trained on the
synthetic shapes task (once per machine, cached), judged on 16 held-out images against the
trained fp32 model (relative error, pixel agreement) and against the ground truth (mIoU);
int8 calibrates on 8 other images. Each entry is measured once per asv run (one compile),
by the first of its track_ metrics, so adding a metric does not add compiles, and selecting
a few entries with -b measures only those. Compiled sets and engines are judged as the very
artifact `Forward` times (`common.deployed`): built once per code version, loaded here.
"""

import inspect

from .artifacts import deployed
from .common import ENCODERS, FLAG_SETS, SIZE, THREADS, resolve
from .compat import api
from .runs import cached_entry, engine_options


def _measure(encoder, flags):
    """One grid entry on the trained model, measured as `unet-decoder bench` measures a row."""
    backend, names = resolve(encoder, flags)  # n/a before any training
    if api.synthetic_subject is None:  # a commit from before trained weights existed
        raise NotImplementedError("this commit has no trained-weights measurement")
    subject = api.synthetic_subject(encoder, SIZE, 1)
    flops = api.count_flops(subject.model, subject.timing_input)
    built = {}
    if "prebuilt" in inspect.signature(api.measure_row).parameters:
        # the artifact Forward times (same weights, calibration, shape and threads)
        prebuilt = deployed(subject.model, backend, names, subject.timing_input, THREADS,
                            calibration="synthetic")  # fmt: skip
        built = {"prebuilt": prebuilt} if prebuilt is not None else {}
    row = api.measure_row(subject.model, subject, subject.reference(), names, THREADS, flops,
                          None, min_seconds=0.5, **built, **engine_options(backend))  # fmt: skip
    return {
        "relative_error": row["max_rel_error"],
        "pixel_agreement": 100 * row["pixel_agreement"],
        "miou": row["miou"],
        "forward_peak_mb": row["peak_mb"],
        "setup_seconds": row["setup_s"],
        "gflops": row["gflops"],
    }


class Metrics:
    params = (ENCODERS, FLAG_SETS)
    param_names = ["encoder", "flags"]
    # 3: compiled sets and engines judged as the artifact Forward times, setup_seconds is
    # that artifact's build time; 2: optimized in this process, accuracy on trained weights
    # and held-out task images; 1: random init, random input
    version = "3"
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
        """One-off cost: reparam, folding, int8 calibration, torch.compile, warm-up; for
        compiled sets and engines, building their deployable artifact (export, calibration,
        compile, packaging) in its own process, once per code version."""
        return self.values["setup_seconds"]

    track_setup_seconds.unit = "seconds"

    def track_gflops(self, encoder, flags):
        """Useful work per second: FLOPs of the plain model / median forward time."""
        return self.values["gflops"]

    track_gflops.unit = "GFLOP/s"
