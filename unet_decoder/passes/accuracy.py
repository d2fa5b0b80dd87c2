"""How far an optimized model's logits are from the plain fp32 eager model's.

Relative L2 error, not absolute: random-init reparameterizable encoders (MobileOne, RepVGG)
produce activations orders of magnitude larger than a trained network's, and an absolute
tolerance would be meaningless across encoders.
"""

from __future__ import annotations

import torch


def relative_error(output: torch.Tensor, reference: torch.Tensor) -> float:
    """||output - reference|| / ||reference|| over the whole batch, in float64."""
    output, reference = output.double(), reference.double()
    denominator = reference.norm().item()
    difference = (output - reference).norm().item()
    return difference / denominator if denominator > 0 else difference


def pixel_agreement(output: torch.Tensor, reference: torch.Tensor) -> float:
    """Share of pixels whose predicted class is unchanged (sign of the logit for one class)."""
    same = predicted_classes(output) == predicted_classes(reference)
    return same.double().mean().item()


def predicted_classes(logits: torch.Tensor) -> torch.Tensor:
    """(N, H, W) class indices: argmax over classes, or the logit's sign for one class."""
    return (logits[:, 0] > 0).long() if logits.shape[1] == 1 else logits.argmax(1)


def mean_iou(logits: torch.Tensor, masks: torch.Tensor, num_classes: int) -> float:
    """Mean intersection over union against ground-truth masks, over the classes present.

    A class absent from both prediction and truth is left out rather than counted as a
    perfect 1.0, which would flatter a model on a small set.
    """
    predicted = predicted_classes(logits)
    ious = []
    for c in range(num_classes):
        truth, guess = masks == c, predicted == c
        union = (truth | guess).sum().item()
        if union:
            ious.append((truth & guess).sum().item() / union)
    return sum(ious) / len(ious) if ious else float("nan")
