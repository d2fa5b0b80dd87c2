"""A user's own images (and masks) for accuracy numbers on their model and data.

Images are read from a folder (PNG, JPEG, BMP, TIFF), resized to the benchmark size and
normalized with ImageNet's mean and std (timm's default for its encoders). Masks, when given,
are single-channel PNGs of class indices with the same file stem. The first quarter of the
images (at least one) calibrates int8; the rest are held out for agreement and mIoU, so
calibration never sees the images a pass is judged on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import UNetDecoderError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DataError(UNetDecoderError, ValueError):
    """An images or masks folder is missing, empty, or does not match."""


@dataclass(frozen=True)
class UserData:
    calibration: torch.Tensor  # (Nc, C, H, W)
    images: torch.Tensor  # held out: (N, C, H, W)
    masks: torch.Tensor | None  # held out: (N, H, W) int64, or None without --masks
    names: list[str]


def _files(folder: Path, option: str) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"{option} {folder} is not a folder; give a folder of image files.")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(
            f"{option} {folder} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})."
        )
    return files


def _read(path: Path, mode: str):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.convert(mode) if mode != "mask" else image.copy()
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{path} is not a readable image ({type(e).__name__}).") from None


def load_user_data(
    images: str | Path, masks: str | Path | None, *, size: int | tuple[int, int], in_chans: int = 3
) -> UserData:
    """Images (and masks) resized to size (an int: square; or height, width); the first
    quarter calibrates."""
    import numpy as np

    size = (size, size) if isinstance(size, int) else tuple(size)
    files = _files(Path(images), "--images")
    if len(files) < 2:
        raise DataError(
            f"--images {images} has one image; give at least 2 (one calibrates, one is judged)."
        )
    mode = {1: "L", 3: "RGB"}.get(in_chans)
    if mode is None:
        raise DataError(f"--images supports 1- or 3-channel models, this one has {in_chans}.")
    mean = torch.tensor(IMAGENET_MEAN[:in_chans] if in_chans == 3 else (0.5,)).view(-1, 1, 1)
    std = torch.tensor(IMAGENET_STD[:in_chans] if in_chans == 3 else (0.25,)).view(-1, 1, 1)
    tensors = []
    for path in files:
        array = np.asarray(_read(path, mode), dtype=np.float32) / 255.0
        x = torch.from_numpy(array).reshape(array.shape[0], array.shape[1], -1).permute(2, 0, 1)
        x = F.interpolate(x[None], size=size, mode="bilinear", align_corners=False)[0]
        tensors.append((x - mean) / std)
    stack = torch.stack(tensors)
    n_cal = max(1, len(files) // 4)
    mask_stack = None
    if masks is not None:
        by_stem = {p.stem: p for p in _files(Path(masks), "--masks")}
        missing = [p.name for p in files[n_cal:] if p.stem not in by_stem]
        if missing:
            raise DataError(
                f"--masks {masks} has no mask for {len(missing)} held-out image(s), e.g. "
                f"{missing[0]}; name each mask like its image (same stem, .png)."
            )
        found = []
        for path in files[n_cal:]:
            mask = np.asarray(_read(by_stem[path.stem], "mask"))
            if mask.ndim != 2:
                raise DataError(
                    f"{by_stem[path.stem]} has {mask.shape[-1]} channels; a mask is one channel "
                    "of class indices (mode L or P)."
                )
            m = torch.from_numpy(mask.astype(np.int64))[None, None].float()
            found.append(F.interpolate(m, size=size, mode="nearest")[0, 0].long())
        mask_stack = torch.stack(found)
    names = [p.name for p in files[n_cal:]]
    return UserData(stack[:n_cal], stack[n_cal:], mask_stack, names)
