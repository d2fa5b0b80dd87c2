"""How a tune search is shown: the ranking as a terminal table, and time against accuracy as
a PNG with the chosen point marked."""

from __future__ import annotations

import io

from rich import box
from rich.console import Console
from rich.table import Table

from ..bench.neighbours import busy_notes
from ..bench.report import wrap_flags
from .candidates import TuneResult

#: Relative errors are drawn on a log axis; an exact 0 (plain fp32 eager) sits here.
_ZERO_ERROR = 1e-9


def _ms(value: float | None, iqr: float | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if iqr is None else f"{value:.1f} ({iqr:.1f})"


def _timed_in_final(c) -> bool:
    return c.status in ("chosen", "finalist") or (c.baseline and c.median_ms is not None)


#: Table sections, in order: which statuses each groups.
SECTIONS = (
    ("final rounds", ("chosen", "finalist")),
    ("screened out", ("screened out",)),
    ("never timed", ("over budget", "ruled out", "failed", "skipped")),
)


def print_ranking(result: TuneResult, console: Console | None = None) -> None:
    """The candidates, best first, in sections: timed in the final rounds, screened out
    (with their screening time), never timed; why each lost, under the table. Fits an
    80-column terminal."""
    console = console or Console()
    shape = "x".join(map(str, result.input_shape))
    machine = result.machine
    table = Table(
        title=f"{result.encoder} {result.weights}, {shape}, budget {result.budget}, "
        f"torch {machine['torch']}",
        box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 0),
    )  # fmt: skip
    headers = ("candidate", "thr", "median ms\n(IQR)", "speed-\nup", "rel err", "agree\n%",
               "mIoU", "build\ns")  # fmt: skip
    for name in headers:
        table.add_column(name, justify="left" if name == "candidate" else "right",
                         no_wrap=True)  # fmt: skip
    why = []
    for title, statuses in SECTIONS:
        members = [c for c in result.candidates
                   if (c.status in statuses and not (c.baseline and _timed_in_final(c)))
                   or (c.baseline and _timed_in_final(c) and "chosen" in statuses)]  # fmt: skip
        if not members:
            continue
        table.add_row(f"[italic]{title}[/italic]", *[""] * (len(headers) - 1))
        for c in members:
            final = _timed_in_final(c)
            median = _ms(c.median_ms, c.iqr_ms) if final else (
                f"~{c.screen_ms:.1f}" if c.screen_ms is not None else "-")  # fmt: skip
            mark = "* " if c.status == "chosen" else "  "
            label = wrap_flags(c.label, 24).replace("\n", "\n    ")
            if c.baseline:
                label += "\n    (baseline)"
            if c.reason and not (c.baseline and final):  # the baseline is the yardstick
                why.append(f"{c.label} ({c.threads}t): {c.status}: {c.reason}")
            table.add_row(
                mark + label, str(c.threads), median,
                f"{c.speedup:.2f}x" if c.speedup is not None and final else "-",
                "-" if c.rel_error is None else f"{c.rel_error:.0e}",
                "-" if c.pixel_agreement is None else f"{100 * c.pixel_agreement:.2f}",
                "-" if c.miou is None else f"{c.miou:.3f}",
                "-" if c.build_s is None else f"{c.build_s:.1f}",
                style="bold green" if c.status == "chosen" else None,
            )  # fmt: skip
    console.print(table)
    chosen = result.chosen
    others = [c.median_ms if _timed_in_final(c) else c.screen_ms
              for c in result.candidates if c is not chosen]  # fmt: skip
    others = [t for t in others if t is not None]
    console.print(
        "median ms: final interleaved rounds; ~: the short screening only. speed-up: against "
        "plain fp32 eager in the same rounds; rel err, agree: against it on held-out images; "
        f"mIoU: against the ground truth. {result.thread_note}."
    )
    for line in why:
        console.print(f"- {line}", highlight=False)
    console.print(
        f"[bold]Chosen:[/bold] {chosen.label} with {chosen.threads} thread(s), "
        f"{chosen.median_ms:.1f} ms ({chosen.speedup or 0:.2f}x plain fp32 eager), rel err "
        f"{chosen.rel_error:.1e}, {100 * chosen.pixel_agreement:.2f}% of pixels unchanged; "
        f"every other candidate measured {min(others, default=float('nan')):.1f} ms or more."
    )
    console.print(
        f"Search: {result.search_seconds:.0f} s. Artifact: {result.artifact} (load it with "
        f"unet_decoder.load_deployed('{result.artifact}'); reloaded there, its logits differ "
        f"from the measured ones by {result.reload_rel_error or 0:.1e})."
    )
    timed = [c for c in result.candidates if _timed_in_final(c) and c.iqr_ms is not None]
    noisy = [c for c in timed if c.iqr_ms > 0.10 * c.median_ms]
    if noisy:
        console.print(
            f"[bold yellow]warning:[/bold yellow] {len(noisy)} timed candidate(s) spread over "
            "10% (IQR/median): close calls may be noise; rerun with --min-seconds 5."
        )
    for line in busy_notes(machine):
        console.print(
            f"[bold yellow]warning:[/bold yellow] {line} The ranking may be noise; tune again "
            "on a quiet machine."
        )


def to_png(result: TuneResult) -> bytes:
    """Time (x) against relative error (y, log) of every timed candidate, numbered as in the
    list beside the plot; colour: the kind; star: chosen, dot: final rounds, cross: screened
    out (its screening time); dashed: the budgets of the timed precisions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    colours = {"torch-eager": "tab:gray", "torch-aoti": "tab:blue", "onnxruntime": "tab:orange",
               "openvino": "tab:purple"}  # fmt: skip
    fig, (ax, side) = plt.subplots(1, 2, figsize=(11, 5), width_ratios=(3, 2))
    names, budgets = [], set()
    for c in result.candidates:
        final = _timed_in_final(c)
        ms = c.median_ms if final else c.screen_ms
        if ms is None or c.rel_error is None:
            continue
        budgets.add(c.budget["max_rel_error"])
        error = max(c.rel_error, _ZERO_ERROR)
        chosen = c.status == "chosen"
        ax.scatter(ms, error, s=300 if chosen else 50, color=colours[c.kind], zorder=3,
                   marker="*" if chosen else "o" if final else "x",
                   edgecolors="black" if chosen else None)  # fmt: skip
        names.append(f"{len(names) + 1}. {c.label} ({c.threads}t): {ms:.1f} ms"
                     + (" (chosen)" if chosen else "" if final else ", screening"))  # fmt: skip
        ax.annotate(str(len(names)), (ms, error), fontsize=8, xytext=(5, 5),
                    textcoords="offset points")  # fmt: skip
    for b in sorted(budgets):
        ax.axhline(b, color="black", linestyle="--", linewidth=0.6)
        ax.annotate(f"budget {b:.0e}", (1.0, b), xycoords=("axes fraction", "data"),
                    fontsize=7, ha="right", va="bottom")  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("median ms per forward")
    ax.set_ylabel(f"relative error vs plain fp32 eager (0 drawn at {_ZERO_ERROR:.0e})")
    shape = "x".join(map(str, result.input_shape))
    ax.set_title(f"unet-decoder tune: {result.encoder}, {shape}, torch "
                 f"{result.machine['torch']}, {result.machine['cpu']}", fontsize=9)  # fmt: skip
    kinds = [Line2D([], [], marker="o", linestyle="", color=colour, label=kind)
             for kind, colour in colours.items()]  # fmt: skip
    ax.legend(handles=kinds, fontsize=7, loc="center right")
    side.axis("off")
    side.text(0, 1, "\n".join(names), va="top", fontsize=7, family="monospace", wrap=True)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()
