"""`export_onnx`: the UNet as an ONNX graph that ONNX Runtime and OpenVINO both load.

The graph is exported with torch's dynamo exporter (`torch.onnx.export(dynamo=True)`), the
path PyTorch maintains; the TorchScript exporter is deprecated. With `dynamic=True` the batch,
height and width are symbolic, and the model's pad-to-stride and crop are exported as shape
arithmetic, so one file serves every input size the eager model accepts.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from ..errors import UNetDecoderError

#: The ONNX opset both engines load (ONNX Runtime >= 1.17, OpenVINO >= 2024.0).
OPSET = 20


class EngineUnavailableError(UNetDecoderError, ImportError):
    """The `engines` extra (onnx, onnxscript, onnxruntime, openvino, nncf) is not installed."""


def require(module: str, what: str) -> None:
    """Import `module` or say which extra to install, in one line."""
    try:
        __import__(module)
    except ImportError:
        raise EngineUnavailableError(
            f"{what} needs the {module!r} package: install the extra with "
            "`uv sync --extra engines` (or pip install 'unet-decoder[engines]')."
        ) from None


def export_onnx(
    model: nn.Module,
    path: str | Path,
    example_input: torch.Tensor | None = None,
    *,
    dynamic: bool = True,
) -> Path:
    """Write `model` (eval mode, fp32) to `path` as ONNX; return the path.

    `dynamic=True` makes batch, height and width symbolic (any size, as in eager); False
    fixes them to `example_input`'s shape, which lets an engine plan its memory up front.
    """
    require("onnxscript", "ONNX export")
    path = Path(path)
    if path.suffix != ".onnx":
        raise UNetDecoderError(f"ONNX files end in .onnx, got {str(path)!r}; rename the output.")
    path.parent.mkdir(parents=True, exist_ok=True)
    in_chans = getattr(model, "in_chans", 3)
    if example_input is None:
        example_input = torch.randn(1, in_chans, 256, 256)
    dynamic_shapes = None
    if dynamic:
        dim = torch.export.Dim
        dynamic_shapes = ({0: dim("batch"), 2: dim("height"), 3: dim("width")},)
    model = model.eval()
    log = io.StringIO()
    # The exporter prints its progress to stdout and warns about each fallback; both are
    # noise for a user whose export succeeded, and the message of a failure says what failed.
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    with warnings.catch_warnings(), contextlib.redirect_stdout(log):
        warnings.simplefilter("ignore")
        logger.setLevel(logging.ERROR)
        try:
            program = torch.onnx.export(
                model, (example_input,), dynamo=True, opset_version=OPSET,
                input_names=["image"], output_names=["logits"],
                dynamic_shapes=dynamic_shapes, optimize=True, verbose=False,
            )  # fmt: skip
        except Exception as e:
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise UNetDecoderError(
                f"ONNX export of {getattr(model, 'encoder_name', type(model).__name__)!r} "
                f"failed ({type(e).__name__}: {first}); try dynamic=False, or report it."
            ) from e
        finally:
            logger.setLevel(level)
        # written under a temporary name and renamed: an interrupted export leaves no file
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            program.save(str(tmp), external_data=False)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return path


#: The shapes `check_onnx` runs by default: the grid's size, an odd size that exercises the
#: pad and crop, and a batch of two.
CHECK_SHAPES: tuple[tuple[int, int, int], ...] = ((1, 256, 256), (1, 250, 300), (2, 256, 256))


def check_onnx(
    model: nn.Module,
    path: str | Path,
    shapes: tuple[tuple[int, int, int], ...] = CHECK_SHAPES,
    *,
    threads: int | None = None,
) -> list[tuple[tuple[int, ...], float]]:
    """Run the exported file in ONNX Runtime on random inputs of `shapes` (batch, height,
    width); return (input shape, relative L2 error against `model` in fp32 eager) for each.
    A shape the file cannot take (a static export) raises UNetDecoderError."""
    require("onnxruntime", "Checking an ONNX export")
    from ..passes.accuracy import relative_error
    from .onnxruntime import OrtRunner

    runner = OrtRunner(Path(path), threads or torch.get_num_threads())
    declared = runner.session.get_inputs()[0].shape
    static = all(isinstance(d, int) for d in declared)
    generator = torch.Generator().manual_seed(0)
    found = []
    for batch, height, width in shapes:
        x = torch.randn(batch, getattr(model, "in_chans", 3), height, width, generator=generator)
        if static and list(x.shape) != declared:
            raise UNetDecoderError(
                f"{path} takes only inputs of shape {tuple(declared)}; export it with "
                "dynamic=True to check other sizes."
            )
        with torch.no_grad():
            expected = model.eval()(x)
        found.append((tuple(x.shape), relative_error(runner(x), expected)))
    return found
