"""The decoder's building blocks, kept apart from the loop that wires them (as in smp)."""

from __future__ import annotations

import torch
from torch import nn


class ConvBlock(nn.Sequential):
    """The classic UNet double convolution: 2 x [Conv2d 3x3 (no bias) -> BatchNorm2d -> ReLU].

    No conv bias: the BatchNorm that follows has its own, so a bias would be a dead parameter
    (and `fuse_bn` folds the pair into one biased conv anyway).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class UpBlock(nn.Module):
    """One decoder stage: learnable x2 upsampling, concatenation with the skip, ConvBlock.

    Concatenation (UNet), not addition (FPN): the block sees the skip's own channels, so its
    first conv has `out_channels + skip_channels` inputs.
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        self.conv = ConvBlock(out_channels + skip_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        return self.conv(torch.cat([x, skip], dim=1))
