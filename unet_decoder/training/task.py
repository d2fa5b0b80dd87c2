"""A segmentation task made by the code: accuracy claims need weights with real margins.

A random-init UNet predicts one class almost everywhere, so "pixel agreement" with it passes
whatever an optimization does. This task gives a short CPU training run something real to
learn, offline and deterministically: textured objects of three shapes on a textured
background, four classes in all (0 background, 1 disk, 2 square, 3 triangle), each covering
at least 10% of the pixels of a held-out set (tests check it). Colours are random per object,
so the model must learn shape and texture, not a colour lookup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

#: Bump when the images change: trained checkpoints are cached under this name.
TASK_NAME = "shapes-v1"
CLASS_NAMES = ("background", "disk", "square", "triangle")
NUM_CLASSES = len(CLASS_NAMES)
TRAIN_SEED, CALIBRATION_SEED, HELD_OUT_SEED = 0, 1, 2


@dataclass(frozen=True)
class Batch:
    images: torch.Tensor  # (N, 3, H, W) float32, roughly zero mean and unit variance
    masks: torch.Tensor  # (N, H, W) int64 class indices


def _texture(kind: int, h: int, w: int, g: torch.Generator) -> torch.Tensor:
    """(H, W) pattern in [-1, 1]: stripes, checks or dots at a random phase and period."""
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    period = 4 + 4 * torch.rand((), generator=g).item()
    angle = math.pi * torch.rand((), generator=g).item()
    u = (xx * math.cos(angle) + yy * math.sin(angle)) * (2 * math.pi / period)
    v = (-xx * math.sin(angle) + yy * math.cos(angle)) * (2 * math.pi / period)
    if kind == 0:
        return torch.sin(u)
    if kind == 1:
        return torch.sign(torch.sin(u) * torch.sin(v))
    return torch.cos(u) * torch.cos(v)


def _shape_mask(cls: int, h: int, w: int, g: torch.Generator) -> torch.Tensor:
    """A disk, square or triangle covering roughly 8-25% of the image, anywhere in it."""
    yy, xx = torch.meshgrid(torch.arange(h) / h, torch.arange(w) / w, indexing="ij")
    r = 0.18 + 0.1 * torch.rand((), generator=g).item()
    cy, cx = (1.2 * r + (1 - 2.4 * r) * torch.rand(2, generator=g)).tolist()
    if cls == 1:
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
    if cls == 2:
        return ((yy - cy).abs() <= 0.85 * r) & ((xx - cx).abs() <= 0.85 * r)
    # an upward triangle, 2.2 r tall and 2.8 r wide at its base: about as large as the disk
    top, base = cy - 1.2 * r, cy + 1.0 * r
    half_width = 1.4 * r * ((yy - top) / (base - top)).clamp(min=0)
    return (yy >= top) & (yy <= base) & ((xx - cx).abs() <= half_width)


def make_batch(n: int, size: int | tuple[int, int] = 256, *, seed: int = TRAIN_SEED) -> Batch:
    """n images and masks, the same for the same (n, size, seed) on every machine."""
    h, w = (size, size) if isinstance(size, int) else size
    g = torch.Generator().manual_seed(seed)  # layout, colours, textures: the same at any size
    noise = torch.Generator().manual_seed(seed + 10_000)
    images = torch.empty(n, 3, h, w)
    masks = torch.zeros(n, h, w, dtype=torch.int64)
    for i in range(n):
        colour = torch.rand(3, 1, 1, generator=g) * 2 - 1
        image = colour + 0.5 * _texture(2, h, w, g)
        # one object of each class, in random order (so each occludes the others), then one
        # more of a random class half the time: every class is well represented
        classes = (1 + torch.randperm(3, generator=g)).tolist()
        if torch.rand((), generator=g).item() < 0.5:
            classes.append(1 + int(torch.randint(0, 3, (), generator=g)))
        for cls in classes:
            inside = _shape_mask(cls, h, w, g)
            colour = torch.rand(3, 1, 1, generator=g) * 2 - 1
            # disks are striped, squares checked, triangles flat: texture is part of the class
            pattern = _texture(cls - 1, h, w, g) if cls < 3 else torch.zeros(h, w)
            image = torch.where(inside, colour + 0.6 * pattern, image)
            masks[i][inside] = cls
        images[i] = image + 0.1 * torch.randn(3, h, w, generator=noise)
    return Batch(images, masks)
