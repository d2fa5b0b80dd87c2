"""`unet-decoder`: bench (which flags pay off here), tune (what to deploy here), export, pair
and census (two artifacts: timed side by side, counted), and the asv tracking commands
(gate, nightly, noise, floors, asv-offline).

One module per subcommand, each adding its own parser and `run`; a subcommand imports its
heavy modules (torch, asv) only when it runs, so `--help` is instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import UNetDecoderError
from . import bench, census, export, floors, gate, nightly, noise, offline, pair, tune
from .common import EXIT_USAGE

#: The subcommands, in the order `--help` lists them.
SUBCOMMANDS = (bench, export, tune, pair, census, offline, gate, nightly, noise, floors)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unet-decoder", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command in SUBCOMMANDS:
        command.add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # what a record's provenance names
    try:
        return args.run(args)
    except UNetDecoderError as e:
        print(f"unet-decoder: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("unet-decoder: interrupted; no results file was written.", file=sys.stderr)
        return 130
