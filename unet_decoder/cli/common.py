"""What every subcommand shares: option checks in one line each, progress, and quiet logs."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable

from ..errors import UNetDecoderError
from ..tracking.rounds import CONFIRM_ROUNDS, EXTRA_ROUNDS

EXIT_USAGE = 2

CONFIRM_HELP = (
    "measure the benchmarks slower at first look again in this many more interleaved rounds "
    f"({EXTRA_ROUNDS} more where the verdict stays close to the factor), and report only "
    f"those still slower ({CONFIRM_ROUNDS}; 0: judge the first look alone)"
)


def csv_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def check_measurement(*, size: tuple[int, ...], batch: int, threads: int | None) -> None:
    """The input and threads of a measurement (bench, tune)."""
    if min(size) < 32:
        raise UNetDecoderError(f"--size must be at least 32, got {' '.join(map(str, size))}")
    if batch < 1:
        raise UNetDecoderError(f"--batch must be at least 1, got {batch}")
    if threads is not None and threads < 1:
        raise UNetDecoderError(f"--threads must be at least 1, got {threads}")


def check_rounds(args: argparse.Namespace) -> None:
    """--factor and --confirm-rounds of the gate and the nightly."""
    if args.factor <= 1.0:
        raise UNetDecoderError(f"--factor must be above 1.0, got {args.factor}")
    if args.confirm_rounds < 0:
        raise UNetDecoderError(f"--confirm-rounds must be 0 or more, got {args.confirm_rounds}")


def add_selection(parser: argparse.ArgumentParser, default: str) -> None:
    """--selection NAME and --bench REGEX (repeatable), as the gate and the nightly take them."""
    parser.add_argument("--selection", default=default,
                        help=f"named selection: pr, smoke, time, all ({default})")  # fmt: skip
    parser.add_argument("--bench", "-b", action="append", default=[],
                        help="only benchmarks matching this regex (repeatable; replaces "
                        "--selection)")  # fmt: skip


def bench_args(args: argparse.Namespace) -> list[str]:
    """asv's -b arguments for --selection or --bench."""
    from ..tracking.selections import selection_regex

    patterns = args.bench or [selection_regex(args.selection)]
    return [a for pattern in patterns for a in ("-b", pattern)]


def quiet_libraries() -> None:
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)
    logging.getLogger("torch").setLevel(logging.ERROR)  # inductor's notes are not results


class LogLines:
    """Progress as plain lines on stderr, for pipes and CI logs where a bar would be invisible."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.done = 0

    def __call__(self, label: str, total: int) -> None:
        if total == 0:  # a note inside a step (training), not a step of its own
            print(f"      {label}", file=sys.stderr, flush=True)
            return
        self.done += 1
        elapsed = time.perf_counter() - self.start
        print(f"[{self.done}/{total}] {label} ({elapsed:.0f} s elapsed)", file=sys.stderr,
              flush=True)  # fmt: skip


def with_progress(work: Callable[[Callable[[str, int], None]], object]):
    """Run `work(progress)` under a progress bar on a terminal, plain lines on a pipe."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    stderr = Console(stderr=True)
    if not stderr.is_terminal:
        return work(LogLines())
    with Progress(
        TextColumn("{task.description}"), BarColumn(bar_width=20),
        TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
        console=stderr, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task("building models", total=None)

        def progress(label: str, total: int) -> None:
            if total == 0:  # a note inside a step (training)
                bar.update(task, description=label)
                return
            if bar.tasks[0].total is None:
                bar.update(task, total=total, completed=0)
            else:
                bar.advance(task)
            bar.update(task, description=label)

        return work(progress)
