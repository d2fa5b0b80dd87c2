"""What `unet-decoder noise` found: per entry, the spread of A/A sides; per candidate factor,
the false positives of asv's rule; and, for both looks of the gate, what an injected slowdown
it caught. `format_report` prints it; `to_dict` is the `--json` record."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from .rounds import EXTRA_ROUNDS

CANDIDATE_FACTORS = (1.05, 1.10, 1.15, 1.20, 1.30, 1.50)


@dataclass
class NoiseReport:
    runs: int  # trials: base and head measured in interleaved rounds
    factor: float
    rounds: int = 2
    entries: dict[str, list[float]] = field(default_factory=dict)  # entry -> value per run
    false_positives: dict[float, int] = field(default_factory=dict)  # factor -> count
    pairs: int = 0
    injected: float | None = None
    caught: int = 0  # injected pairs flagged at `factor`
    injected_pairs: int = 0
    confirm_rounds: int = 0
    confirmed_false_positives: int = 0  # at `factor`, still flagged after the confirming rounds
    confirmed_caught: int = 0
    # per trial: did the gate fail after its second look (A/A head; slowed side)?
    failed_trials: int = 0
    caught_trials: int = 0
    # per trial: first-look ratio per side and entry, what was measured again, each
    # confirming process's value, what stayed slower: the evidence behind the counts
    trials: list[dict] = field(default_factory=list)

    @property
    def recommended_factor(self) -> float | None:
        return next((f for f in CANDIDATE_FACTORS if self.false_positives.get(f, 1) == 0), None)

    def spreads(self) -> dict[str, float]:
        """max/min - 1 across the A/A sides of every trial, per entry."""
        return {k: max(v) / min(v) - 1 for k, v in self.entries.items() if min(v) > 0}

    def to_dict(self) -> dict:
        return {
            "runs": self.runs, "rounds": self.rounds, "factor": self.factor, "pairs": self.pairs,
            "entries": self.entries, "spread": self.spreads(),
            "false_positives": {str(k): v for k, v in self.false_positives.items()},
            "recommended_factor": self.recommended_factor, "injected": self.injected,
            "injected_pairs": self.injected_pairs, "caught": self.caught,
            "confirm_rounds": self.confirm_rounds,
            "confirmed_false_positives": self.confirmed_false_positives,
            "confirmed_caught": self.confirmed_caught, "failed_trials": self.failed_trials,
            "caught_trials": self.caught_trials, "trials": self.trials,
        }  # fmt: skip


def format_report(report: NoiseReport) -> str:
    lines = [
        f"{report.runs} A/A trials (base and head the same build, {report.rounds} interleaved "
        "rounds each, as the gate measures); values: base, head of each trial; "
        "spread = max/min - 1",
        "",
    ]
    width = max(len(n) for n in report.entries)
    for name, values in report.entries.items():
        spread = max(values) / min(values) - 1
        shown = " ".join(f"{v * 1e3:8.2f}" if v < 10 else f"{v:8.2f}" for v in values)
        lines.append(f"{name:<{width}}  {shown}   spread {spread:6.1%}")
    spreads = sorted(report.spreads().values())
    if spreads:
        lines += ["", f"spread: median {statistics.median(spreads):.1%}, max {spreads[-1]:.1%} "
                  "(times in ms)"]  # fmt: skip
    lines.append("")
    for factor, count in sorted(report.false_positives.items()):
        lines.append(f"false positives at factor {factor:.2f}: {count}/{report.pairs} compared")
    if report.confirm_rounds:
        lines.append(
            f"false positives at factor {report.factor:.2f} after the gate's "
            f"{report.confirm_rounds} confirming rounds ({report.confirm_rounds + EXTRA_ROUNDS}"
            " where undecided): "
            f"{report.confirmed_false_positives}/{report.pairs} compared"
        )
    best = report.recommended_factor
    lines.append(
        f"recommended factor for this machine: {best:.2f}" if best
        else "no candidate factor is free of false positives: this machine is too noisy"
    )  # fmt: skip
    if report.injected:
        lines.append(
            f"injected {report.injected:.0%} slowdown flagged at factor {report.factor:.2f}: "
            f"{report.caught} of {report.injected_pairs}"
            + (f"; after confirming: {report.confirmed_caught} of {report.injected_pairs}"
               if report.confirm_rounds else "")
        )  # fmt: skip
    lines.append(
        f"gate verdicts: the A/A head failed {report.failed_trials} of {report.runs} trials"
        + (f"; the slowed side failed {report.caught_trials} of {report.runs}"
           if report.injected else "")
    )  # fmt: skip
    return "\n".join(lines)
