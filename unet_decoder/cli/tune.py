"""`unet-decoder tune`: what to deploy here, written as an artifact folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UNetDecoderError
from ..files import check_output
from .common import check_measurement, quiet_libraries, with_progress


def add(sub) -> None:
    tune = sub.add_parser(
        "tune",
        help="find the fastest deployment within an accuracy budget and write it as a file",
        description="Build every candidate that applies (torch eager, torch AOTInductor, "
        "ONNX Runtime, OpenVINO; at each precision --budget admits), reject those over "
        "their accuracy budget on held-out images, screen the rest, try fewer threads, time "
        "the finalists in interleaved rounds, and write the fastest to --out with "
        "deployed.json (how it was made and measured), tune.json and tune.png. Load it with "
        "unet_decoder.load_deployed(OUT).",
    )
    tune.add_argument("--encoder", required=True, help="timm encoder, e.g. resnet34")
    tune.add_argument("--checkpoint", type=Path,
                      help="your UNet weights (default: trained on the built-in task)")  # fmt: skip
    tune.add_argument("--images", type=Path,
                      help="folder of your images: the first quarter calibrates int8, the "
                      "rest are held out (needs --checkpoint)")  # fmt: skip
    tune.add_argument("--masks", type=Path, help="class-index PNG masks, same stems as images")
    tune.add_argument("--size", type=int, nargs="+", default=[256], metavar=("H", "W"),
                      help="input height [and width] (256)")  # fmt: skip
    tune.add_argument("--batch", type=int, default=1, help="batch size (1)")
    tune.add_argument("--threads", type=int, default=None,
                      help="pin the thread count (default: search 1, 2, 4... up to the "
                      "usable cores)")  # fmt: skip
    tune.add_argument("--budget", choices=("int8", "bf16", "exact"), default="int8",
                      help="the loosest precision allowed; each candidate keeps its own "
                      "precision's error budget (int8)")  # fmt: skip
    tune.add_argument("--out", type=Path, default=Path("deployed"),
                      help="folder to write the artifact to (./deployed); an earlier "
                      "artifact there is replaced")  # fmt: skip
    tune.add_argument("--min-seconds", type=float, default=2.0,
                      help="time each finalist for at least this long (2.0)")  # fmt: skip
    tune.add_argument("--no-engines", action="store_true",
                      help="search torch only (no ONNX Runtime, no OpenVINO)")  # fmt: skip
    tune.set_defaults(run=run)


def check_out_folder(out: Path) -> None:
    """--out must be a new or empty folder, or an earlier artifact: never someone's files."""
    from ..deploy.record import RECORD_NAME

    if out.exists() and not out.is_dir():
        raise UNetDecoderError(f"--out {out} is a file; give a folder name.")
    if out.is_dir() and any(out.iterdir()) and not (out / RECORD_NAME).is_file():
        raise UNetDecoderError(
            f"--out {out} holds files that are not a deployed artifact; give a new folder."
        )
    check_output(out.parent / ".unet-decoder-probe", "--out")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..tune.report import print_ranking
    from ..tune.search import run_tune

    if len(args.size) > 2:
        raise UNetDecoderError(f"--size takes a height and an optional width, got {args.size}")
    size = (args.size[0], args.size[-1])
    check_measurement(size=size, batch=args.batch, threads=args.threads)
    if args.min_seconds <= 0:
        raise UNetDecoderError(f"--min-seconds must be positive, got {args.min_seconds}")
    check_out_folder(args.out)
    quiet_libraries()
    options = dict(
        out=args.out, checkpoint=args.checkpoint, images=args.images, masks=args.masks,
        size=size, batch=args.batch, threads=args.threads, budget=args.budget,
        min_seconds=args.min_seconds, engines=not args.no_engines,
    )  # fmt: skip
    result = with_progress(lambda progress: run_tune(args.encoder, progress=progress, **options))
    print_ranking(result, Console())
    return 0
