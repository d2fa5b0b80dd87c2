"""`unet-decoder noise`: how much a benchmark moves when nothing changed, and what factor a
gate on this machine can trust.

It replays the gate's own measurement: `asv continuous` measures base and head in interleaved
rounds (round 1 base then head, round 2 head then base, samples appended), so a slow minute of
the machine hits both sides. Here each trial is such a pair, both sides the same build (this
environment, `asv run -E existing`, one round per call, `--append-samples` into the side's own
results folder): an A/A trial. Would asv's comparison (`asv continuous`'s rule: slower than the
factor *and* statistically different, from the recorded samples) call it a regression? That is
a false positive. With `inject`, each trial has a third side, interleaved in the same rounds,
whose every forward is slowed by that fraction (benchmarks/forward.py reads `INJECT_VARIABLE`,
which only this command sets and the gate and the nightly refuse): the slowdowns the gate
would catch. It takes a new position in every round (first, between, last), so that no side
always runs right after it. The recommended factor is the smallest candidate with no false
positive at first look. As the gate does, the entries flagged at `factor`, or slower than its
`nomination_bar`, are then measured again in the gate's confirming rounds (`rounds.confirm`),
one process per side and round, and judged by the median of each side's processes: false
positives and catches are reported for both looks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..errors import UNetDecoderError
from .noise_report import CANDIDATE_FACTORS, NoiseReport
from .rounds import CONFIRM_ROUNDS, added_by_process, confirm, nomination_bar
from .selections import exact_entries
from .stored import Entries, result_entries
from .verdict import read_asv_output

#: The benchmarks' slowdown knob (benchmarks/forward.py): a fraction of each forward's time
#: slept after it. Set by `noise --inject` on its slowed side alone; `refuse_injected` keeps
#: it out of every run whose results are kept.
INJECT_VARIABLE = "UNET_BENCH_INJECT_SLOWDOWN"


def refuse_injected(env: dict[str, str] | None = None) -> None:
    """The gate and the nightly keep what they measure: one line, never a slowed series."""
    if (env if env is not None else os.environ).get(INJECT_VARIABLE):
        raise UNetDecoderError(
            f"{INJECT_VARIABLE} is set: every time_forward would be slowed and recorded so; "
            f"unset it (it is `unet-decoder noise --inject`'s alone)."
        )


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
    env.pop(INJECT_VARIABLE, None)
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
            sides["slowed"] = {**env, INJECT_VARIABLE: str(inject)}

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
            report.trials.append(_evidence(trials[-1], flagged))
            if not (confirm_rounds and flagged["base"]):
                confirmed.append(flagged)  # the first look is the verdict
                continue

            def one_process(side: str, active: set[str], t: int = t) -> dict[str, float]:
                before = load(t, (side,))[side]
                measure(t, side, exact_entries(active), "confirming round")
                after = load(t, (side,))[side]
                return {name: value for name, value in _process_values(before, after)
                        if name in active}  # fmt: skip

            values, ratios = confirm(
                {side: f for side, f in flagged.items() if side != "base"}, one_process,
                lambda done: round_order(rounds + done, with_slowed=bool(inject)),
                rounds=confirm_rounds, factor=factor,
            )  # fmt: skip
            report.trials[-1]["processes"] = values
            confirmed.append({side: {n for n, ratio in found.items() if ratio > factor}
                              for side, found in ratios.items()})  # fmt: skip
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


def _evidence(trial: dict, flagged: dict) -> dict:
    """One trial's record for the report; the confirming rounds add their processes."""
    ratios = {side: {n: round(v[0] / trial["base"][n][0], 4) for n, v in entries.items()
                     if n in trial["base"] and trial["base"][n][0] > 0}
              for side, entries in trial.items() if side != "base"}  # fmt: skip
    listed = {side: sorted(f) for side, f in flagged.items()}
    kept = {side: f for side, f in listed.items() if side != "base"}  # judged against base
    return {"first_look": ratios, "flagged": listed, "processes": {}, "confirmed": kept}


def _process_values(before: dict, after: dict) -> list[tuple[str, float]]:
    """(entry, what the one process between two loads of a side's results measured)."""
    found = []
    for name, (value, _, samples) in after.items():
        prior = before.get(name)
        earlier = (prior[2] or [prior[0]]) if prior else None
        found.append((name, added_by_process(earlier, samples or [value])))
    return found


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
