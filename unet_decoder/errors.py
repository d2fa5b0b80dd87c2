"""Exceptions a user can catch, each with a one-line message that says what to do.

Every error derives from `UNetDecoderError`, so a script can catch the whole family,
and also from the builtin a caller would expect (`ValueError`, `FileNotFoundError`),
so code written against plain PyTorch keeps working.
"""

from __future__ import annotations


class UNetDecoderError(Exception):
    """Base class of every error raised on purpose by unet_decoder."""


class EncoderError(UNetDecoderError, ValueError):
    """The encoder name is unknown, or the encoder cannot feed a UNet decoder."""


class ConfigError(UNetDecoderError, ValueError):
    """A constructor argument (decoder_channels, num_classes...) is invalid."""


class InputError(UNetDecoderError, ValueError):
    """A forward input has the wrong rank, channel count or size."""


class CheckpointError(UNetDecoderError, ValueError):
    """A weights file cannot be read or does not match the model."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The weights file does not exist."""


class WeightsUnavailableError(UNetDecoderError, RuntimeError):
    """pretrained=True, but the weights cannot be downloaded from the hub."""


class FlagError(UNetDecoderError, ValueError):
    """An optimization flag is unknown or does not apply to this model."""


class ArtifactError(UNetDecoderError, ValueError):
    """A deployed artifact folder is missing, incomplete or damaged."""


class ArtifactMismatchError(ArtifactError):
    """A deployed artifact was made for another CPU capability or library version."""
