"""`unet-decoder export`: the UNet as ONNX (dynamic sizes), checked in ONNX Runtime."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..errors import UNetDecoderError
from ..files import check_output


def add(sub) -> None:
    export = sub.add_parser(
        "export",
        help="export a UNet to ONNX (dynamic batch, height and width) and check it",
        description="Export with torch's dynamo exporter (opset 20), then run the file in "
        "ONNX Runtime at 1x256x256, 1x250x300 and 2x256x256 and compare with the fp32 eager "
        "model: exit 1 if any relative error is over 1e-4.",
    )
    export.add_argument("out", type=Path, help="the .onnx file to write")
    export.add_argument("--encoder", default="resnet34", help="timm encoder (resnet34)")
    export.add_argument("--checkpoint", type=Path,
                        help="UNet weights (.safetensors/.pt); default: random init")  # fmt: skip
    export.add_argument("--num-classes", type=int, default=None,
                        help="output classes (default: the checkpoint's head, else 1)")  # fmt: skip
    export.add_argument("--static", action="store_true",
                        help="fix the shape to 1x3x256x256 instead of dynamic sizes")  # fmt: skip
    export.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..engines.export import CHECK_SHAPES, check_onnx, export_onnx
    from ..model import UNet
    from ..model.checkpoint import checkpoint_num_classes
    from ..passes.registry import EXACT_TOLERANCE

    if args.out.suffix != ".onnx":
        raise UNetDecoderError(f"the output must end in .onnx, got {str(args.out)!r}.")
    check_output(args.out, "out")
    num_classes = args.num_classes
    if num_classes is None and args.checkpoint is not None:
        num_classes = checkpoint_num_classes(args.checkpoint)
    model = UNet(args.encoder, num_classes=num_classes or 1,
                 checkpoint_path=args.checkpoint).eval()  # fmt: skip
    if args.checkpoint is None:
        print("unet-decoder: note: no --checkpoint, exporting random-init weights.",
              file=sys.stderr)  # fmt: skip
    start = time.perf_counter()
    path = export_onnx(model, args.out, dynamic=not args.static)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB, "
          f"{time.perf_counter() - start:.1f} s)")  # fmt: skip
    shapes = ((1, 256, 256),) if args.static else CHECK_SHAPES
    worst = 0.0
    for shape, error in check_onnx(model, path, shapes):
        worst = max(worst, error)
        print(f"  ONNX Runtime vs fp32 eager, input {'x'.join(map(str, shape))}: "
              f"relative error {error:.1e}")  # fmt: skip
    if worst > EXACT_TOLERANCE:
        print(f"unet-decoder: error: the export differs from eager by {worst:.1e} "
              f"(> {EXACT_TOLERANCE:.0e}); do not deploy it.", file=sys.stderr)  # fmt: skip
        return 1
    return 0
