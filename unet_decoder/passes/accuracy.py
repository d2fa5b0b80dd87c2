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
    if output.shape[1] == 1:
        same = (output > 0) == (reference > 0)
    else:
        same = output.argmax(1) == reference.argmax(1)
    return same.double().mean().item()
