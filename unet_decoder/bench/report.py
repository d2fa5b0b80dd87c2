"""Ways to show a bench result: a terminal table, JSON, CSV and a PNG bar chart.

The renderers return bytes; `files.write_atomically` puts them in place, so an interrupted
run never leaves a half-written results file behind.
"""

from __future__ import annotations

import csv
import io
import json

from rich import box
from rich.console import Console
from rich.table import Table

from ..machine import torch_has_native_bf16
from ..passes.policy import PRECISIONS
from ..passes.registry import EXACT_TOLERANCE
from .neighbours import busy_notes
from .rows import fastest_within_budget

COLUMNS = ("encoder", "model", "backend", "precision", "flags", "median_ms", "iqr_ms",
           "speedup", "gflops", "peak_pct", "peak_mb", "max_rel_error", "pixel_agreement",
           "miou", "setup_s")  # fmt: skip


def to_json(result: dict) -> bytes:
    return (json.dumps(result, indent=2) + "\n").encode()


def to_csv(result: dict) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(result["rows"])
    return buffer.getvalue().encode()


def to_png(result: dict) -> bytes:
    """Speedup over plain fp32 eager, one group of bars per encoder, one bar per flag set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    encoders = list(dict.fromkeys(r["encoder"] for r in rows))
    fig, axes = plt.subplots(len(encoders), 1, figsize=(9, 0.45 * len(rows) + 1.5), squeeze=False)
    for ax, encoder in zip(axes[:, 0], encoders, strict=True):
        mine = [r for r in rows if r["encoder"] == encoder]
        labels = [f"{'smp: ' if r['model'] != 'unet_decoder' else ''}{r['flags']}" for r in mine]
        colors = ["tab:gray" if r["model"] != "unet_decoder" else "tab:red"
                  if not r["within_budget"] else "tab:orange" if r.get("backend", "torch")
                  != "torch" else "tab:blue" for r in mine]  # fmt: skip
        ax.barh(labels, [r["speedup"] for r in mine], color=colors)
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.invert_yaxis()
        ax.set_title(f"{encoder}: speedup vs plain fp32 eager")
        ax.set_xlabel("speedup (x); red: over the flags' budget, orange: an engine, gray: smp.Unet")
    machine = result["machine"]
    fig.suptitle(f"torch {machine['torch']}, {machine['threads']} threads, {machine['cpu']}",
                 fontsize=8)  # fmt: skip
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def wrap_flags(label: str, width: int) -> str:
    """Break a long flag set after a '+', so the table fits a narrow terminal."""
    lines, line = [], ""
    for part in label.split("+"):
        piece = part if not line else "+" + part
        if line and len(line) + len(piece) > width:
            lines.append(line + "+")
            line = part
        else:
            line += piece
    return "\n".join([*lines, line])


def warnings_for(result: dict) -> list[str]:
    """Why the numbers may be noise: a busy machine before or during the run, a wide spread."""
    machine = result["machine"]
    notes = busy_notes(machine)
    flags = machine.get("cpu_flags")
    emulated = [
        r for r in result["rows"]
        if r.get("precision") == "bf16" and r.get("backend", "torch") == "torch"
    ]  # fmt: skip
    if emulated and flags is not None and not torch_has_native_bf16(flags):
        notes.append(
            "this CPU has no native bf16 (no avx512_bf16 or amx_bf16): torch emulates the "
            f"{len(emulated)} bf16 row(s), so they measure the emulation, not bf16; "
            "`unet-decoder tune` rules bf16 out on such CPUs."
        )
    noisy = [r for r in result["rows"] if r["median_ms"] and r["iqr_ms"] / r["median_ms"] > 0.10]
    if noisy:
        names = ", ".join(f"{r['encoder']} {r['flags']}" for r in noisy[:4])
        notes.append(
            f"{len(noisy)} row(s) spread over 10% (IQR/median): {names}; "
            "rerun them with --min-seconds 3."
        )
    return notes


def print_table(result: dict, console: Console | None = None) -> None:
    """The bench table; fits an 80-column terminal (flag sets wrap after a '+')."""
    console = console or Console()
    inp, machine = result["input"], result["machine"]
    rows = result["rows"]
    encoders = list(dict.fromkeys(r["encoder"] for r in rows))
    one_encoder = len(encoders) == 1
    narrow = console.width < 130
    flags_width = 22 if narrow else 60
    weights = result.get("weights", {})
    trained = "; ".join(dict.fromkeys(weights.values())) if one_encoder else ""
    title = (
        f"{encoders[0] + ' ' if one_encoder else ''}{trained + ', ' if trained else ''}"
        f"{inp['batch']}x{inp['channels']}x{inp['size']}x{inp['size']}, "
        f"{machine['threads']} threads, torch {machine['torch']}"
    )
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 0))
    # narrow terminals drop '% conv peak' (in --json and on wide terminals)
    headers = ["flags", "median ms\n(IQR)", "speed-\nup", *([] if narrow else ["% conv\npeak"]),
               "peak\nMB", "rel err", "agree\n%", "mIoU", "setup\ns"]  # fmt: skip
    for name in headers:
        table.add_column(name, justify="left" if name == "flags" else "right", no_wrap=True)
    for encoder in encoders:
        if not one_encoder:  # a heading row per encoder instead of a column: 80 columns fit
            table.add_row(f"[bold]{encoder}[/bold]", *[""] * (len(headers) - 1))
        for r in (r for r in rows if r["encoder"] == encoder):
            error = f"{r['max_rel_error']:.0e}"
            agree = f"{100 * r['pixel_agreement']:.2f}"
            if not r["within_budget"]:  # mark what broke the budget
                if r["max_rel_error"] > r["budget"]:
                    error += "!"
                if r["pixel_agreement"] < r.get("min_agreement", 0):
                    agree += "!"
            peak_mb = "n/a" if r["peak_mb"] is None else f"{r['peak_mb']:.0f}"
            miou = "-" if r.get("miou") is None else f"{r['miou']:.3f}"
            label = r["flags"] if r["model"] == "unet_decoder" else f"{r['model']}: {r['flags']}"
            indent = "" if one_encoder else "  "
            wrapped = wrap_flags(label, flags_width).replace("\n", "\n" + indent + "  ")
            peak = [] if narrow else [f"{r['peak_pct']:.0f}%"]
            table.add_row(
                indent + wrapped, f"{r['median_ms']:.1f} ({r['iqr_ms']:.1f})",
                f"{r['speedup']:.2f}x", *peak, peak_mb, error, agree, miou, f"{r['setup_s']:.1f}",
            )  # fmt: skip
    console.print(table)
    if not one_encoder and weights:
        console.print("weights: " + "; ".join(f"{e} {w}" for e, w in weights.items()))
    console.print(
        f"conv peak (3x3 channels_last conv, same run): {result['conv_peak_gflops']:.0f} GFLOP/s."
        " speed-up: against plain fp32 eager; rel err, agree: against it on held-out images;"
        " mIoU: against the ground truth; '!': over the flags' budget."
    )
    best = fastest_within_budget(result)
    if best is not None:
        console.print(
            f"[bold]Fastest within the accuracy budget:[/bold] {best['encoder']} "
            f"[bold]{best['flags']}[/bold] at {best['median_ms']:.1f} ms "
            f"({best['speedup']:.2f}x plain fp32 eager, rel err {best['max_rel_error']:.1e}, "
            f"{100 * best['pixel_agreement']:.2f}% of pixels unchanged)"
        )
    for encoder in encoders:
        _print_peer_comparison(console, [r for r in rows if r["encoder"] == encoder])
    for note in result.get("skipped", []):
        console.print(f"note: {note}", highlight=False)
    for note in warnings_for(result):
        console.print(f"[bold yellow]warning:[/bold yellow] {note}")


#: How much faster than the fastest engine our best torch set must be to count as ahead.
AHEAD = 1.05


def engine_comparison(rows: list[dict]) -> list[dict]:
    """Per precision: our fastest torch row within budget vs the fastest engine row within
    budget, on one encoder; `ratio` > 1 means torch is faster."""
    found = []
    for precision in PRECISIONS:
        within = [r for r in rows if r["model"] == "unet_decoder" and r["within_budget"]
                  and r.get("precision") == precision]  # fmt: skip
        ours = min((r for r in within if r["backend"] == "torch"),
                   key=lambda r: r["median_ms"], default=None)  # fmt: skip
        engine = min((r for r in within if r["backend"] != "torch"),
                     key=lambda r: r["median_ms"], default=None)  # fmt: skip
        if ours is not None and engine is not None:
            found.append(dict(precision=precision, ours=ours, engine=engine,
                              ratio=engine["median_ms"] / ours["median_ms"]))  # fmt: skip
    return found


def _print_peer_comparison(console: Console, rows: list[dict]) -> None:
    peers = [r for r in rows if r["model"] != "unet_decoder"]
    if not peers:
        return
    peer = min(peers, key=lambda r: r["median_ms"])
    ours = [r for r in rows if r["model"] == "unet_decoder" and r["within_budget"]
            and r.get("backend", "torch") == "torch"]  # fmt: skip
    exact = [r for r in ours if r["budget"] <= EXACT_TOLERANCE]
    encoder = rows[0]["encoder"]
    for kind, pool in (("exact-math", exact), ("any precision", ours)):
        best = min(pool, key=lambda r: r["median_ms"], default=None)
        if best is not None:
            # a ratio under 1 is smp ahead: the line says so instead of "0.55x faster"
            ratio = peer["median_ms"] / best["median_ms"]
            console.print(
                f"{encoder}: best {kind} set {best['flags']} {best['median_ms']:.1f} ms"
                f" vs smp.Unet at its best ({peer['flags']}) {peer['median_ms']:.1f} ms: "
                f"[bold]{ratio:.2f}x[/bold] ({_verdict(ratio)})"
            )
    for c in engine_comparison(rows):
        console.print(
            f"{encoder} {c['precision']}: torch {c['ours']['median_ms']:.1f} ms vs fastest "
            f"engine {c['engine']['flags']} {c['engine']['median_ms']:.1f} ms: "
            f"[bold]{c['ratio']:.2f}x[/bold] ({_verdict(c['ratio'])})"
        )


def _verdict(ratio: float) -> str:
    return f"{'ahead' if ratio >= AHEAD else 'NOT ahead'}; ahead means >= {AHEAD:.2f}x"
