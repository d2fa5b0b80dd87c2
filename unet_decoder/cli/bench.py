"""`unet-decoder bench`: which flag sets pay off here, measured side by side in one process."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UNetDecoderError
from ..files import check_output, write_atomically
from .common import check_measurement, csv_list, quiet_libraries, with_progress


def add(sub) -> None:
    bench = sub.add_parser(
        "bench",
        help="time every optimization flag set side by side",
        description="Measure plain fp32 eager and each optimization flag set in one process.",
    )
    bench.add_argument("--encoders", type=csv_list, default=["resnet18"],
                       help="comma-separated timm encoders (default: resnet18)")  # fmt: skip
    bench.add_argument(
        "--flags", nargs="+", metavar="SET",
        help="flag sets to measure, each 'a+b' or 'none' (default: none, each applicable pass, "
        "the best eager, compiled and int8 sets)",
    )  # fmt: skip
    bench.add_argument("--size", type=int, default=256, help="input height and width (256)")
    bench.add_argument("--batch", type=int, default=1, help="batch size (1)")
    bench.add_argument("--threads", type=int, default=None,
                       help="intra-op threads (default: torch's, i.e. the core count)")  # fmt: skip
    bench.add_argument("--peers", action="store_true",
                       help="add ONNX Runtime, OpenVINO and smp's Unet, same encoder")  # fmt: skip
    bench.add_argument("--min-seconds", type=float, default=1.0,
                       help="time each row for at least this long (1.0)")  # fmt: skip
    bench.add_argument(
        "--weights", choices=("synthetic", "random"), default="synthetic",
        help="synthetic: train each encoder on the built-in shapes task first (once per "
        "machine, cached), so accuracy has real margins; random: random init (default: "
        "synthetic)",
    )  # fmt: skip
    bench.add_argument("--checkpoint", type=Path,
                       help="your UNet weights (.safetensors/.pt), for one --encoders")  # fmt: skip
    bench.add_argument("--images", type=Path,
                       help="folder of your images: the first quarter calibrates int8, the "
                       "rest are held out for agreement and mIoU")  # fmt: skip
    bench.add_argument("--masks", type=Path,
                       help="folder of class-index PNG masks, same stems as images")  # fmt: skip
    bench.add_argument("--json", type=Path, help="write results as JSON")
    bench.add_argument("--csv", type=Path, help="write results as CSV")
    bench.add_argument("--plot", type=Path, help="write a PNG bar chart of speedups")
    bench.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..bench.report import print_table, to_csv, to_json, to_png
    from ..bench.run import run_bench

    check_measurement(size=(args.size,), batch=args.batch, threads=args.threads)
    if not args.encoders:
        raise UNetDecoderError("--encoders needs at least one timm encoder name")
    outputs = ((args.json, to_json, "--json"), (args.csv, to_csv, "--csv"),
               (args.plot, to_png, "--plot"))  # fmt: skip
    for path, _, option in outputs:
        check_output(path, option)
    quiet_libraries()
    console = Console()
    options = dict(
        size=args.size, batch=args.batch, threads=args.threads, peers=args.peers,
        min_seconds=args.min_seconds, weights=args.weights, checkpoint=args.checkpoint,
        images=args.images, masks=args.masks,
    )  # fmt: skip
    result = with_progress(
        lambda progress: run_bench(args.encoders, args.flags, progress=progress, **options)
    )
    from ..provenance import provenance

    result = {"provenance": provenance(args.argv), **result}
    print_table(result, console)
    for path, render, _ in outputs:
        if path is not None:
            write_atomically(path, render(result))
            console.print(f"wrote {path}")
    return 0
