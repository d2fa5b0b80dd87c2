"""`unet-decoder noise`: how much a benchmark moves when nothing changed, and what factor a
gate on this machine can trust.

A/A runs: the same build (this environment, `asv run -E existing`) measured `runs` times,
each a separate `asv run` with its own results folder, as a gate or a nightly job would
measure it. For each benchmark entry: the spread across runs; for each consecutive pair and
each candidate factor: would asv's own comparison (`asv continuous`'s rule: slower than the
factor *and* statistically different, from recorded samples) call it a regression? Those are
false positives. With `inject`, the same runs are repeated with every forward slowed by that
fraction (benchmarks/forward.py reads UNET_BENCH_INJECT_SLOWDOWN): the slowdowns the gate
would catch. The recommended factor is the smallest candidate with no false positive.
"""

from __future__ import annotations

import itertools
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
from .verdict import read_asv_output

CANDIDATE_FACTORS = (1.05, 1.10, 1.15, 1.20, 1.30, 1.50)


@dataclass
class NoiseReport:
    runs: int
    factor: float
    entries: dict[str, list[float]] = field(default_factory=dict)  # entry -> value per run
    false_positives: dict[float, int] = field(default_factory=dict)  # factor -> count
    pairs: int = 0
    injected: float | None = None
    caught: int = 0  # injected pairs flagged at `factor`
    injected_pairs: int = 0

    @property
    def recommended_factor(self) -> float | None:
        return next((f for f in CANDIDATE_FACTORS if self.false_positives.get(f, 1) == 0), None)

    def spreads(self) -> dict[str, float]:
        """max/min - 1 across runs, per entry."""
        return {k: max(v) / min(v) - 1 for k, v in self.entries.items() if min(v) > 0}

    def to_dict(self) -> dict:
        return {
            "runs": self.runs, "factor": self.factor, "pairs": self.pairs,
            "entries": self.entries, "spread": self.spreads(),
            "false_positives": {str(k): v for k, v in self.false_positives.items()},
            "recommended_factor": self.recommended_factor, "injected": self.injected,
            "injected_pairs": self.injected_pairs, "caught": self.caught,
        }  # fmt: skip


def _load(results_dir: Path, machine: str) -> dict[str, tuple[float, object, object]]:
    """entry name -> (value, stats, samples) of the one results file in results_dir."""
    from asv.results import Results

    files = [p for p in (results_dir / machine).glob("*.json") if p.name != "machine.json"]
    if len(files) != 1:
        raise UNetDecoderError(f"expected one asv results file in {results_dir}, found {files}")
    result = Results.load(str(files[0]), machine)
    out = {}
    for key in result.get_all_result_keys():
        params = result.get_result_params(key)
        values = result.get_result_value(key, params)
        stats = result.get_result_stats(key, params)
        samples = result.get_result_samples(key, params)
        combos = list(itertools.product(*params)) if params else [()]
        for combo, value, stat, sample in zip(combos, values, stats, samples, strict=True):
            if value is None or value != value:  # failed or n/a
                continue
            name = f"{key}({', '.join(combo)})" if combo else key
            out[name] = (value, stat, sample)
    return out


def _slower(before, after, factor: float) -> bool:
    """asv continuous's rule: after is worse than before by factor, and significantly."""
    from asv.commands.compare import _is_result_better

    return _is_result_better(before[0], after[0], (before[1], before[2]),
                             (after[1], after[2]), factor)  # fmt: skip


def _asv_run(config: dict, folder: Path, regex: str, machine: str, env: dict, head: str) -> dict:
    conf = {**config, "results_dir": str(folder / "results"), "html_dir": str(folder / "html")}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "asv.conf.json"
    path.write_text(json.dumps(conf))
    command = [sys.executable, "-m", "asv", "--config", str(path), "run", "-E",
               f"existing:{sys.executable}", "--set-commit-hash", head, "--record-samples",
               "--machine", machine, "-b", regex]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    verdict = read_asv_output(done.returncode, done.stdout + done.stderr)
    if not verdict.passed:
        raise UNetDecoderError(f"asv run for the noise measurement: {verdict.message}")
    return _load(folder / "results", machine)


def measure_noise(
    regex: str,
    *,
    runs: int = 5,
    factor: float = 1.10,
    inject: float | None = None,
    machine: str,
    config: str | Path = "asv.conf.json",
    progress: Callable[[str], None] = lambda s: None,
) -> NoiseReport:
    """A/A runs of this environment's build (and injected-slowdown runs); see module doc."""
    from asv.util import load_json

    if runs < 2:
        raise UNetDecoderError(f"--runs must be at least 2 (pairs are compared), got {runs}")
    base = load_json(str(config), js_comments=True)
    base["repo"] = str(Path(config).resolve().parent / base.get("repo", "."))
    base["benchmark_dir"] = str(Path(config).resolve().parent / base.get("benchmark_dir", "."))
    env = {**os.environ}
    env.pop("UNET_BENCH_INJECT_SLOWDOWN", None)
    report = NoiseReport(runs=runs, factor=factor, injected=inject)
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="unet-decoder-noise-") as tmp:
        measured = []
        for i in range(runs):
            progress(f"A/A run {i + 1}/{runs}")
            measured.append(_asv_run(base, Path(tmp) / f"a{i}", regex, machine, env, head))
        names = sorted(set.intersection(*(set(m) for m in measured)))
        if not names:
            raise UNetDecoderError(f"no benchmark matching {regex!r} was measured in every run")
        report.entries = {n: [m[n][0] for m in measured] for n in names}
        report.pairs = (runs - 1) * len(names)
        for candidate in sorted({*CANDIDATE_FACTORS, factor}):
            report.false_positives[candidate] = sum(
                _slower(a[n], b[n], candidate)
                for a, b in itertools.pairwise(measured)
                for n in names
            )
        if inject:
            slowed_env = {**env, "UNET_BENCH_INJECT_SLOWDOWN": str(inject)}
            for i in range(runs):
                progress(f"run {i + 1}/{runs} with every forward {inject:.0%} slower")
                slowed = _asv_run(base, Path(tmp) / f"b{i}", regex, machine, slowed_env, head)
                for n in names:
                    if n in slowed and "time_" in n:
                        report.injected_pairs += 1
                        report.caught += _slower(measured[i][n], slowed[n], factor)
    return report


def format_report(report: NoiseReport) -> str:
    lines = [f"{report.runs} A/A runs of the same build; spread = max/min - 1 across runs", ""]
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
        lines.append(f"false positives at factor {factor:.2f}: {count} of {report.pairs} pairs")
    best = report.recommended_factor
    lines.append(
        f"recommended factor for this machine: {best:.2f}" if best
        else "no candidate factor is free of false positives: this machine is too noisy"
    )  # fmt: skip
    if report.injected:
        lines.append(
            f"injected {report.injected:.0%} slowdown flagged at factor {report.factor:.2f}: "
            f"{report.caught} of {report.injected_pairs}"
        )
    return "\n".join(lines)
