"""`unet-decoder floors COMMIT`: the smallest slowdown the gate sees here, per entry."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add(sub) -> None:
    floors = sub.add_parser(
        "floors",
        help="measure, per paired entry, the smallest slowdown the gate sees on this machine",
        description="For every entry the gate times side by side (compiled, engine and eager "
        "entries whose census asv filed for COMMIT: run the gate or `asv run` on it first), "
        "run the gate's own rule on the entry against a copy of itself, A/A and with each "
        "--inject slowdown, --trials times, interleaved. The floor is the smallest slowdown "
        "caught in 8 of 10 trials with no A/A trial slower. The record names this machine; "
        "the gate reads it (default .asv/floors.json) and calls a pass whose entries cannot "
        "see its factor here insufficient (exit 6).",
    )
    floors.add_argument("commit", nargs="?", default="HEAD", help="whose entries (HEAD)")
    floors.add_argument("--trials", type=int, default=10, help="trials per fraction (10)")
    floors.add_argument("--inject", type=float, nargs="+", default=[0.05, 0.10, 0.20],
                        help="slowdowns looked for, as fractions (0.05 0.10 0.20)")  # fmt: skip
    floors.add_argument("--entries", help="only entries matching this regex, e.g. 'resnet34'")
    floors.add_argument("--record", type=Path,
                        help="the floors record to write or add to (.asv/floors.json beside "
                        "the config)")  # fmt: skip
    floors.add_argument("--config", default="asv.conf.json", help="asv config (asv.conf.json)")
    floors.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import UNetDecoderError
    from ..files import check_output
    from ..provenance import provenance
    from ..tracking.floors import default_path, format_floors, measure_floors, pairs_of
    from ..tracking.stored import commit_of

    conf_dir = Path(args.config).resolve().parent
    if not Path(args.config).is_file():
        raise UNetDecoderError(f"no asv config at {args.config}: run from the repository root "
                               "or give --config")  # fmt: skip
    commit = commit_of(conf_dir, args.commit)
    if commit is None:
        raise UNetDecoderError(f"{args.commit!r} is not a commit of {conf_dir}")
    record = args.record or default_path(conf_dir)
    record.parent.mkdir(parents=True, exist_ok=True)
    check_output(record, "--record")
    pairs = pairs_of(conf_dir, conf_dir, commit, args.entries)
    found = measure_floors(pairs, record, trials=args.trials, injections=args.inject,
                           progress=lambda s: print(s, file=sys.stderr, flush=True),
                           provenance=provenance(args.argv))  # fmt: skip
    print(format_floors(found))
    print(f"written: {record}")
    return 0
