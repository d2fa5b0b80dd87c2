"""The deployment engines users would pick instead of torch: ONNX export, ONNX Runtime, OpenVINO.

They need the optional `engines` extra; `optimize(model, flags, backend=...)` runs the model
in one under the same accuracy contract as the torch passes.
"""

from .deploy import BACKENDS, EngineModel, check_backend
from .export import EngineUnavailableError, export_onnx

__all__ = ["BACKENDS", "EngineModel", "EngineUnavailableError", "check_backend", "export_onnx"]
