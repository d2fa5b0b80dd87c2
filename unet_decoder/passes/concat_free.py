"""The concat-free decoder: `conv(cat(up, skip))` as `conv_up(up) + conv_skip(skip)`.

A convolution is linear in its input channels, so splitting the first conv of each decoder
block's weight along its inputs gives the same sum without materializing the concatenated
tensor (one copy of the block's widest activation, every block, every call). The add that is
left is what oneDNN fuses into a convolution as a "sum" post-op (inductor's binary conv
fusion, OpenVINO's and ONNX Runtime's NCHWc Conv+Add), together with the ReLU that follows
once the BatchNorm is folded. Only the rounding of the sum changes: an exact pass.
"""

from __future__ import annotations

import torch
from torch import nn

from ..model.blocks import UpBlock


class ConcatFreeUpBlock(nn.Module):
    """An `UpBlock` whose first conv is split by input: the upsampled part and the skip part."""

    def __init__(self, block: UpBlock) -> None:
        super().__init__()
        first, rest = block.conv[0], list(block.conv)[1:]
        up_channels = block.up.out_channels
        self.up = block.up
        self.conv_up = _part(first, slice(0, up_channels), bias=True)
        self.conv_skip = _part(first, slice(up_channels, first.in_channels), bias=False)
        self.rest = nn.Sequential(*rest)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.rest(self.conv_up(self.up(x)) + self.conv_skip(skip))


def _part(conv: nn.Conv2d, inputs: slice, *, bias: bool) -> nn.Conv2d:
    """`conv` restricted to the input channels `inputs`; the bias (if any) goes to one part."""
    weight = conv.weight[:, inputs]
    part = nn.Conv2d(
        weight.shape[1], conv.out_channels, conv.kernel_size, stride=conv.stride,
        padding=conv.padding, dilation=conv.dilation, bias=bias and conv.bias is not None,
    )  # fmt: skip
    part = part.to(device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        part.weight.copy_(weight)
        if part.bias is not None:
            part.bias.copy_(conv.bias)
    return part.train(conv.training)


def has_concat_blocks(model: nn.Module) -> bool:
    return any(isinstance(m, UpBlock) for m in model.modules())


def remove_concats(model: nn.Module) -> int:
    """Replace every `UpBlock` in place by its `ConcatFreeUpBlock`; returns how many."""
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, UpBlock)]
    for name, block in found:
        model.set_submodule(name, ConcatFreeUpBlock(block))
    return len(found)
