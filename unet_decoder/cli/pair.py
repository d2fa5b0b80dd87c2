"""`unet-decoder pair A B`: is artifact (or commit) B slower than A? Timed side by side in one
process."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..files import check_output, write_atomically


def add(sub) -> None:
    pair = sub.add_parser(
        "pair",
        help="compare two artifacts timed side by side in one process (B against A)",
        description="Load two artifact folders (written by tune or build_artifact, same input "
        "shape) into one process, time them in alternating blocks (A B B A ...), in several "
        "fresh processes that alternate which one they load first, and print the geometric "
        "mean of the processes' B/A ratios with a 95% confidence interval: a process's own "
        "speed level cancels in the ratio. With --eager, A and B are two commits whose eager "
        "entry is built by each commit's own code, imported side by side.",
    )
    pair.add_argument("a", help="the base artifact folder (a commit with --eager)")
    pair.add_argument("b", help="the artifact under test (a commit with --eager)")
    pair.add_argument("--eager", nargs=2, metavar=("ENCODER", "FLAGS"),
                      help="A and B are commits of this repository: time their eager entry "
                      "(e.g. resnet34 none), each built by its own commit's code, side by "
                      "side in one process")  # fmt: skip
    pair.add_argument("--processes", type=int, default=4, help="fresh processes (4)")
    pair.add_argument("--blocks", type=int, default=12, help="pairs of blocks a process (12)")
    pair.add_argument("--calls", type=int, default=8, help="timed calls a block (8)")
    pair.add_argument("--inject-b", type=float, default=0.0,
                      help="slow every B call by this fraction, recorded in the result: what "
                      "the comparison can see on this machine (0)")  # fmt: skip
    pair.add_argument("--json", type=Path, help="write the result as JSON")
    pair.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..bench.paired import compare_artifacts
    from ..provenance import provenance

    check_output(args.json, "--json")
    timing = dict(processes=args.processes, blocks=args.blocks, calls=args.calls,
                  inject_b=args.inject_b,
                  progress=lambda s: print(s, file=sys.stderr, flush=True))  # fmt: skip
    if args.eager:
        from ..bench.two_commits import compare_commits

        result = compare_commits(".", args.a, args.b, *args.eager, **timing)
    else:
        result = compare_artifacts(Path(args.a), Path(args.b), **timing)
    print("process  first  A ms    B ms    B/A")
    for i, p in enumerate(result.processes, 1):
        first = "A" if p["a_first"] else "B"
        print(f"{i:7}  {first:5}  {p['a_ms']:6.2f}  {p['b_ms']:6.2f}  {p['ratio']:.4f}")
    print(result.verdict())
    if args.json is not None:
        record = {"provenance": provenance(args.argv), **result.to_dict()}
        write_atomically(args.json, (json.dumps(record, indent=2) + "\n").encode())
    return 0
