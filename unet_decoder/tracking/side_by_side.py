"""Entries of base and head timed side by side in one process: compiled, engine and eager.

asv times each commit in its own processes, and on a shared VM each process runs at its own
speed level for its life (25-35% apart for efficientnet_b0's compiled entries here): a
comparison of two processes' medians cannot see 5%. A compiled or engine entry is a file
(an AOTInductor package, ONNX, OpenVINO IR) that each commit's benchmark process built and
loaded; its census names the folder and the interpreter (`about["artifact"]`, `["python"]`).
Here the base's and the head's artifacts of an entry are loaded into one process of that
environment's Python and timed
in alternating blocks (`bench.paired`), in several processes, and the verdict is on the
per-process ratios: their geometric mean and 95% interval. A process's own level cancels.

Two artifacts with the same files, run the same way (the head's build reused the base's, or
linked its compiled package), run the same program: nothing to time, "same artifact".

An eager entry has no file: its census names the interpreter alone, and the two commits'
packages are imported side by side under names of their own (`bench.two_commits`), each
building the entry with its own code; a head whose package runs the base's code (docstrings,
comments and layout aside: `same_code`) has the same code.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from .structure import CensusPair
from .verdict import PASS, REGRESSION, SUSPICIOUS, Verdict

#: Processes at first, and added once when the interval still holds both 1 and the factor.
PROCESSES, EXTRA_PROCESSES = 4, 4
#: A paired entry's own factor: the pairing cancels the process levels the gate's factor
#: (1.10) was set for, so it looks for 5%. A pair is slower once its interval lies above
#: x1.00 and its mean is past halfway to the factor (x1.025): a true 5% slowdown then fails
#: whether it reads x1.03 or x1.08 in a trial, and an A/A pair needs both a significant
#: difference and one of 2.5%.
PAIRED_FACTOR = 1.05
#: What a pair's timing said (or SUSPICIOUS: the verdict's own kind, undecided).
SLOWER, SAME, CLEARED = "slower", "same artifact", "not slower"


@dataclass(frozen=True)
class ArtifactPair:
    entry: str  # "resnet34 best_compiled"
    environment: str
    base: Path
    head: Path
    python: str = sys.executable  # the environment's, which loaded both

    @property
    def benchmark(self) -> str:
        """The asv name of the timing this pair replaces."""
        encoder, flags = self.entry.split(" ", 1)
        return f"forward.Forward.time_forward('{encoder}', '{flags}')"


@dataclass(frozen=True)
class EagerPair:
    """An eager entry of two commits: each commit's own code, imported side by side in one
    process (`bench.two_commits`): there is no file to load."""

    entry: str  # "resnet34 none"
    environment: str
    repo: Path
    base: str  # commits
    head: str
    python: str = sys.executable

    benchmark = ArtifactPair.benchmark


@dataclass(frozen=True)
class PairedVerdict:
    pair: ArtifactPair | EagerPair
    kind: str  # SLOWER, SUSPICIOUS, SAME, CLEARED
    ratio: float = 1.0
    interval: tuple[float, float] = (1.0, 1.0)
    processes: int = 0
    profile: tuple[str, ...] = ()  # a slower pair: the operators whose time grew (`explain`)
    seconds: float = 0.0  # what timing it cost, wall clock: the gate's time goes here

    def line(self) -> str:
        where = f"{self.pair.entry} [{self.pair.environment}]"
        if self.kind == SAME:
            same = "code" if isinstance(self.pair, EagerPair) else "artifact files"
            return f"{where}: same {same} as the base, nothing to time"
        low, high = self.interval
        cost = f", {self.seconds:.0f} s" if self.seconds else ""
        return (f"{where}: x{self.ratio:.3f} (95% interval x{low:.3f}-x{high:.3f}, "
                f"{self.processes} processes{cost}, side by side): {self.kind}")  # fmt: skip


#: What makes two artifacts run the same program: the same files (by sha256), run the same
#: way. An eager artifact keeps the weights and re-applies its flags at load.
_SAME_PROGRAM = ("kind", "flags", "files", "program", "input_shape", "threads", "precision")


def _program(folder: Path) -> tuple | None:
    try:
        record = json.loads((folder / "deployed.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not record.get("files"):
        return None  # an artifact that predates its files' sha256: time it
    return tuple(json.dumps(record.get(key), sort_keys=True) for key in _SAME_PROGRAM)


def artifact_pairs(censuses: list[CensusPair]) -> list[ArtifactPair]:
    """Every entry whose base and head census both name an artifact folder that still
    exists (eager entries name none: asv's processes judge them)."""
    found = []
    for pair in censuses:
        sides = [c.about if c is not None else {} for c in (pair.base, pair.head)]
        if not all("artifact" in side for side in sides) or "python" not in sides[1]:
            continue
        folders = [Path(side["artifact"]) for side in sides]
        python = sides[1]["python"]
        if all((f / "deployed.json").is_file() for f in folders) and Path(python).is_file():
            found.append(ArtifactPair(pair.entry, pair.environment, *folders, python=python))
    return found


def eager_pairs(censuses: list[CensusPair], repo: str | Path, base: str,
                head: str) -> list[EagerPair]:  # fmt: skip
    """Every eager entry censused on both commits whose head census names its interpreter,
    where both commits have the facade that builds an entry (`benchmarking`)."""
    from ..bench.two_commits import has_facade
    from .stored import commit_of

    commits = [commit_of(repo, ref) for ref in (base, head)]
    if not all(commit is not None and has_facade(repo, commit) for commit in commits):
        return []
    found = []
    for pair in censuses:
        if pair.base is None or pair.head is None:
            continue
        python = pair.head.about.get("python")
        eager = pair.base.kind == pair.head.kind == "torch-eager"
        if eager and python and Path(python).is_file():
            found.append(EagerPair(pair.entry, pair.environment, Path(repo), *commits, python))
    return found


def judge(pair: ArtifactPair | EagerPair, **timing) -> PairedVerdict:
    """Same program (the same artifact files run the same way; for an eager entry, the same
    package code): nothing to time. Otherwise the pair's timing (`timed_verdict`)."""
    if isinstance(pair, EagerPair):
        from ..bench.two_commits import same_code

        same = same_code(pair.repo, pair.base, pair.head)
    else:
        base_program, head_program = _program(pair.base), _program(pair.head)
        same = pair.base == pair.head or (base_program is not None
                                          and base_program == head_program)  # fmt: skip
    return PairedVerdict(pair, SAME) if same else timed_verdict(pair, **timing)


def _compare_for(pair: ArtifactPair | EagerPair) -> Callable:
    if isinstance(pair, EagerPair):
        from ..bench.two_commits import compare_commits

        encoder, flags = pair.entry.split(" ", 1)
        return lambda a, b, **timing: compare_commits(pair.repo, a, b, encoder, flags, **timing)
    from ..bench.paired import compare_artifacts

    return compare_artifacts


def timed_verdict(pair: ArtifactPair | EagerPair, *, factor: float = PAIRED_FACTOR,
                  processes: int = PROCESSES, extra: int = EXTRA_PROCESSES, blocks: int = 12,
                  calls: int = 8, compare: Callable | None = None,
                  inject_b: float = 0.0) -> PairedVerdict:  # fmt: skip
    """Slower when the interval lies above 1 and the ratio is past halfway to `factor`; not
    slower when the interval lies below `factor`; otherwise `extra` more processes, then
    suspicious.
    `inject_b` slows the head's calls by that fraction: what the rule can see (measuring the
    gate, never in it)."""
    compare = compare or _compare_for(pair)
    began = time.perf_counter()
    timing = {"blocks": blocks, "calls": calls, "python": pair.python}
    if inject_b:
        timing["inject_b"] = inject_b
    result = compare(pair.base, pair.head, processes=processes, **timing)
    bar = 1 + (factor - 1) / 2

    def decided() -> str | None:
        low, high = result.interval
        if low > 1 and result.ratio >= bar:
            return SLOWER
        return CLEARED if high < factor else None

    if decided() is None and extra:
        result.processes.extend(compare(pair.base, pair.head, processes=extra, **timing).processes)
    return PairedVerdict(pair, decided() or SUSPICIOUS, result.ratio, result.interval,
                         len(result.processes), seconds=time.perf_counter() - began)  # fmt: skip


def explain(verdict: PairedVerdict, *, timeout: float = 600) -> PairedVerdict:
    """A slower pair with its profile: base and head profiled by operator in one process of
    the environment's Python (`census.profile`), the operators whose time grew first. An
    AOTInductor package has no per-operator times: its census delta is the explanation."""
    if verdict.kind != SLOWER:
        return verdict
    if isinstance(verdict.pair, EagerPair):
        from ..bench.two_commits import profile_commits

        pair = verdict.pair
        lines = profile_commits(pair.repo, pair.base, pair.head, *pair.entry.split(" ", 1),
                                python=pair.python, timeout=timeout)  # fmt: skip
        return replace(verdict, profile=tuple(lines))
    try:
        kind = json.loads((verdict.pair.head / "deployed.json").read_text())["kind"]
    except (OSError, ValueError, KeyError):
        kind = None
    if kind == "torch-aoti":
        return replace(verdict, profile=("an AOTInductor package: no per-operator times "
                                         "(its kernels run below the profiler); see the "
                                         "census delta",))  # fmt: skip
    command = [verdict.pair.python, "-m", "unet_decoder.census.profile",
               str(verdict.pair.base), str(verdict.pair.head)]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return replace(verdict, profile=(f"profiling timed out after {timeout:.0f} s",))
    try:
        lines = tuple(json.loads(done.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        lines = (f"profiling failed: {last}",)
    return replace(verdict, profile=lines)


def _is_paired(name: str, pairs: list[ArtifactPair]) -> bool:
    """Whether an asv row or stored entry (`name(params)`, maybe ` [machine/env]`) is the
    timing of one of `pairs` (the same entry, in its environment where the name gives one)."""
    bare, _, where = name.partition(" [")
    environment = where.rstrip("]").rsplit("/", 1)[-1] if where else None
    return any(bare == p.benchmark and environment in (None, p.environment) for p in pairs)


def unpaired(entries, pairs: list[ArtifactPair]):
    """`entries` (a dict by name, or (name, ratio) rows) less the timings judged side by side."""
    if isinstance(entries, dict):
        return {name: v for name, v in entries.items() if not _is_paired(name, pairs)}
    return [row for row in entries if not _is_paired(row[0], pairs)]


def with_pairs(verdict: Verdict, judged: list[PairedVerdict]) -> Verdict:
    """The gate's verdict once the paired entries are judged: a slower pair is a regression,
    a suspicious one (undecided after every process) fails as suspicious unless the timing
    verdict already failed."""
    slower = [v for v in judged if v.kind == SLOWER]
    unsure = [v for v in judged if v.kind == SUSPICIOUS]
    if verdict.kind not in (PASS, REGRESSION) or not (slower or unsure):
        return verdict
    if slower:
        rows = [(f"{v.pair.benchmark} [{v.pair.environment}]", f"{v.ratio:.3f}") for v in slower]
        listed = "; ".join(v.line() for v in slower[:8])
        if verdict.kind == REGRESSION:
            return Verdict(REGRESSION, f"{verdict.message}; and side by side: {listed}",
                           [*verdict.regressions, *rows], verdict.failed)  # fmt: skip
        return Verdict(REGRESSION, f"PERFORMANCE DECREASED side by side: {listed}", rows)
    if verdict.kind == REGRESSION:
        return verdict
    listed = "; ".join(v.line() for v in unsure[:8])
    return Verdict(SUSPICIOUS, f"undecided after every process: {listed}: measure again "
                   "(unet-decoder pair BASE HEAD on the two artifacts) before merging")  # fmt: skip
