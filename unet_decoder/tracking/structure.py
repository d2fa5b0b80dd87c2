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


@dataclass(frozen=True)
class CensusPair:
    """One entry's census of the head, in one environment, with the base's where asv took
    one; each file read once, for the structure report and the side-by-side pairs."""

    environment: str
    entry: str  # "resnet34 best_compiled"
    head: Census | None
    base: Census | None
    unreadable: str | None = None  # why a file of the two did not read


def census_pairs(conf_dir: str | Path, repo: str | Path, base: str,
                 head: str) -> list[CensusPair]:  # fmt: skip
    """Every census asv filed for `head`, beside the base's of the same environment and entry."""
    full = {ref: commit_of(repo, ref) for ref in (base, head)}
    if None in full.values():
        return []
    root = census_root(conf_dir)
    found = []
    for path in sorted(root.glob(f"*/{full[head]}/*.json")):
        environment = path.parent.parent.name
        before = root / environment / full[base] / path.name
        entry = path.name.removesuffix(".json").replace("-", " ", 1)  # census_path's name
        try:
            censuses = [Census.read(path), Census.read(before) if before.is_file() else None]
        except UNetDecoderError as e:
            found.append(CensusPair(environment, entry, None, None, str(e)))
            continue
        found.append(CensusPair(environment, entry, *censuses))
    return found


def structure_report(pairs: list[CensusPair]) -> StructureReport:
    """The census of every entry taken of the head, against the base's where there is one."""
    changed, same, head_only = [], 0, []
    for pair in pairs:
        if pair.unreadable is not None:
            delta = [f"unreadable census: {pair.unreadable}"]
        elif pair.base is None:
            head_only.append(f"{pair.entry} [{pair.environment}]")
            continue
        else:
            delta = census_delta(pair.base, pair.head)
        if delta:
            changed.append(StructureChange(pair.entry, pair.environment, delta))
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
