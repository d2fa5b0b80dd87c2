"""The models people use today, built for side-by-side rows: segmentation_models_pytorch's Unet."""

from __future__ import annotations

from torch import nn

from ..errors import UNetDecoderError


class PeerUnavailableError(UNetDecoderError, ImportError):
    """The `peers` extra is not installed."""


def smp_unet(encoder: str, *, num_classes: int = 1, in_chans: int = 3) -> nn.Module:
    """smp.Unet on the same encoder: smp's own encoder when it has one, else `tu-<timm name>`."""
    try:
        import segmentation_models_pytorch as smp
    except ImportError:
        raise PeerUnavailableError(
            "--peers needs segmentation-models-pytorch: install the extra with "
            "`uv sync --extra peers` (or pip install 'unet-decoder[peers]')."
        ) from None
    name = encoder if encoder in smp.encoders.get_encoder_names() else f"tu-{encoder}"
    model = smp.Unet(name, encoder_weights=None, in_channels=in_chans, classes=num_classes)
    model.in_chans = in_chans
    model.encoder_name = f"smp:{name}"
    return model.eval()
