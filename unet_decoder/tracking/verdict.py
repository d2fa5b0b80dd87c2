"""What an asv run or comparison really said: a slowdown, a failure, or nothing measured.

asv's exit codes mix these up: `asv continuous` exits 1 on "PERFORMANCE DECREASED" and also
on "No environments selected" (a config whose `pythons` match no interpreter), on a -b
selection that matches no benchmark, and on any setup error; it exits 2 when a benchmark
failed. A gate that reports "slower" when it measured nothing teaches people to ignore it,
so the gate and the nightly job read asv's output and give each case its own verdict and
exit code: 0 pass, 1 regression, 2 failed benchmark, 3 measured nothing, 4 structure
changed (the census of an entry moved, unacknowledged: `tracking.structure`), 5 suspicious
(timed side by side, still undecided: `tracking.side_by_side`), 6 insufficient (nothing
slower, but an entry's measured floor on this machine is above the factor: `tracking.floors`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PASS, REGRESSION, FAILED, NOTHING = "pass", "regression", "failed", "nothing measured"
#: What one forward runs changed (the census), and nobody said it was meant to.
STRUCTURE = "structure changed"
#: Timed side by side, an entry's interval still held both "the same" and "slower by the
#: factor" after every process: neither a pass nor a regression (`side_by_side`).
SUSPICIOUS = "suspicious"
#: Nothing slower, but an entry whose floor here (the smallest slowdown the side-by-side rule
#: caught in 8 of 10 trials on this machine) is above the factor: it could not have seen it.
INSUFFICIENT = "insufficient"
EXIT_CODES = {PASS: 0, REGRESSION: 1, FAILED: 2, NOTHING: 3, STRUCTURE: 4, SUSPICIOUS: 5,
              INSUFFICIENT: 6}  # fmt: skip
#: The census benchmark (benchmarks/census.py): its number is a count, compared exactly by
#: `tracking.structure`, never a time that a factor judges.
CENSUS_BENCHMARK = ".track_census("


def is_census(name: str) -> bool:
    return CENSUS_BENCHMARK in name


#: asv messages after which nothing was measured, and what to do about each.
NOTHING_MEASURED = (
    ("No environments selected", "no asv environment matched: check `pythons` and `matrix` "
     "in asv.conf.json (or -E) against the interpreters on this machine"),
    ("No benchmarks selected", "no benchmark matched the -b selection"),
    ("No commit hashes selected", "no commit to measure in the given range"),
    ("No executable found", "asv found no python for the configured version"),
    ("Failed to build the project and import the benchmark suite",
     "the project did not build, or the benchmark suite did not import"),
    ("Failure creating environment", "an asv environment could not be created"),
    ("Unknown commit", "a commit or branch name is unknown to git"),
    ("Config file", "the asv config file was not found"),
    ("No information stored about machine", "this machine is unknown to asv: run "
     "`asv machine --yes` once (or pass --machine with a known name)"),
)  # fmt: skip

_FAILED_LINE = re.compile(r"···\s+(\S+)\s+(?:\d+/\d+\s+)?failed\s*$")
_SKIPPED_ENV = re.compile(r"Skipping (\S+)")
#: A row of asv's comparison table: change mark (blank when unchanged), ratio, benchmark.
_TABLE_ROW = re.compile(r"^\|\s*([-+!x*]?)\s*\|[^|]*\|[^|]*\|\s*([^|]*?)\s*\|\s*(.+?)\s*\|\s*$")


def compared_rows(output: str) -> list[tuple[str, float, str]]:
    """(mark, ratio, benchmark) of each row of an asv comparison with a number on both sides
    of the same benchmark version.

    asv pairs results by machine, environment name and benchmark; a benchmark measured on one
    side only has the ratio n/a, and one whose `version` changed is marked x (not
    comparable): neither compared anything. Census totals are left out: counts, compared
    exactly by `tracking.structure`, not times for a factor."""
    rows = []
    for line in output.splitlines():
        match = _TABLE_ROW.match(line)
        if match is None:
            continue
        mark, ratio, name = match.groups()
        if mark == "x" or is_census(name):
            continue
        try:
            rows.append((mark, float(ratio.lstrip("~")), name))
        except ValueError:  # n/a, or the header
            continue
    return rows


@dataclass(frozen=True)
class Verdict:
    kind: str
    message: str
    regressions: list[tuple[str, str]] = field(default_factory=list)  # (benchmark, ratio)
    failed: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.kind]

    @property
    def passed(self) -> bool:
        return self.kind == PASS


def slower_than_factor(slower: list[tuple[str, str]]) -> Verdict:
    """The regression verdict on asv's slower rows: (benchmark, ratio) each."""
    listed = "; ".join(f"{name} x{ratio}" for name, ratio in slower[:8])
    return Verdict(
        REGRESSION,
        f"PERFORMANCE DECREASED: {len(slower)} benchmark(s) slower than the factor: {listed}",
        regressions=slower,
    )


def _nothing_reason(output: str) -> str | None:
    for needle, reason in NOTHING_MEASURED:
        if needle in output:
            line = next(ln.strip() for ln in output.splitlines() if needle in ln)
            return f"{reason} (asv: {line.lstrip('·• ').strip()[:200]})"
    skipped = sorted(set(_SKIPPED_ENV.findall(output)))
    if skipped:
        return (f"the project did not build or install in {', '.join(skipped)}: every benchmark "
                "there was skipped")  # fmt: skip
    return None


def read_asv_output(returncode: int, output: str) -> Verdict:
    """The verdict of an `asv continuous` or `asv run` from its exit code and output."""
    reason = _nothing_reason(output)
    if reason is not None:
        return Verdict(NOTHING, f"measured nothing: {reason}")
    rows = [m.groups() for line in output.splitlines()
            if (m := _TABLE_ROW.match(line)) and m.group(1) in ("+", "!")]  # fmt: skip
    broke = [name for mark, _, name in rows if mark == "!"]
    failed = list(dict.fromkeys([*_FAILED_LINE.findall(output), *broke]))
    if returncode == 2 or failed:
        names = ", ".join(failed[:8]) or "see asv's output"
        return Verdict(FAILED, f"{len(failed) or 'a'} benchmark(s) FAILED: {names}", failed=failed)
    slower = [(name, ratio) for mark, ratio, name in rows if mark == "+" and not is_census(name)]
    # asv judges a census total by the factor too; the gate compares it exactly instead
    counted_only = not slower and any(mark == "+" for mark, _, _ in rows)
    if slower or ("PERFORMANCE DECREASED" in output and not counted_only):
        return slower_than_factor(slower)
    if returncode != 0 and not (returncode == 1 and counted_only):
        last = [ln.strip() for ln in output.splitlines() if ln.strip()][-1:] or ["no output"]
        return Verdict(NOTHING, f"measured nothing: asv exited {returncode} ({last[0][:200]})")
    return Verdict(PASS, "no benchmark slower than the factor")
