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
from .optimize import OptimizedModel, optimize
from .passes import FLAGS, Pass

__all__ = [
    "FLAGS",
    "CheckpointError",
    "CheckpointNotFoundError",
    "ConfigError",
    "EncoderError",
    "FlagError",
    "InputError",
    "OptimizedModel",
    "Pass",
    "UNet",
    "UNetDecoderError",
    "WeightsUnavailableError",
    "optimize",
]
__version__ = "0.1.0"
