"""`unet-decoder`: bench (which flags pay off here), tune (what to deploy here), export, and
the asv tracking commands (gate, nightly, noise, asv-offline)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from .errors import UNetDecoderError
from .tracking.second_look import CONFIRM_ROUNDS, EXTRA_ROUNDS

CONFIRM_HELP = (
    "measure the benchmarks slower at first look again in this many more interleaved rounds "
    f"({EXTRA_ROUNDS} more where the verdict stays close to the factor), and report only "
    f"those still slower ({CONFIRM_ROUNDS}; 0: judge the first look alone)"
)

EXIT_USAGE = 2


def _csv_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unet-decoder", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser(
        "bench",
        help="time every optimization flag set side by side",
        description="Measure plain fp32 eager and each optimization flag set in one process.",
    )
    bench.add_argument("--encoders", type=_csv_list, default=["resnet18"],
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
                       help="add smp's Unet on the same encoder, eager and compiled")  # fmt: skip
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
    offline = sub.add_parser(
        "asv-offline",
        help="make a published asv dashboard load without internet (run after asv publish)",
    )
    offline.add_argument("html_dir", nargs="?", type=Path, default=Path(".asv/html"))
    gate = sub.add_parser(
        "gate",
        help="fail when HEAD is slower than BASE (asv continuous, both built in one job)",
        description="Run `asv continuous BASE HEAD`: both commits are built and installed in "
        "their own virtualenvs for every torch release of asv.conf.json's matrix (each "
        "environment ~5 GB on first build), measured in interleaved rounds, and compared. "
        "Exit 0 if no benchmark is slower than --factor, 1 if one is (each named with its "
        "ratio), 2 if a benchmark failed on either side (named), 3 if nothing was measured "
        "(no environment, no benchmark selected, a build failure).",
    )
    gate.add_argument("base", help="the base commit or branch, e.g. main")
    gate.add_argument("head", help="the commit under test, e.g. HEAD")
    gate.add_argument("--factor", type=float, default=1.10, help="slowdown that fails (1.10)")
    gate.add_argument("--machine", help="asv machine name (default: this machine's)")
    gate.add_argument("--config", default="asv.conf.json", help="asv config (asv.conf.json)")
    gate.add_argument("--selection", default="pr",
                      help="named selection: pr (default), smoke, time, all")  # fmt: skip
    gate.add_argument("--bench", "-b", action="append", default=[],
                      help="only benchmarks matching this regex (repeatable; replaces "
                      "--selection)")  # fmt: skip
    gate.add_argument("--confirm-rounds", type=int, default=CONFIRM_ROUNDS, help=CONFIRM_HELP)
    nightly = sub.add_parser(
        "nightly",
        help="benchmark new commits and append their results to the results branch",
        description="Run `asv run NEW` (or --commits) for every environment of asv.conf.json, "
        "copy the results onto the --branch results branch (a worktree under .asv/; files "
        "are added or updated, never deleted), commit them, and print benchmarks slower "
        "than --factor between the two newest measured commits, once measured again on both "
        "(--confirm-rounds). Exit 0: measured (or nothing new), 1: a regression, 2: a "
        "benchmark failed, 3: nothing was measured.",
    )
    nightly.add_argument("--machine", required=True, help="stable asv machine name")
    nightly.add_argument("--branch", default="asv-results", help="results branch (asv-results)")
    nightly.add_argument("--commits", default="NEW",
                         help="asv range: NEW (default), HEAD^!, main~10..main")  # fmt: skip
    nightly.add_argument("--factor", type=float, default=1.10, help="regression factor (1.10)")
    nightly.add_argument("--config", default="asv.conf.json")
    nightly.add_argument("--report", type=Path, help="write found regressions (markdown) here")
    nightly.add_argument("--selection", default="all",
                         help="named selection: all (default), time, pr, smoke")  # fmt: skip
    nightly.add_argument("--bench", "-b", action="append", default=[],
                         help="regex instead of --selection (repeatable)")  # fmt: skip
    nightly.add_argument("--confirm-rounds", type=int, default=CONFIRM_ROUNDS, help=CONFIRM_HELP)
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
    return parser


def _bench_args(args: argparse.Namespace) -> list[str]:
    from .tracking.selections import selection_regex

    patterns = args.bench or [selection_regex(args.selection)]
    return [a for pattern in patterns for a in ("-b", pattern)]


def noise(args: argparse.Namespace) -> int:
    import platform

    from .tracking.noise import format_report, measure_noise
    from .tracking.report import write_atomically
    from .tracking.selections import selection_regex

    if args.json is not None:
        _check_output(args.json, "--json")
    regex = args.bench or selection_regex(args.selection)
    report = measure_noise(
        regex, runs=args.runs, rounds=args.rounds, factor=args.factor, inject=args.inject,
        confirm_rounds=args.confirm_rounds, machine=args.machine or platform.node(),
        config=args.config,
        progress=lambda s: print(s, file=sys.stderr, flush=True),
    )  # fmt: skip
    print(format_report(report))
    if args.json is not None:
        import json

        write_atomically(args.json, (json.dumps(report.to_dict(), indent=2) + "\n").encode())
    return 0


def nightly(args: argparse.Namespace) -> int:
    from .tracking.nightly import run_nightly

    _check_confirm_rounds(args)
    extra = _bench_args(args)
    report = run_nightly(
        ".", config=args.config, machine=args.machine, branch=args.branch,
        commits=args.commits, factor=args.factor, extra_args=extra,
        confirm_rounds=args.confirm_rounds,
    )  # fmt: skip
    print(f"results branch {args.branch}: +{len(report.added)} new, {len(report.updated)} "
          f"updated file(s); committed: {report.committed}")  # fmt: skip
    measured_again = ""
    if report.looked_again:
        measured_again = ("Measured again, each process one value (asv's units: seconds for "
                          f"time_, bytes for peakmem_):\n\n{report.looked_again}")  # fmt: skip
        print(measured_again)
    if report.regressions:
        text = "Regressions against the previous nightly:\n\n" + "\n".join(
            f"    {line}" for line in report.regressions
        )
        print(text)
        if args.report:
            args.report.write_text("\n\n".join(filter(None, [text, measured_again])) + "\n")
    print(f"unet-decoder nightly: {report.verdict.message}", file=sys.stderr)
    return report.verdict.exit_code


def _check_confirm_rounds(args: argparse.Namespace) -> None:
    if args.confirm_rounds < 0:
        raise UNetDecoderError(f"--confirm-rounds must be 0 or more, got {args.confirm_rounds}")


def gate(args: argparse.Namespace) -> int:
    from .tracking.gate import run_gate, write_step_summary

    if args.factor <= 1.0:
        raise UNetDecoderError(f"--factor must be above 1.0, got {args.factor}")
    _check_confirm_rounds(args)
    extra = _bench_args(args)
    result = run_gate(
        args.base, args.head, factor=args.factor, config=args.config, machine=args.machine,
        extra_args=extra, confirm_rounds=args.confirm_rounds,
    )  # fmt: skip
    summary = result.summary(args.base, args.head, args.factor)
    write_step_summary(summary)
    print(summary)
    print(f"unet-decoder gate: {result.verdict.message}", file=sys.stderr)
    return result.exit_code


def asv_offline(args: argparse.Namespace) -> int:
    from .tracking.dashboard import make_offline

    replaced = make_offline(args.html_dir)
    print(f"{args.html_dir}/index.html now loads {len(replaced)} libraries from ./vendor")
    return 0


def _check_output(path: Path | None, option: str) -> None:
    """Refuse an unwritable path before minutes of measuring, not after."""
    if path is None:
        return
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UNetDecoderError(f"{option} {path} is a directory; give a file name.")
    if not parent.is_dir():
        raise UNetDecoderError(f"{option} {path}: folder {parent} does not exist; create it first.")
    try:  # really try: os.access says yes to root even on read-only mounts
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError:
        raise UNetDecoderError(f"{option} {path} is not writable; choose another path.") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise UNetDecoderError(f"{option} {path} is not writable; choose another path.")


def _validate(args: argparse.Namespace) -> None:
    if args.size < 32:
        raise UNetDecoderError(f"--size must be at least 32, got {args.size}")
    if args.batch < 1:
        raise UNetDecoderError(f"--batch must be at least 1, got {args.batch}")
    if args.threads is not None and args.threads < 1:
        raise UNetDecoderError(f"--threads must be at least 1, got {args.threads}")
    if not args.encoders:
        raise UNetDecoderError("--encoders needs at least one timm encoder name")
    for path, option in ((args.json, "--json"), (args.csv, "--csv"), (args.plot, "--plot")):
        _check_output(path, option)


class _LogLines:
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


def _with_progress(work):
    """Run `work(progress)` under a progress bar on a terminal, plain lines on a pipe."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    stderr = Console(stderr=True)
    if not stderr.is_terminal:
        return work(_LogLines())
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


def _quiet_libraries() -> None:
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)
    logging.getLogger("torch").setLevel(logging.ERROR)  # inductor's notes are not results


def bench(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .tracking.bench import run_bench
    from .tracking.report import print_table, to_csv, to_json, to_png, write_atomically

    _quiet_libraries()
    console = Console()
    options = dict(
        size=args.size, batch=args.batch, threads=args.threads, peers=args.peers,
        min_seconds=args.min_seconds, weights=args.weights, checkpoint=args.checkpoint,
        images=args.images, masks=args.masks,
    )  # fmt: skip
    result = _with_progress(
        lambda progress: run_bench(args.encoders, args.flags, progress=progress, **options)
    )
    print_table(result, console)
    outputs = ((args.json, to_json), (args.csv, to_csv), (args.plot, to_png))
    for path, render in outputs:
        if path is not None:
            write_atomically(path, render(result))
            console.print(f"wrote {path}")
    return 0


def _check_out_folder(out: Path) -> None:
    """--out must be a new or empty folder, or an earlier artifact: never someone's files."""
    from .artifact import RECORD_NAME

    if out.exists() and not out.is_dir():
        raise UNetDecoderError(f"--out {out} is a file; give a folder name.")
    if out.is_dir() and any(out.iterdir()) and not (out / RECORD_NAME).is_file():
        raise UNetDecoderError(
            f"--out {out} holds files that are not a deployed artifact; give a new folder."
        )
    _check_output(out.parent / ".unet-decoder-probe", "--out")


def tune(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .tracking.tune import run_tune
    from .tracking.tune_report import print_ranking

    if len(args.size) > 2:
        raise UNetDecoderError(f"--size takes a height and an optional width, got {args.size}")
    size = (args.size[0], args.size[-1])
    if min(size) < 32:
        raise UNetDecoderError(f"--size must be at least 32, got {args.size}")
    if args.batch < 1:
        raise UNetDecoderError(f"--batch must be at least 1, got {args.batch}")
    if args.threads is not None and args.threads < 1:
        raise UNetDecoderError(f"--threads must be at least 1, got {args.threads}")
    if args.min_seconds <= 0:
        raise UNetDecoderError(f"--min-seconds must be positive, got {args.min_seconds}")
    _check_out_folder(args.out)
    _quiet_libraries()
    options = dict(
        out=args.out, checkpoint=args.checkpoint, images=args.images, masks=args.masks,
        size=size, batch=args.batch, threads=args.threads, budget=args.budget,
        min_seconds=args.min_seconds, engines=not args.no_engines,
    )  # fmt: skip
    result = _with_progress(lambda progress: run_tune(args.encoder, progress=progress, **options))
    print_ranking(result, Console())
    return 0


def export(args: argparse.Namespace) -> int:
    from .engines.export import CHECK_SHAPES, check_onnx, export_onnx
    from .model import UNet
    from .model.checkpoint import checkpoint_num_classes
    from .passes.registry import EXACT_TOLERANCE

    if args.out.suffix != ".onnx":
        raise UNetDecoderError(f"the output must end in .onnx, got {str(args.out)!r}.")
    _check_output(args.out, "out")
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "asv-offline":
            return asv_offline(args)
        if args.command == "gate":
            return gate(args)
        if args.command == "nightly":
            return nightly(args)
        if args.command == "noise":
            return noise(args)
        if args.command == "export":
            return export(args)
        if args.command == "tune":
            return tune(args)
        _validate(args)
        return bench(args)
    except UNetDecoderError as e:
        print(f"unet-decoder: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("unet-decoder: interrupted; no results file was written.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
