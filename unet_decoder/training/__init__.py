"""The weights room: a synthetic segmentation task, a short CPU training run, and a
per-machine cache of the trained checkpoints that accuracy numbers are measured on.

Sits above `model` (it trains a UNet) and below `tracking` (bench and asv read its weights).
"""

from .task import CLASS_NAMES, NUM_CLASSES, TASK_NAME, Batch, make_batch
from .train import TrainedModel, cache_dir, held_out, trained_unet

__all__ = [
    "CLASS_NAMES",
    "NUM_CLASSES",
    "TASK_NAME",
    "Batch",
    "TrainedModel",
    "cache_dir",
    "held_out",
    "make_batch",
    "trained_unet",
]
