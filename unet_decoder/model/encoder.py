"""One small adapter that puts any timm `features_only` model behind the same contract.

The decoder reads only what timm's `feature_info` promises: channels and reductions, shallow
to deep. Encoder quirks are handled here once, from that metadata rather than from a list of
names: NHWC outputs (swin) are permuted to NCHW, and encoders whose first feature sits at
stride 4 (convnext, fastvit...) simply give one level fewer.
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Mapping
from typing import Any

import timm
import torch
from torch import nn

from ..errors import EncoderError

MAX_LEVELS = 5


def _family(name: str) -> str:
    """'resnet' for resnet34d, 'efficientnet' for efficientnet_b0: the leading letters."""
    match = re.match(r"[a-z]+", name)
    return match.group(0) if match else name


def _simplest_first(name: str) -> tuple[int, int, str]:
    return name.count("_"), len(name), name


def suggest_encoders(name: str, n: int = 5) -> list[str]:
    """The timm names a person most likely meant, for the 'did you mean' of an unknown name.

    Ranked: names that start with what was typed; names it starts with (resnet34d_x ->
    resnet34d); close spellings in the same family; the family's plain members (resnet18,
    resnet34 for resnet_nope); then any close spelling. Plain difflib alone ranks
    resnet50_gn and tresnet_m above resnet34 for 'resnet_nope'.
    """
    typed = name.lower().replace("-", "_")
    names = timm.list_models()
    family = _family(typed)
    members = sorted((m for m in names if _family(m) == family), key=_simplest_first)
    ranked = [
        *sorted((m for m in names if m.startswith(typed)), key=_simplest_first),
        *sorted((m for m in names if typed.startswith(m)), key=len, reverse=True),
        *difflib.get_close_matches(typed, members, n=n, cutoff=0.75),
        *members,
        *difflib.get_close_matches(typed, names, n=n, cutoff=0.6),
    ]
    return list(dict.fromkeys(ranked))[:n]


def _check_known(name: str) -> None:
    if not isinstance(name, str) or not name:
        raise EncoderError(f"encoder_name must be a timm model name, got {name!r}")
    arch = name.split(".", 1)[0]
    if timm.is_model(arch):
        return
    hint = suggest_encoders(arch)
    also = f" Did you mean: {', '.join(hint)}?" if hint else ""
    raise EncoderError(
        f"Unknown encoder {name!r}: not a timm model.{also} See timm.list_models() for every name."
    )


def _fixed_input_size(model: nn.Module) -> bool:
    return any(getattr(m, "strict_img_size", False) is True for m in model.modules())


class TimmEncoder(nn.Module):
    """timm encoder returning NCHW features at strides that double from level to level."""

    def __init__(
        self,
        name: str,
        *,
        in_chans: int = 3,
        pretrained: bool = False,
        state_dict: Mapping[str, torch.Tensor] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        _check_known(name)
        create_kwargs: dict[str, Any] = dict(features_only=True, in_chans=in_chans, **kwargs)
        if state_dict is not None:
            # timm's own loader: it remaps names for features_only wrappers, drops the
            # classifier and adapts the stem to in_chans, exactly as for hub weights.
            create_kwargs.update(pretrained=True, pretrained_cfg_overlay={"state_dict": state_dict})
        else:
            create_kwargs["pretrained"] = pretrained
        try:
            self.model = timm.create_model(name, **create_kwargs)
        except RuntimeError as e:
            if "features_only not implemented" in str(e):
                raise EncoderError(
                    f"Encoder {name!r} does not support timm's features_only, so it cannot feed "
                    "a UNet decoder; pick a CNN or hierarchical encoder (resnet34, convnext_tiny)."
                ) from None
            raise
        if "dynamic_img_size" not in kwargs and _fixed_input_size(self.model):
            # Fixed-size encoders (swin) refuse any other input; timm can build their attention
            # masks per input instead, which the pad/crop contract of UNet needs.
            create_kwargs["dynamic_img_size"] = True
            self.model = timm.create_model(name, **create_kwargs)
        info = self.model.feature_info
        channels, reductions = list(info.channels()), list(info.reduction())
        if len(channels) > MAX_LEVELS:
            channels, reductions = channels[-MAX_LEVELS:], reductions[-MAX_LEVELS:]
            self.model = timm.create_model(
                name, **{**create_kwargs, "out_indices": tuple(range(-MAX_LEVELS, 0))}
            )
        halving = all(b == 2 * a for a, b in itertools.pairwise(reductions))
        if len(channels) < 2 or not halving:
            raise EncoderError(
                f"Encoder {name!r} gives features at strides {reductions}; a UNet decoder needs "
                "at least two levels whose stride doubles at each level (2, 4, 8, 16, 32). "
                "Plain ViTs have one stride: use a hierarchical encoder (swin, convnext, resnet)."
            )
        fmt = getattr(self.model, "output_fmt", "NCHW")
        self.channels_last_output = str(getattr(fmt, "value", fmt)).upper() == "NHWC"
        self.name = name
        self.in_chans = in_chans
        self.channels: list[int] = channels
        self.reductions: list[int] = reductions

    @property
    def output_stride(self) -> int:
        """The largest stride: the input's height and width must be multiples of it."""
        return self.reductions[-1]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.model(x)
        if self.channels_last_output:
            # One permute per level; .permute keeps the NHWC memory, which is channels_last.
            features = [f.permute(0, 3, 1, 2) for f in features]
        return list(features)
