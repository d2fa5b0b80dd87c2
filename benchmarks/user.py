"""Your own model and data, tracked like the built-in task: speed, agreement, mIoU.

Set, for every `asv run` on the machine (asv reads them when it discovers the suite):
  UNET_BENCH_CHECKPOINT  a whole UNet state dict (.safetensors/.pt)
  UNET_BENCH_ENCODER     its timm encoder (default resnet34)
  UNET_BENCH_IMAGES      a folder of images: the first quarter calibrates, the rest are judged
  UNET_BENCH_MASKS       optional: class-index PNG masks named like the images
The `weights` parameter is the checkpoint's name and the first 12 hex digits of its SHA-256,
so results of other weights land in another series and are never mixed with these, nor with
the built-in task's (`metrics.Metrics`). Without the variables every entry is n/a.
"""

import hashlib
import os
from pathlib import Path

from .common import FLAG_SETS, SIZE, THREADS, resolve
from .compat import api
from .runs import cached_entry, engine_options

try:  # n/a raised from inside a benchmark (not its setup): asv_runner's own exception
    from asv_runner.benchmarks.mark import SkipNotImplemented
except ImportError:
    SkipNotImplemented = NotImplementedError

NOT_SET = "not-set"


def _weights_label() -> str:
    path = os.environ.get("UNET_BENCH_CHECKPOINT")
    if not path or not Path(path).is_file():
        return NOT_SET
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    return f"{Path(path).stem}@{digest}"


WEIGHTS = _weights_label()
ENCODER = os.environ.get("UNET_BENCH_ENCODER", "resnet34")


_subject = []


def _measure(flags):
    """One flag set on your checkpoint and images, measured as `bench --checkpoint` does."""
    backend, names = resolve(ENCODER, flags)
    if not _subject:
        optional = [os.environ.get(v) for v in ("UNET_BENCH_IMAGES", "UNET_BENCH_MASKS")]
        _subject.append(api.checkpoint_subject(
            ENCODER, Path(os.environ["UNET_BENCH_CHECKPOINT"]),
            *(Path(v) if v else None for v in optional), SIZE, 1,
        ))  # fmt: skip
    subject = _subject[0]
    row = api.measure_row(subject.model, subject, subject.reference(), names, THREADS, None,
                          None, min_seconds=1.0, **engine_options(backend))  # fmt: skip
    return {
        "time_ms": row["median_ms"],
        "relative_error": row["max_rel_error"],
        "pixel_agreement": 100 * row["pixel_agreement"],
        "miou": row["miou"],
        "setup_seconds": row["setup_s"],
    }


class UserModel:
    params = ([WEIGHTS], FLAG_SETS)
    param_names = ["weights", "flags"]
    version = "1"
    timeout = 3600

    def setup(self, weights, flags):
        if weights == NOT_SET:
            raise NotImplementedError("set UNET_BENCH_CHECKPOINT (and UNET_BENCH_IMAGES)")
        # measured once per asv run by the first of the entry's track_ metrics
        self.values = cached_entry("user-v1", f"{weights}-{flags}", lambda: _measure(flags))

    def track_time_ms(self, weights, flags):
        """Median forward time on one of your images (measured in setup_cache, one process)."""
        return self.values["time_ms"]

    track_time_ms.unit = "ms"

    def track_pixel_agreement(self, weights, flags):
        """Your held-out pixels whose class is your fp32 model's."""
        return self.values["pixel_agreement"]

    track_pixel_agreement.unit = "% pixels"

    def track_relative_error(self, weights, flags):
        return self.values["relative_error"]

    track_relative_error.unit = "relative L2 error"

    def track_miou(self, weights, flags):
        """Mean IoU against your masks (n/a without UNET_BENCH_MASKS)."""
        if self.values["miou"] is None:
            raise SkipNotImplemented("set UNET_BENCH_MASKS for mIoU")
        return self.values["miou"]

    track_miou.unit = "mIoU"

    def track_setup_seconds(self, weights, flags):
        return self.values["setup_seconds"]

    track_setup_seconds.unit = "seconds"
