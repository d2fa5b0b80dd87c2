"""`unet-decoder nightly`: measure new commits, keep them on the results branch, report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..tracking.rounds import CONFIRM_ROUNDS
from .common import CONFIRM_HELP, add_selection, bench_args, check_rounds


def add(sub) -> None:
    nightly = sub.add_parser(
        "nightly",
        help="benchmark new commits and append their results to the results branch",
        description="Run `asv run NEW` (or --commits) for every environment of asv.conf.json, "
        "copy the results onto the --branch results branch (a worktree under .asv/; files "
        "are added or updated, never deleted), commit them, and print benchmarks slower "
        "than --factor over the night (the newest measured commit against the newest one "
        "measured before it), once measured again on both (--confirm-rounds), each bisected "
        "to its first slow commit when the night spans several, and every stored series "
        "whose level stepped or began to drift (judged on its own history, named with the "
        "night it began). Exit 0: measured (or nothing new), 1: a regression, 2: a "
        "benchmark failed, 3: nothing was measured.",
    )
    nightly.add_argument("--machine", required=True, help="stable asv machine name")
    nightly.add_argument("--branch", default="asv-results", help="results branch (asv-results)")
    nightly.add_argument("--commits", default="NEW",
                         help="asv range: NEW (default), HEAD^!, main~10..main")  # fmt: skip
    nightly.add_argument("--factor", type=float, default=1.10, help="regression factor (1.10)")
    nightly.add_argument("--config", default="asv.conf.json")
    nightly.add_argument("--report", type=Path, help="write found regressions (markdown) here")
    add_selection(nightly, "all")
    nightly.add_argument("--confirm-rounds", type=int, default=CONFIRM_ROUNDS, help=CONFIRM_HELP)
    nightly.set_defaults(run=run)


def _changes(results_dir: Path | None, machine: str) -> str:
    """Each stored series whose level changed for the worse, judged on its own history."""
    from ..tracking.changepoints import MIN_CHANGE, change_points

    if results_dir is None:
        return ""
    found = change_points(results_dir, machine)
    if not found:
        return ""
    return (f"Series whose level changed (each against its own stored nights, at least "
            f"x{MIN_CHANGE}):\n\n" + "\n".join(f"    {p.line()}" for p in found))  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from ..tracking.nightly import run_nightly

    check_rounds(args)
    report = run_nightly(
        ".", config=args.config, machine=args.machine, branch=args.branch,
        commits=args.commits, factor=args.factor, extra_args=bench_args(args),
        confirm_rounds=args.confirm_rounds,
    )  # fmt: skip
    print(f"results branch {args.branch}: +{len(report.added)} new, {len(report.updated)} "
          f"updated file(s); committed: {report.committed}")  # fmt: skip
    measured_again = ""
    if report.looked_again:
        measured_again = ("Measured again, each process one value (asv's units: seconds for "
                          f"time_, bytes for peakmem_):\n\n{report.looked_again}")  # fmt: skip
        print(measured_again)
    text = ""
    if report.regressions:
        text = "Regressions against the previous nightly:\n\n" + "\n".join(
            f"    {line}" for line in report.regressions
        )
        print(text)
    bisected = ""
    if report.culprits:
        bisected = (
            "First slow commit of each regression (bisected over the night's commits, "
            "then measured against its parent):\n\n"
            + "\n".join(f"    {culprit.line()}" for culprit in report.culprits)
        )
        print(bisected)
    drifted = _changes(report.results_dir, args.machine)
    if drifted:
        print(drifted)
    if args.report and (text or drifted):
        parts = [text, bisected, measured_again, drifted]
        args.report.write_text("\n\n".join(filter(None, parts)) + "\n")
    print(f"unet-decoder nightly: {report.verdict.message}", file=sys.stderr)
    return report.verdict.exit_code
