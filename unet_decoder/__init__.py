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
from .version import __version__ as __version__

if TYPE_CHECKING:
    from .deploy import DeployedModel, build_artifact, load_deployed, optimize
    from .engines import EngineModel, export_onnx
    from .model import UNet
    from .passes import FLAGS, OptimizedModel, Pass

_LAZY = {
    "UNet": ".model",
    "FLAGS": ".passes",
    "OptimizedModel": ".passes",
    "Pass": ".passes",
    "EngineModel": ".engines",
    "export_onnx": ".engines",
    "optimize": ".deploy",
    "build_artifact": ".deploy",
    "load_deployed": ".deploy",
    "DeployedModel": ".deploy",
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
    "EngineModel",
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
