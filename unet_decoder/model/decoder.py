"""The UNet decoder loop: deepest feature first, one UpBlock per skip, shallowest last."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .blocks import UpBlock


class UNetDecoder(nn.Module):
    """Walks the encoder features from deep to shallow.

    `encoder_channels` are the features' channels from shallow to deep (timm's order);
    `decoder_channels[i]` is the width of the i-th block counted from the bottleneck, so an
    encoder with L levels uses the first L-1 entries.
    """

    def __init__(self, encoder_channels: Sequence[int], decoder_channels: Sequence[int]) -> None:
        super().__init__()
        deep_to_shallow = list(encoder_channels)[::-1]
        widths = list(decoder_channels)[: len(deep_to_shallow) - 1]
        in_channels = [deep_to_shallow[0], *widths[:-1]]
        self.blocks = nn.ModuleList(
            UpBlock(c_in, c_skip, c_out)
            for c_in, c_skip, c_out in zip(in_channels, deep_to_shallow[1:], widths, strict=True)
        )
        self.out_channels = widths[-1]

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        *skips, x = features
        for block, skip in zip(self.blocks, reversed(skips), strict=True):
            x = block(x, skip)
        return x
