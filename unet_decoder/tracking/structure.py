"""Did what one forward runs change between base and head? The census, compared exactly.

Each benchmark process of `Census.track_census` files its entry's counts under
`.asv/census/<environment>/<commit>/` (`census.record.census_path`). Here the head's files
are paired with the base's by environment and entry, and every count that moved is named.
A census has no noise: the same build counts the same on the same machine, so any delta is
a real change of the program, however small its effect on the time. An intended one is
acknowledged (`--accept-census`), and still listed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..census.record import Census, census_delta, census_root
from ..errors import UNetDecoderError
from .stored import commit_of
from .verdict import PASS, REGRESSION, STRUCTURE, Verdict


@dataclass(frozen=True)
class StructureChange:
    entry: str  # "resnet34 best_compiled"
    environment: str
    delta: list[str]


@dataclass(frozen=True)
class StructureReport:
    changed: list[StructureChange] = field(default_factory=list)
    same: int = 0  # entries whose census is identical on both sides
    head_only: list[str] = field(default_factory=list)  # no census of the base to compare

    def markdown(self, *, accepted: bool) -> str:
        if not (self.changed or self.same or self.head_only):
            return ""
        said = " (acknowledged: --accept-census)" if accepted and self.changed else ""
        lines = [
            f"### Structure (census): {_entries(len(self.changed))} changed, "
            f"{self.same} unchanged{said}\n"
        ]
        for change in self.changed:
            lines.append(f"- `{change.entry}` [{change.environment}]: " + ", ".join(change.delta))
        lines += [f"- `{name}`: no census of the base to compare" for name in self.head_only]
        return "\n".join(lines) + "\n"


def _entries(n: int) -> str:
    return f"{n} entr{'y' if n == 1 else 'ies'}"


def _census_files(conf_dir: Path, commit: str) -> dict[tuple[str, str], Path]:
    """(environment, entry file name) -> file, for every census asv took of `commit`."""
    found = census_root(conf_dir).glob(f"*/{commit}/*.json")
    return {(path.parent.parent.name, path.name): path for path in found}


def _entry(file_name: str) -> str:
    return file_name.removesuffix(".json").replace("-", " ", 1)


def structure_report(conf_dir: str | Path, repo: str | Path, base: str,
                     head: str) -> StructureReport:  # fmt: skip
    """The census of every entry taken of `head`, against the base's where there is one."""
    full = {ref: commit_of(repo, ref) for ref in (base, head)}
    if None in full.values():
        return StructureReport()
    conf_dir = Path(conf_dir)
    before, after = (_census_files(conf_dir, full[ref]) for ref in (base, head))
    changed, same, head_only = [], 0, []
    for (environment, name), path in sorted(after.items()):
        entry = _entry(name)
        if (environment, name) not in before:
            head_only.append(f"{entry} [{environment}]")
            continue
        try:
            delta = census_delta(Census.read(before[environment, name]), Census.read(path))
        except UNetDecoderError as e:
            delta = [f"unreadable census: {e}"]
        if delta:
            changed.append(StructureChange(entry, environment, delta))
        else:
            same += 1
    return StructureReport(changed, same, head_only)


def with_structure(verdict: Verdict, report: StructureReport, *, accepted: bool) -> Verdict:
    """The gate's verdict once the census is read: a timing pass whose structure changed
    fails as STRUCTURE unless acknowledged; a regression stays one and says it too."""
    if not report.changed or verdict.kind not in (PASS, REGRESSION):
        return verdict
    first = report.changed[0]
    told = (
        f"structure changed in {_entries(len(report.changed))} ({first.entry} "
        f"[{first.environment}]: {', '.join(first.delta[:3])})"
    )
    if verdict.kind == REGRESSION:
        return Verdict(REGRESSION, f"{verdict.message}; {told}", verdict.regressions,
                       verdict.failed)  # fmt: skip
    if accepted:
        return Verdict(PASS, f"{verdict.message}; {told}, acknowledged")
    return Verdict(STRUCTURE, f"{told}: if the change is meant, acknowledge it with "
                   "--accept-census (the pull request's `census-change` label)")  # fmt: skip
