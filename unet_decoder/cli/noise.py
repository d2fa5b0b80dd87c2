"""`unet-decoder noise`: this machine's benchmark noise, and the gate factor it can trust."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

from ..files import check_output, write_atomically
from ..tracking.rounds import CONFIRM_ROUNDS


def add(sub) -> None:
    noise = sub.add_parser(
        "noise",
        help="measure this machine's benchmark noise and the gate factor it can trust",
        description="A/A trials of this environment's build, each measured as the gate "
        "measures base and head (asv continuous: interleaved rounds, samples appended): "
        "per-entry spread, false positives of asv's comparison at each candidate factor, the "
        "smallest factor with none, and with --inject the share of injected slowdowns caught.",
    )
    noise.add_argument("--selection", default="pr", help="named selection (pr)")
    noise.add_argument("--bench", "-b", help="a regex instead of --selection")
    noise.add_argument("--runs", type=int, default=5, help="A/A gate trials (5)")
    noise.add_argument("--rounds", type=int, default=2,
                       help="interleaved rounds per trial, as in the gate (2)")  # fmt: skip
    noise.add_argument("--factor", type=float, default=1.10, help="gate factor judged (1.10)")
    noise.add_argument("--inject", type=float, default=None,
                       help="also run each forward slowed by this fraction (0.2)")  # fmt: skip
    noise.add_argument("--confirm-rounds", type=int, default=CONFIRM_ROUNDS,
                       help="the gate's confirming rounds for flagged entries "
                       f"({CONFIRM_ROUNDS})")  # fmt: skip
    noise.add_argument("--machine", default=None, help="asv machine name (default: hostname)")
    noise.add_argument("--config", default="asv.conf.json")
    noise.add_argument("--json", type=Path, help="write the report as JSON")
    noise.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..tracking.noise import measure_noise
    from ..tracking.noise_report import format_report
    from ..tracking.selections import selection_regex

    check_output(args.json, "--json")
    regex = args.bench or selection_regex(args.selection)
    report = measure_noise(
        regex, runs=args.runs, rounds=args.rounds, factor=args.factor, inject=args.inject,
        confirm_rounds=args.confirm_rounds, machine=args.machine or platform.node(),
        config=args.config,
        progress=lambda s: print(s, file=sys.stderr, flush=True),
    )  # fmt: skip
    print(format_report(report))
    if args.json is not None:
        from ..provenance import provenance

        record = {"provenance": provenance(args.argv), **report.to_dict()}
        write_atomically(args.json, (json.dumps(record, indent=2) + "\n").encode())
    return 0
