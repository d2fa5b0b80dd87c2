"""A short CPU training run on the synthetic task, cached once per machine.

Trained weights are what make accuracy numbers mean something: after a few hundred steps
every class has real logit margins, so a pass that changes answers shows up in agreement and
mIoU instead of hiding behind a model that predicts one class everywhere. The checkpoint is
cached by (encoder, architecture, task, seed, steps, torch, timm), so a different library
version never reuses weights trained by another, a commit that changes the architecture (a
decoder width, a block's layers) trains its own instead of failing to load the old ones, and
benchmarks and tests pay the training once.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..model import UNet
from ..passes.accuracy import mean_iou
from .task import HELD_OUT_SEED, NUM_CLASSES, TASK_NAME, make_batch

#: Bump when the recipe changes (optimizer, crops, schedule): cached weights are keyed on it.
RECIPE = "r1"
DEFAULT_STEPS = 150
TRAIN_SIZE, CROP, BATCH = 256, 128, 8
TRAIN_SIZES = (128, 192, 256, 384)
HELD_OUT_IMAGES = 16


@dataclass(frozen=True)
class TrainedModel:
    model: UNet
    path: Path
    miou: float
    train_seconds: float
    steps: int
    cached: bool


def cache_dir() -> Path:
    """$UNET_DECODER_CACHE, else $XDG_CACHE_HOME/unet-decoder, else ~/.cache/unet-decoder."""
    if os.environ.get("UNET_DECODER_CACHE"):
        return Path(os.environ["UNET_DECODER_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "unet-decoder"


def architecture_key(model: torch.nn.Module) -> str:
    """What a checkpoint was trained for: every module's type and settings (its repr) and
    every parameter's and buffer's name and shape. Code that only moves things around keeps
    the key; a changed width, layer or block gives another one."""
    digest = hashlib.sha256(repr(model).encode())
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}:{tuple(tensor.shape)};".encode())
    return digest.hexdigest()[:12]


def checkpoint_name(
    encoder: str,
    *,
    seed: int,
    steps: int,
    torch_version: str | None = None,
    architecture: str | None = None,
) -> str:
    """The cache file name of these weights; another torch, timm or architecture never
    reuses them. `torch_version`: another release's name (default: the running torch's);
    `architecture`: an `architecture_key` (default: this build's UNet on `encoder`)."""
    import timm

    torch_version = torch_version or torch.__version__.split("+")[0]
    architecture = architecture or architecture_key(UNet(encoder, num_classes=NUM_CLASSES))
    return (f"{encoder}-arch{architecture}-{TASK_NAME}-{RECIPE}-seed{seed}-steps{steps}"
            f"-torch{torch_version}-timm{timm.__version__}")  # fmt: skip


def _random_crops(images: torch.Tensor, masks: torch.Tensor, size: int, g: torch.Generator):
    h, w = images.shape[-2:]
    out_x, out_y = [], []
    for image, mask in zip(images, masks, strict=True):
        top = int(torch.randint(0, h - size + 1, (), generator=g))
        left = int(torch.randint(0, w - size + 1, (), generator=g))
        out_x.append(image[:, top : top + size, left : left + size])
        out_y.append(mask[top : top + size, left : left + size])
    return torch.stack(out_x), torch.stack(out_y)


def held_out(size: int | tuple[int, int] = TRAIN_SIZE, n: int = HELD_OUT_IMAGES):
    """The held-out images and masks every accuracy number is measured on."""
    return make_batch(n, size, seed=HELD_OUT_SEED)


def evaluate_miou(model: torch.nn.Module, size: int = TRAIN_SIZE) -> float:
    batch = held_out(size)
    with torch.inference_mode():
        logits = torch.cat([model(x.unsqueeze(0)) for x in batch.images])
    return mean_iou(logits, batch.masks, NUM_CLASSES)


def train(
    encoder: str,
    *,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    progress: Callable[[int, int, float], None] | None = None,
    **unet_kwargs,
) -> UNet:
    """Train UNet(encoder, num_classes=4) on random 128 px crops of 128-384 px task images."""
    torch.manual_seed(seed)
    model = UNet(encoder, num_classes=NUM_CLASSES, **unet_kwargs)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    for step in range(steps):
        # images drawn at several sizes, then cropped: objects are seen at every scale, so
        # the weights segment a 64 px benchmark input as well as a 512 px one
        size = TRAIN_SIZES[int(torch.randint(0, len(TRAIN_SIZES), (), generator=g))]
        batch = make_batch(BATCH, size, seed=1_000_000 * (seed + 1) + step)
        x, y = _random_crops(batch.images, batch.masks, CROP, g)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if progress is not None:
            progress(step + 1, steps, loss.item())
    return model.eval()


def trained_unet(
    encoder: str,
    *,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    progress: Callable[[int, int, float], None] | None = None,
    folder: str | Path | None = None,
) -> TrainedModel:
    """The encoder's UNet trained on the synthetic task: from the cache, or trained now."""
    from safetensors.torch import save_file

    folder = Path(folder) if folder is not None else cache_dir()
    untrained = UNet(encoder, num_classes=NUM_CLASSES)
    name = checkpoint_name(encoder, seed=seed, steps=steps,
                           architecture=architecture_key(untrained))  # fmt: skip
    path, record = folder / f"{name}.safetensors", folder / f"{name}.json"
    if path.is_file() and record.is_file():
        from safetensors.torch import load_file

        info = json.loads(record.read_text())
        # the model the key was read from: the file was written for exactly its architecture
        untrained.load_state_dict(load_file(str(path)))
        model = untrained.eval()
        return TrainedModel(model, path, info["miou"], info["train_seconds"], steps, True)
    start = time.perf_counter()
    model = train(encoder, steps=steps, seed=seed, progress=progress)
    seconds = time.perf_counter() - start
    miou = evaluate_miou(model)
    folder.mkdir(parents=True, exist_ok=True)
    # written under temporary names, then renamed: a killed run never leaves half a checkpoint
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    os.replace(tmp, path)
    info = {"encoder": encoder, "architecture": architecture_key(model), "task": TASK_NAME,
            "recipe": RECIPE, "seed": seed, "steps": steps, "miou": miou,
            "train_seconds": seconds}  # fmt: skip
    tmp = record.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    os.replace(tmp, record)
    return TrainedModel(model, path, miou, seconds, steps, False)
