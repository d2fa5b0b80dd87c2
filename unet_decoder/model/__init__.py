"""The model room: a timm encoder adapter, the UNet blocks and decoder, UNet, checkpoints.

Depends only on `unet_decoder.errors`; everything else in the package builds on it.
"""

from .unet import DEFAULT_DECODER_CHANNELS, UNet

__all__ = ["DEFAULT_DECODER_CHANNELS", "UNet"]
