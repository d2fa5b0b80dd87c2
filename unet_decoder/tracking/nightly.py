"""Nightly tracking: measure new commits, keep them on the results branch, flag regressions.

A night is judged as a pull request is: a benchmark slower than the factor at first look, or
slower than the lower `nomination_bar`, is measured again on both commits (`second_look`), and
reported only if it is slower than the factor then. The confirming samples join the stored
ones, so the dashboard shows what the verdict saw.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from pathlib import Path

from .culprit import Culprit, find_culprits
from .noise import refuse_injected
from .results_branch import check_results, git, results_worktree, store, sync
from .rounds import CONFIRM_ROUNDS, nomination_bar
from .second_look import Asv, asv_caller, second_look
from .stored import Stored, stored_results
from .verdict import NOTHING, PASS, REGRESSION, Verdict, compared_rows, read_asv_output


@dataclass
class NightlyReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    committed: bool = False
    asv_returncode: int = 0
    verdict: Verdict = field(default_factory=lambda: Verdict(PASS, "measured"))
    comparison: Comparison | None = None
    # the second look's table: each entry measured again, its processes' values and ratio
    looked_again: str = ""
    results_dir: Path | None = None  # every night stored for the machine (`changepoints`)
    culprits: list[Culprit] = field(default_factory=list)  # kept regressions' first slow commits

    @property
    def regressions(self) -> list[str]:
        """Each benchmark slower than the factor, with its ratio (none when nothing compared)."""
        if self.comparison is None:
            return []
        return [f"{name} x{ratio}" for name, ratio in self.comparison.regressions]


@dataclass(frozen=True)
class Comparison:
    """The two newest measured commits of this machine, compared by `asv compare`."""

    previous: str | None = None  # None: fewer than two measured commits, nothing to compare yet
    newest: str | None = None
    compared: int = 0  # benchmarks with a number on both sides
    regressions: list[tuple[str, str]] = field(default_factory=list)  # (benchmark, "1.23")
    error: str | None = None  # what asv compare said when it failed
    # slower than `nomination_bar` but not flagged: measured again too, never a regression alone
    nominated: list[tuple[str, str]] = field(default_factory=list)


def measured_commits(results_dir: Path, machine: str) -> set[str]:
    """Full hashes of the commits that have a results file for this machine, read from the
    files themselves (asv's own reader), not from the text of `asv show`."""
    from asv.results import iter_results_for_machine

    if not (results_dir / machine).is_dir():
        return set()
    return {result.commit_hash for result in iter_results_for_machine(str(results_dir), machine)}


def compare_newest(repo: Path, asv: Asv, machine: str, factor: float, *, results_dir: Path,
                   measured_before: Collection[str] = ()) -> Comparison:  # fmt: skip
    """Benchmarks slower than factor over the night: the newest measured commit of this
    machine against the newest one measured before the night (`measured_before`), or against
    the one before it on a first night. Comparing the two newest alone would judge only the
    night's last commit when asv measured several."""
    log = git(repo, "log", "--first-parent", "--format=%H", "-1000").stdout.split()
    measured_here = measured_commits(results_dir, machine)
    measured = [c for c in log if c in measured_here]
    if len(measured) < 2:
        return Comparison()
    newest = measured[0]
    previous = next((c for c in measured[1:] if c in measured_before), measured[1])
    code, said = asv("compare", "--factor", str(factor), "--split", previous, newest)
    if code != 0:
        lines = [ln.strip() for ln in said.splitlines() if ln.strip()]
        return Comparison(previous, newest, error=(lines[-1:] or ["no output"])[0][:200])
    return compared(previous, newest, compared_rows(said), factor)


def compared(previous: str, newest: str, rows: list[tuple[str, float, str]],
             factor: float) -> Comparison:  # fmt: skip
    """asv's slower rows (+) are regressions; the others slower than `nomination_bar` are
    nominated for the second look (asv's significance test over two nights' processes misses
    real slowdowns as a pull request's first look does)."""
    slower = [(name, f"{ratio:.2f}") for mark, ratio, name in rows if mark == "+"]
    bar = nomination_bar(factor)
    near = [(name, f"{ratio:.2f}") for mark, ratio, name in rows if mark != "+" and ratio > bar]
    return Comparison(previous, newest, len(rows), slower, nominated=near)


def comparison_verdict(comparison: Comparison, factor: float, machine: str) -> Verdict | None:
    """A regression, or "compared nothing" where two measured commits share no benchmark
    (after a change of environment names, e.g. asv's environment type): a night that
    compared nothing must not read as a night without regressions. None: fewer than two
    measured commits, so nothing to compare yet."""
    if comparison.previous is None:
        return None
    pair = f"{comparison.previous[:8]}..{comparison.newest[:8]}"
    if comparison.error is not None:
        return Verdict(NOTHING, f"compared nothing: asv compare {pair} failed "
                                f"({comparison.error})")  # fmt: skip
    if comparison.compared == 0:
        return Verdict(
            NOTHING,
            f"compared nothing: {pair} share no benchmark measured on both (asv pairs results "
            "by environment name); measure the older commit again in the current "
            f"environments: asv run {comparison.previous[:8]}^! --machine {machine}",
        )
    if comparison.regressions:
        return Verdict(
            REGRESSION,
            f"{len(comparison.regressions)} benchmark(s) slower than x{factor} since the "
            f"previous measured commit ({pair}): "
            + "; ".join(f"{name} x{ratio}" for name, ratio in comparison.regressions[:8]),
            regressions=comparison.regressions,
        )
    return Verdict(
        PASS, f"{comparison.compared} benchmark(s) compared ({pair}), none slower than x{factor}"
    )


def run_nightly(
    repo: str | Path = ".",
    *,
    config: str | Path = "asv.conf.json",
    machine: str,
    branch: str = "asv-results",
    commits: str = "NEW",
    factor: float = 1.10,
    extra_args: list[str] | None = None,
    env: dict[str, str] | None = None,
    confirm_rounds: int = CONFIRM_ROUNDS,
) -> NightlyReport:
    from asv.config import Config

    repo = Path(repo).resolve()
    config = (repo / config).resolve()
    results_dir = Path(Config.load(str(config)).results_dir)
    if not results_dir.is_absolute():
        results_dir = config.parent / results_dir
    worktree = repo / ".asv" / "nightly-results"
    env = {**os.environ, **(env or {})}
    refuse_injected(env)
    asv = asv_caller(config, machine, repo, env)

    results_worktree(repo, branch, worktree)
    stored = worktree / "results"
    check_results(stored)  # before anything else: never build on a broken history
    results_dir.mkdir(parents=True, exist_ok=True)
    if stored.is_dir():
        sync(stored, results_dir)
    check_results(results_dir)
    measured_before = measured_commits(results_dir, machine)

    # samples recorded: asv's comparison tests them, and a second look adds to them
    code, output = asv("run", commits, "--skip-existing-successful", "--record-samples",
                       *(extra_args or []))  # fmt: skip
    nothing_new = code == 1 and "No commit hashes selected" in output
    report = NightlyReport(asv_returncode=0 if nothing_new else code, results_dir=results_dir)
    if nothing_new:  # a quiet night: asv exits 1 when NEW is empty
        report.verdict = Verdict(PASS, "no new commit to measure")
    else:
        report.verdict = read_asv_output(code, output)
        if report.verdict.kind == NOTHING:  # store nothing: there is nothing to store
            return report
    check_results(results_dir)
    head = git(repo, "rev-parse", "--short", "HEAD").stdout.strip()
    # committed before comparing: a night killed during its second look keeps what it measured
    report.added, report.updated = store(results_dir, stored, worktree,
                                          f"nightly: {machine} at {head}")  # fmt: skip
    report.committed = bool(report.added or report.updated)
    if nothing_new:  # yesterday's comparison stands: reporting it again each quiet night is noise
        return report
    report.comparison = compare_newest(repo, asv, machine, factor, results_dir=results_dir,
                                       measured_before=measured_before)  # fmt: skip
    verdict = comparison_verdict(report.comparison, factor, machine)
    suspect = report.comparison.regressions or report.comparison.nominated
    if verdict is not None and verdict.kind in (REGRESSION, PASS) and suspect and confirm_rounds:
        report.comparison, verdict, report.looked_again = _look_again(
            asv, stored_results(config, repo), report.comparison, verdict, factor,
            confirm_rounds, extra_args or [])  # fmt: skip
        check_results(results_dir)
        _, updated = store(results_dir, stored, worktree, f"nightly: {machine}, second look")
        report.updated += [name for name in updated if name not in report.updated]
        report.committed = report.committed or bool(updated)
    if verdict is not None and verdict.kind == REGRESSION:
        report.culprits = find_culprits(
            asv, stored_results(config, repo), repo, report.comparison.previous,
            report.comparison.newest, verdict.regressions, rounds=confirm_rounds,
            factor=factor, extra_args=extra_args or [])  # fmt: skip
        verdict = replace(verdict, message=verdict.message + _named(report.culprits))
        check_results(results_dir)
        _, updated = store(results_dir, stored, worktree, f"nightly: {machine}, bisection")
        report.updated += [name for name in updated if name not in report.updated]
        report.committed = report.committed or bool(updated)
    if verdict is not None and report.verdict.kind == PASS:
        passed = verdict.kind == PASS
        report.verdict = (
            Verdict(PASS, f"{report.verdict.message}; {verdict.message}") if passed else verdict
        )
    return report


def _look_again(asv: Asv, stored: Stored, comparison: Comparison, first: Verdict,
                factor: float, rounds: int,
                extra_args: list[str]) -> tuple[Comparison, Verdict, str]:  # fmt: skip
    """The comparison and verdict after measuring the flagged benchmarks again on both
    commits, only the slowdowns that stay kept, and the table of what was measured (each
    process's value: the evidence a regression issue needs; empty if none was read)."""
    previous, newest = comparison.previous, comparison.newest
    flagged = [*first.regressions, *comparison.nominated]
    looked, _, table = second_look(asv, stored, previous, newest, flagged, rounds=rounds,
                                   factor=factor, extra_args=extra_args)  # fmt: skip
    confirmed = looked.regressions if looked.kind == REGRESSION else []
    message = f"{previous[:8]}..{newest[:8]}: {looked.message}"
    verdict = Verdict(looked.kind, message, regressions=confirmed, failed=looked.failed)
    return replace(comparison, regressions=confirmed), verdict, table


def _named(culprits: list[Culprit]) -> str:
    """The verdict's last clause: which commits the kept regressions were bisected to."""
    if not culprits:
        return ""
    pinned = {}
    for culprit in culprits:
        if culprit.commit:
            pinned.setdefault(culprit.commit[:8], []).append(culprit.entry)
    named = "; ".join(f"{c} ({len(entries)} benchmark(s))" for c, entries in pinned.items())
    left = sum(1 for c in culprits if not c.commit)
    return (f"; first slow commit: {named or 'none pinned'}"
            + (f"; {left} not pinned on one commit" if left else ""))  # fmt: skip
