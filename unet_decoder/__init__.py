"""A UNet decoder on any timm encoder, with optimization passes proven equal to fp32."""

from .errors import (
    CheckpointError,
    CheckpointNotFoundError,
    ConfigError,
    EncoderError,
    FlagError,
    InputError,
    UNetDecoderError,
    WeightsUnavailableError,
)
from .model import UNet

__all__ = [
    "CheckpointError",
    "CheckpointNotFoundError",
    "ConfigError",
    "EncoderError",
    "FlagError",
    "InputError",
    "UNet",
    "UNetDecoderError",
    "WeightsUnavailableError",
]
__version__ = "0.1.0"
