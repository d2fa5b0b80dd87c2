"""`unet-decoder gate BASE HEAD`: the pull-request gate (asv continuous, looked at twice)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..tracking.rounds import CONFIRM_ROUNDS
from .common import CONFIRM_HELP, add_selection, bench_args, check_rounds


def add(sub) -> None:
    gate = sub.add_parser(
        "gate",
        help="fail when HEAD is slower than BASE (asv continuous, both built in one job)",
        description="Run `asv continuous BASE HEAD`: both commits are built and installed in "
        "their own virtualenvs for every torch release of asv.conf.json's matrix (each "
        "environment ~5 GB on first build), measured in interleaved rounds, and compared. "
        "Exit 0 if no benchmark is slower than --factor, 1 if one is (each named with its "
        "ratio), 2 if a benchmark failed on either side (named), 3 if nothing was measured "
        "(no environment, no benchmark selected, a build failure), 4 if what an entry runs "
        "changed (its census: operators, kernels, engine primitives) and --accept-census was "
        "not given, 5 if a compiled or engine entry, timed side by side with the base's "
        "artifact in one process, is still undecided, 6 if nothing was slower but an entry's floor "
        "on this machine (the floors record, unet-decoder floors) is above --factor.",
    )
    gate.add_argument("base", help="the base commit or branch, e.g. main")
    gate.add_argument("head", help="the commit under test, e.g. HEAD")
    gate.add_argument("--factor", type=float, default=1.10, help="slowdown that fails (1.10)")
    gate.add_argument("--machine", help="asv machine name (default: this machine's)")
    gate.add_argument("--config", default="asv.conf.json", help="asv config (asv.conf.json)")
    add_selection(gate, "pr")
    gate.add_argument("--accept-census", action="store_true",
                      help="the head changes what entries run on purpose: report the census "
                      "delta, do not fail on it")  # fmt: skip
    gate.add_argument("--floors", type=Path,
                      help="this machine's floors record (.asv/floors.json beside the config, "
                      "used when it exists and names this machine)")  # fmt: skip
    gate.add_argument("--confirm-rounds", type=int, default=CONFIRM_ROUNDS, help=CONFIRM_HELP)
    gate.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..tracking.gate import run_gate, write_step_summary

    check_rounds(args)
    result = run_gate(
        args.base, args.head, factor=args.factor, config=args.config, machine=args.machine,
        extra_args=bench_args(args), confirm_rounds=args.confirm_rounds,
        accept_census=args.accept_census, floors=args.floors,
    )  # fmt: skip
    summary = result.summary(args.base, args.head, args.factor)
    write_step_summary(summary)
    print(summary)
    print(f"unet-decoder gate: {result.verdict.message}", file=sys.stderr)
    return result.exit_code
