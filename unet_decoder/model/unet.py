"""UNet (Ronneberger et al. 2015) on any timm encoder: the model every pass and benchmark uses."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, ConfigError, InputError, WeightsUnavailableError
from .checkpoint import is_whole_model, mismatch_message, parse_load_error, read_state_dict
from .decoder import UNetDecoder
from .encoder import TimmEncoder

DEFAULT_DECODER_CHANNELS = (256, 128, 64, 32)


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive int, got {value!r}")


class UNet(nn.Module):
    """timm encoder -> UNet decoder (ConvTranspose2d x2, concat skip, double conv) -> logits.

    Any input height and width works: the input is zero-padded at the bottom/right up to a
    multiple of the encoder's largest stride, run, and the logits cropped back, so they always
    have the input's size. The last decoder block runs at the encoder's first stride (2 for
    most CNNs, 4 for convnext/swin/fastvit); a 1x1 conv (the paper's final layer) gives
    `num_classes` logits, and a bilinear upsample brings them to the input size.

    Weights: `pretrained=False` by default, because hubs are unreachable on many machines;
    `checkpoint_path` loads a local safetensors or weights-only torch file holding either the
    encoder alone (a timm classifier's state dict) or the whole UNet (`UNet.state_dict()`).
    """

    def __init__(
        self,
        encoder_name: str = "resnet34",
        *,
        num_classes: int = 1,
        in_chans: int = 3,
        decoder_channels: Sequence[int] = DEFAULT_DECODER_CHANNELS,
        pretrained: bool = False,
        checkpoint_path: str | Path | None = None,
        **encoder_kwargs: Any,
    ) -> None:
        super().__init__()
        _check_positive_int("num_classes", num_classes)
        _check_positive_int("in_chans", in_chans)
        if isinstance(decoder_channels, (str, bytes)) or not isinstance(decoder_channels, Sequence):
            raise ConfigError(
                f"decoder_channels must be a sequence of ints, got {decoder_channels!r}"
            )
        for c in decoder_channels:
            _check_positive_int("every decoder_channels entry", c)

        state = read_state_dict(checkpoint_path) if checkpoint_path is not None else None
        whole = state is not None and is_whole_model(state)
        self.encoder = self._build_encoder(
            encoder_name,
            in_chans=in_chans,
            pretrained=pretrained and state is None,
            encoder_state=None if whole else state,
            checkpoint_path=checkpoint_path,
            **encoder_kwargs,
        )
        needed = len(self.encoder.channels) - 1
        if len(decoder_channels) < needed:
            raise ConfigError(
                f"decoder_channels={tuple(decoder_channels)} has {len(decoder_channels)} entries "
                f"but encoder {encoder_name!r} has {needed + 1} feature levels: give at least "
                f"{needed} widths, deepest first, e.g. {DEFAULT_DECODER_CHANNELS[:needed]}."
            )
        self.decoder = UNetDecoder(self.encoder.channels, decoder_channels)
        self.head = nn.Conv2d(self.decoder.out_channels, num_classes, kernel_size=1)
        self.encoder_name = encoder_name
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.decoder_channels = tuple(decoder_channels[:needed])
        if whole:
            self._load_whole(state, checkpoint_path)

    @staticmethod
    def _build_encoder(
        name: str,
        *,
        in_chans: int,
        pretrained: bool,
        encoder_state: dict[str, torch.Tensor] | None,
        checkpoint_path: str | Path | None,
        **kwargs: Any,
    ) -> TimmEncoder:
        try:
            return TimmEncoder(
                name, in_chans=in_chans, pretrained=pretrained, state_dict=encoder_state, **kwargs
            )
        except (RuntimeError, KeyError) as e:
            if encoder_state is not None:
                missing, unexpected, sizes = parse_load_error(str(e))
                if not (missing or unexpected or sizes):
                    missing = [str(e).strip("'\"")] if isinstance(e, KeyError) else []
                what = f"encoder {name!r}"
                raise CheckpointError(
                    mismatch_message(checkpoint_path, what, missing, unexpected, sizes)
                ) from None
            if pretrained:
                raise WeightsUnavailableError(
                    f"pretrained=True could not get weights for {name!r} "
                    f"({type(e).__name__}: {str(e).splitlines()[0][:120]}); download them where "
                    "the hub is reachable and pass checkpoint_path='weights.safetensors' instead."
                ) from None
            raise
        except OSError as e:  # hub unreachable: connection errors, offline mode, cache misses
            if not pretrained:
                raise
            raise WeightsUnavailableError(
                f"pretrained=True could not download weights for {name!r} "
                f"({type(e).__name__}); download them where the hub is reachable and pass "
                "checkpoint_path='weights.safetensors' instead."
            ) from None

    def _load_whole(self, state: dict[str, torch.Tensor], path: str | Path | None) -> None:
        try:
            self.load_state_dict(state, strict=True)
        except RuntimeError as e:
            missing, unexpected, sizes = parse_load_error(str(e))
            raise CheckpointError(
                mismatch_message(path, f"UNet({self.encoder_name!r})", missing, unexpected, sizes)
            ) from None

    def check_input(self, x: torch.Tensor) -> None:
        """Fail fast with a readable message instead of a shape error deep in the encoder."""
        if not isinstance(x, torch.Tensor):
            raise InputError(f"UNet expects a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4:
            raise InputError(
                f"UNet expects a 4D input (batch, channels, height, width), got shape "
                f"{tuple(x.shape)}; add a batch dimension with x.unsqueeze(0)."
            )
        if x.shape[1] != self.in_chans:
            raise InputError(
                f"Input has {x.shape[1]} channels but the model was built with "
                f"in_chans={self.in_chans}; build UNet(..., in_chans={x.shape[1]}) "
                "or fix the input."
            )
        if x.shape[2] < 1 or x.shape[3] < 1:
            raise InputError(f"Input height and width must be positive, got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        height, width = x.shape[-2:]
        stride = self.encoder.output_stride
        pad_h, pad_w = (-height) % stride, (-width) % stride
        # An exported graph must pad and crop for every size, not just its example's.
        always = torch.compiler.is_exporting()
        if always or pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        features = self.encoder(x)
        # The 1x1 head runs before the upsample, on the decoder's resolution: bilinear
        # interpolation weights sum to 1, so it commutes with the affine head, and the upsample
        # then moves num_classes channels instead of the decoder's last width (32).
        y = self.head(self.decoder(features))
        if self.encoder.reductions[0] > 1:
            y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        if always or pad_h or pad_w:
            y = y[..., :height, :width]
        return y
