"""A UNet decoder on any timm encoder, with optimization passes proven equal to fp32.

The public names are loaded on first use (PEP 562), so that `import unet_decoder.errors` or
the command line's `--help` does not pay for importing torch and timm (~10 s).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    ArtifactError,
    ArtifactMismatchError,
    CheckpointError,
    CheckpointNotFoundError,
    ConfigError,
    EncoderError,
    FlagError,
    InputError,
    UNetDecoderError,
    WeightsUnavailableError,
)

if TYPE_CHECKING:
    from .artifact import DeployedModel, build_artifact, load_deployed
    from .engines import export_onnx
    from .model import UNet
    from .passes import FLAGS, OptimizedModel, Pass, optimize

_LAZY = {
    "UNet": ".model",
    "FLAGS": ".passes",
    "OptimizedModel": ".passes",
    "Pass": ".passes",
    "optimize": ".passes",
    "export_onnx": ".engines",
    "build_artifact": ".artifact",
    "load_deployed": ".artifact",
    "DeployedModel": ".artifact",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "FLAGS",
    "ArtifactError",
    "ArtifactMismatchError",
    "CheckpointError",
    "CheckpointNotFoundError",
    "ConfigError",
    "DeployedModel",
    "EncoderError",
    "FlagError",
    "InputError",
    "OptimizedModel",
    "Pass",
    "UNet",
    "UNetDecoderError",
    "WeightsUnavailableError",
    "build_artifact",
    "export_onnx",
    "load_deployed",
    "optimize",
]
__version__ = "0.1.0"
