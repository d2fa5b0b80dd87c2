"""The deployment engines users would pick instead of torch: ONNX export, ONNX Runtime, OpenVINO.

They need the optional `engines` extra; `optimize(model, flags, backend=...)` runs the model
in one under the same accuracy contract as the torch passes.
"""

from .backends import BACKENDS, ENGINE_SETS, Backend, check_backend, check_cpu
from .export import EngineUnavailableError, export_onnx
from .runner import EngineModel, build_engine, cached_export

__all__ = [
    "BACKENDS",
    "ENGINE_SETS",
    "Backend",
    "EngineModel",
    "EngineUnavailableError",
    "build_engine",
    "cached_export",
    "check_backend",
    "check_cpu",
    "export_onnx",
]
