"""What a row is measured on: one encoder's model and the images it is timed, calibrated and
judged on, from the built-in task, from the user's checkpoint and images, or random.

By default the models are trained on the synthetic task first (once per machine, cached): on
random-init weights every pass "agrees" with fp32 because the model predicts one class
everywhere. `bench`, `tune` and the asv suites all take their subjects from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import UNetDecoderError
from ..model import UNet

WEIGHTS = ("synthetic", "random")
CALIBRATION_IMAGES = 8


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


def check_data_options(checkpoint: object, images: object, masks: object) -> None:
    """The one rule for --checkpoint, --images and --masks (bench and tune)."""
    if (images is not None or masks is not None) and checkpoint is None:
        raise UNetDecoderError("--images and --masks judge your own --checkpoint; give it too.")
    if masks is not None and images is None:
        raise UNetDecoderError("--masks needs --images (a mask per held-out image).")


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


def random_subject(encoder: str, size: int, batch: int) -> Subject:
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


def subject_for(
    encoder: str,
    *,
    size: int | tuple[int, int],
    batch: int,
    weights: str = "synthetic",
    checkpoint: str | Path | None = None,
    images: str | Path | None = None,
    masks: str | Path | None = None,
    progress: Callable[[str], None] = lambda label: None,
) -> Subject:
    """The subject the options name: the user's checkpoint (on their images), else the
    built-in task's trained model, else random init."""
    if checkpoint is not None:
        return checkpoint_subject(
            encoder, Path(checkpoint), None if images is None else Path(images),
            None if masks is None else Path(masks), size, batch,
        )  # fmt: skip
    if weights == "synthetic":
        return synthetic_subject(encoder, size, batch, progress)
    return random_subject(encoder, size, batch)
