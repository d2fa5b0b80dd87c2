"""`unet-decoder noise`: how much a benchmark moves when nothing changed, and what factor a
gate on this machine can trust.

It replays the gate's own measurement: `asv continuous` measures base and head in interleaved
rounds (round 1 base then head, round 2 head then base, samples appended), so a slow minute of
the machine hits both sides. Here each trial is such a pair, both sides the same build (this
environment, `asv run -E existing`, one round per call, `--append-samples` into the side's own
results folder): an A/A trial. Would asv's comparison (`asv continuous`'s rule: slower than the
factor *and* statistically different, from the recorded samples) call it a regression? That is
a false positive. With `inject`, each trial has a third side, interleaved in the same rounds,
whose every forward is slowed by that fraction (benchmarks/forward.py reads
UNET_BENCH_INJECT_SLOWDOWN): the slowdowns the gate would catch. It takes a new position in
every round (first, between, last), so that no side always runs right after it. The
recommended factor is the smallest candidate with no false positive at first look. As the gate
does, the entries flagged at `factor`, or slower than its `nomination_bar`, are then measured
again in `confirm_rounds` more interleaved rounds (more where `undecided`), one process per
side and round, and judged again by the median of each side's processes (`second_look`): false
positives and catches are reported for both looks.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UNetDecoderError
from .second_look import (
    CONFIRM_ROUNDS,
    EXTRA_ROUNDS,
    added_by_process,
    measured_next,
    nomination_bar,
    ratio_of_processes,
)
from .selections import exact_entries
from .stored import Entries, result_entries
from .verdict import read_asv_output

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


def _load(results_dir: Path, machine: str) -> Entries:
    """entry name -> (value, stats, samples) of the one results file in results_dir."""
    from asv.results import Results

    files = [p for p in (results_dir / machine).glob("*.json") if p.name != "machine.json"]
    if len(files) != 1:
        raise UNetDecoderError(f"expected one asv results file in {results_dir}, found {files}")
    return result_entries(Results.load(str(files[0]), machine))


def _slower(before, after, factor: float) -> bool:
    """asv continuous's rule: after is worse than before by factor, and significantly."""
    from asv.commands.compare import _is_result_better

    return _is_result_better(before[0], after[0], (before[1], before[2]),
                             (after[1], after[2]), factor)  # fmt: skip


def _asv_round(config: dict, folder: Path, regex: str, machine: str, env: dict, head: str):
    """One round of one side: `asv run -a rounds=1`, samples appended to the side's results."""
    conf = {**config, "results_dir": str(folder / "results"), "html_dir": str(folder / "html")}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "asv.conf.json"
    path.write_text(json.dumps(conf))
    command = [sys.executable, "-m", "asv", "--config", str(path), "run", "-E",
               f"existing:{sys.executable}", "--set-commit-hash", head, "--append-samples",
               "-a", "rounds=1", "--machine", machine, "-b", regex]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    verdict = read_asv_output(done.returncode, done.stdout + done.stderr)
    if not verdict.passed:
        raise UNetDecoderError(f"asv run for the noise measurement: {verdict.message}")


def round_order(r: int, *, with_slowed: bool) -> list[str]:
    """Base and head in `asv continuous`'s order (reversed every other round), so that the
    A/A trials are shaped like the gate; the slowed side moves through every position, so
    that no side always runs just after it."""
    order = ["base", "head"] if r % 2 == 0 else ["head", "base"]
    if with_slowed:
        order.insert(r % 3, "slowed")
    return order


def measure_noise(
    regex: str,
    *,
    runs: int = 5,
    rounds: int = 2,
    factor: float = 1.10,
    inject: float | None = None,
    confirm_rounds: int = CONFIRM_ROUNDS,
    machine: str,
    config: str | Path = "asv.conf.json",
    progress: Callable[[str], None] = lambda s: None,
) -> NoiseReport:
    """`runs` gate trials of this environment's build against itself (and, with `inject`,
    against a slowed copy), each measured like `asv continuous`; see module doc."""
    from asv.util import load_json

    if runs < 1 or rounds < 1 or confirm_rounds < 0:
        raise UNetDecoderError(
            f"--runs and --rounds must be at least 1 and --confirm-rounds at least 0, got "
            f"{runs}, {rounds}, {confirm_rounds}"
        )
    base = load_json(str(config), js_comments=True)
    base["repo"] = str(Path(config).resolve().parent / base.get("repo", "."))
    base["benchmark_dir"] = str(Path(config).resolve().parent / base.get("benchmark_dir", "."))
    env = {**os.environ}
    env.pop("UNET_BENCH_INJECT_SLOWDOWN", None)
    sides = {"base": env, "head": env}
    report = NoiseReport(runs=runs, factor=factor, rounds=rounds, injected=inject,
                         confirm_rounds=confirm_rounds)  # fmt: skip
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip
    trials, confirmed = [], []
    with tempfile.TemporaryDirectory(prefix="unet-decoder-noise-") as tmp:
        # asv sets no environment or commit for `-E existing`, so each asv run would build
        # the compiled entries again: every side of this measurement shares one build instead
        env["UNET_BENCH_ARTIFACT_CACHE"] = str(Path(tmp) / "artifacts")
        if inject:
            sides["slowed"] = {**env, "UNET_BENCH_INJECT_SLOWDOWN": str(inject)}

        def measure(t: int, side: str, selection: str, label: str) -> None:
            progress(f"trial {t + 1}/{runs}, {label}: {side}")
            _asv_round(base, Path(tmp) / f"{t}-{side}", selection, machine, sides[side], head)

        def load(t: int, only: tuple[str, ...] = tuple(sides)) -> dict:
            return {side: _load(Path(tmp) / f"{t}-{side}" / "results", machine) for side in only}

        for t in range(runs):
            for r in range(rounds):
                for side in round_order(r, with_slowed=bool(inject)):
                    measure(t, side, regex, f"round {r + 1}/{rounds}")
            trials.append(load(t))
            # the gate's second look: only what the first flagged, more rounds, each process
            # one value, judged by the median of each side's processes
            flagged = _flagged(trials[-1], factor, nominate=confirm_rounds > 0)
            values: dict[str, dict[str, list[float]]] = {side: {} for side in flagged}
            report.trials.append(_evidence(trials[-1], flagged, values))
            if not (confirm_rounds and flagged["base"]):
                confirmed.append(flagged)
                continue
            active, done = flagged, 0
            while active["base"]:
                for side in round_order(rounds + done, with_slowed=bool(inject)):
                    if active[side]:
                        before = load(t, (side,))[side]
                        label = f"confirming round {done + 1}"
                        measure(t, side, exact_entries(active[side]), label)
                        for name, value in _process_values(before, load(t, (side,))[side]):
                            if name in active[side]:
                                values[side].setdefault(name, []).append(value)
                done += 1
                active = _measured_next(values, flagged, done, confirm_rounds, factor)
            confirmed.append({side: {n for n, ratio in _ratios(values, flagged, side).items()
                                     if ratio > factor}
                              for side in flagged if side != "base"})  # fmt: skip
            report.trials[-1]["confirmed"] = {side: sorted(c) for side, c in confirmed[-1].items()}
    names = sorted(set.intersection(*(set(m) for t in trials for m in (t["base"], t["head"]))))
    if not names:
        raise UNetDecoderError(f"no benchmark matching {regex!r} was measured in every run")
    report.entries = {n: [t[s][n][0] for t in trials for s in ("base", "head")] for n in names}
    report.pairs = runs * len(names)
    for candidate in sorted({*CANDIDATE_FACTORS, factor}):
        report.false_positives[candidate] = sum(
            _slower(t["base"][n], t["head"][n], candidate) for t in trials for n in names
        )
    if inject:
        timed = [n for n in names if "time_" in n]
        report.injected_pairs = runs * len(timed)
        report.caught = sum(
            _slower(t["base"][n], t["slowed"][n], factor)
            for t in trials for n in timed if n in t["slowed"]
        )  # fmt: skip
        report.confirmed_caught = sum(len(c.get("slowed", set()) & set(timed)) for c in confirmed)
    report.confirmed_false_positives = sum(len(c["head"] & set(names)) for c in confirmed)
    report.failed_trials = sum(bool(c["head"] & set(names)) for c in confirmed)
    report.caught_trials = sum(bool(c.get("slowed", set()) & set(names)) for c in confirmed)
    return report


def _evidence(trial: dict, flagged: dict, processes: dict) -> dict:
    """One trial's record for the report; `processes` fills in as the confirming rounds run."""
    ratios = {side: {n: round(v[0] / trial["base"][n][0], 4) for n, v in entries.items()
                     if n in trial["base"] and trial["base"][n][0] > 0}
              for side, entries in trial.items() if side != "base"}  # fmt: skip
    listed = {side: sorted(f) for side, f in flagged.items()}
    kept = {side: f for side, f in listed.items() if side != "base"}  # judged against base
    return {"first_look": ratios, "flagged": listed, "processes": processes, "confirmed": kept}


def _process_values(before: dict, after: dict) -> list[tuple[str, float]]:
    """(entry, what the one process between two loads of a side's results measured)."""
    found = []
    for name, (value, _, samples) in after.items():
        prior = before.get(name)
        earlier = (prior[2] or [prior[0]]) if prior else None
        found.append((name, added_by_process(earlier, samples or [value])))
    return found


def _measured_next(values: dict, flagged: dict, done: int, rounds: int,
                   factor: float) -> dict[str, set[str]]:  # fmt: skip
    """Per side, what the gate's next confirming round would measure (`measured_next`), each
    side judged against base; base measures their union."""
    active = {side: measured_next(_ratios(values, flagged, side), done, rounds, factor)
              for side in set(flagged) - {"base"}}  # fmt: skip
    active["base"] = set().union(*active.values())
    return active


def _ratios(values: dict, flagged: dict, side: str) -> dict[str, float]:
    """A side's confirming ratio against base, per flagged entry measured on both."""
    return {n: ratio_of_processes(values["base"][n], values[side][n])
            for n in flagged[side] if n in values["base"] and n in values[side]}  # fmt: skip


def _flagged(trial: dict, factor: float, *, nominate: bool) -> dict[str, set[str]]:
    """Per side, the entries asv's rule calls slower than base at `factor`, and with
    `nominate` those slower than `nomination_bar(factor)` too, which the gate measures again
    (time entries only for the slowed side); base gets their union: the gate measures both
    sides again."""
    flagged = {side: set() for side in trial}
    bar = nomination_bar(factor) if nominate else float("inf")
    for side in set(trial) - {"base"}:
        for name, result in trial[side].items():
            before = trial["base"].get(name)
            if before is None or not (side == "head" or "time_" in name):
                continue
            if _slower(before, result, factor) or result[0] > bar * before[0]:
                flagged[side].add(name)
    flagged["base"] = set().union(*flagged.values())
    return flagged


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
