"""Per entry and machine, the smallest slowdown the gate's side-by-side rule sees here.

One factor for every entry hides that they differ: on a 2-core VM the paired rule saw 5% on
an efficientnet_b0 AOTInductor package in 8 of 10 trials, and eager resnet34 needed 10%. A
gate that passes an entry whose noise could not have shown the factor has said nothing about
it, and must say so. `measure_floors` runs the rule itself (`side_by_side.timed_verdict`) on
each paired entry of one commit against itself: A/A trials and trials with the head slowed
by each injected fraction (a spin after every call), interleaved. An entry's floor is the
smallest fraction caught as slower in at least `CAUGHT_SHARE` of its trials, with every
larger fraction caught as well and no A/A trial slower; none where no fraction is.

The record (`.asv/floors.json` beside the asv config) names the machine it was measured on
(CPU model, cores, ISA flags), and each entry with its asv environment: the gate uses it
only on that machine (`for_this_machine`). There, an entry that the pairing did not find
slower but whose floor is above the gate's factor, or that has no floor, is "insufficient"
(`with_floors`): the gate names it with its floor instead of passing.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UNetDecoderError
from ..files import write_atomically
from .side_by_side import CLEARED, SLOWER, ArtifactPair, EagerPair, PairedVerdict
from .verdict import INSUFFICIENT, PASS, Verdict

FORMAT = "unet-decoder floors 1"
#: The slowdowns a floor is looked for at: the sizes a user of a performance gate asks about.
INJECTIONS = (0.05, 0.10, 0.20)
#: Caught in 8 of 10 trials: the issue's bar for an entry that sees a slowdown.
CAUGHT_SHARE = 0.8
AA = "0.00"


def default_path(conf_dir: str | Path) -> Path:
    return Path(conf_dir) / ".asv" / "floors.json"


def this_machine() -> dict[str, object]:
    """What a floor depends on and the gate checks: the same CPU, cores and ISA."""
    from ..machine import cpu_flags, cpu_name

    return {"cpu": cpu_name(), "cores": os.cpu_count(), "cpu_flags": cpu_flags()}


def key(entry: str, environment: str) -> str:
    return f"{entry} [{environment}]"


def floor_of(kinds: Mapping[str, Sequence[str]], share: float = CAUGHT_SHARE) -> float | None:
    """The smallest injected fraction (key "0.05") whose trials were `SLOWER` in at least
    `share` of them, every larger fraction too; None where an A/A trial ("0.00") was slower,
    there is none, or no fraction is caught so."""
    aa = kinds.get(AA, ())
    if not aa or SLOWER in aa:
        return None
    caught = {float(f): bool(rows) and sum(k == SLOWER for k in rows) >= share * len(rows)
              for f, rows in kinds.items() if float(f) > 0}  # fmt: skip
    floor = None
    for fraction in sorted(caught, reverse=True):  # from the largest down, while caught
        if not caught[fraction]:
            break
        floor = fraction
    return floor


@dataclass
class Floors:
    """A floors record: the machine, and per entry (`key`) its trials and floor."""

    machine: dict[str, object]
    entries: dict[str, dict] = field(default_factory=dict)
    path: Path | None = None
    provenance: dict = field(default_factory=dict)  # the command that measured it last

    @classmethod
    def read(cls, path: str | Path) -> Floors:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            told = f"floors record {path} cannot be read ({e}): measure it again "
            raise UNetDecoderError(told + "(unet-decoder floors) or remove it.") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise UNetDecoderError(f"{path} is not a floors record ({FORMAT!r}): give the file "
                                   "`unet-decoder floors` wrote.")  # fmt: skip
        return cls(data.get("machine", {}), data.get("entries", {}), path,
                   data.get("provenance", {}))  # fmt: skip

    def write(self, path: str | Path) -> None:
        data = {"format": FORMAT, "provenance": self.provenance, "machine": self.machine,
                "caught_share": CAUGHT_SHARE, "entries": self.entries}  # fmt: skip
        write_atomically(path, (json.dumps(data, indent=1) + "\n").encode())
        self.path = Path(path)

    def floor(self, entry: str, environment: str) -> tuple[bool, float | None]:
        """(measured at all, its floor)."""
        found = self.entries.get(key(entry, environment))
        return (found is not None, None if found is None else found.get("floor"))

    def add_trial(self, name: str, fraction: float, verdict: PairedVerdict, seconds: float):
        entry = self.entries.setdefault(name, {"trials": {}, "floor": None})
        entry["trials"].setdefault(f"{fraction:.2f}", []).append(
            {"kind": verdict.kind, "ratio": verdict.ratio, "interval": list(verdict.interval),
             "processes": verdict.processes, "seconds": round(seconds, 1)}
        )  # fmt: skip
        kinds = {f: [t["kind"] for t in rows] for f, rows in entry["trials"].items()}
        entry["floor"] = floor_of(kinds)


def for_this_machine(path: Path) -> tuple[Floors | None, str]:
    """The record at `path` if it was measured on this machine, and a line saying which."""
    if not path.is_file():
        return None, f"no floors record ({path}): each entry's floor here is unmeasured"
    floors = Floors.read(path)
    here = this_machine()
    if floors.machine != here:
        there = f"{floors.machine.get('cpu')} with {floors.machine.get('cores')} cores"
        return None, (
            f"floors record {path} is for {there}, not this {here['cpu']} with "
            f"{here['cores']}: not used (unet-decoder floors measures this one)"
        )
    return floors, f"floors record {path}, this machine's"


def blind_spots(judged: Iterable[PairedVerdict], floors: Floors,
                factor: float) -> list[tuple[PairedVerdict, float | None]]:  # fmt: skip
    """The pairs judged not slower whose measured floor is above the factor's slowdown (or
    that were measured and caught nothing): (verdict, floor) each."""
    blind = []
    for verdict in judged:
        if verdict.kind != CLEARED:
            continue  # slower and suspicious already fail; the same program cannot be slower
        measured, floor = floors.floor(verdict.pair.entry, verdict.pair.environment)
        if measured and (floor is None or floor > factor - 1 + 1e-9):
            blind.append((verdict, floor))
    return blind


def _said(floor: float | None) -> str:
    return f"floor {floor:.0%}" if floor is not None else f"no floor up to {max(INJECTIONS):.0%}"


def with_floors(verdict: Verdict, judged: list[PairedVerdict], floors: Floors | None,
                factor: float) -> Verdict:  # fmt: skip
    """A passing gate with entries that could not have seen the factor here is insufficient,
    not a pass; any other verdict stands (its report lists the floors)."""
    if floors is None or verdict.kind != PASS:
        return verdict
    blind = blind_spots(judged, floors, factor)
    if not blind:
        return verdict
    listed = "; ".join(f"{v.pair.entry} [{v.pair.environment}] ({_said(f)})" for v, f in blind)
    return Verdict(INSUFFICIENT, f"{verdict.message}; but {len(blind)} entr"
                   f"{'y' if len(blind) == 1 else 'ies'} cannot see x{factor:.2f} on this "
                   f"machine: {listed}; a slowdown under its floor passes them unseen: judge "
                   "them on a quieter machine or with a --factor above their floor")  # fmt: skip


def floor_lines(judged: list[PairedVerdict], floors: Floors | None) -> list[str]:
    """Per paired entry, its floor here, for the report."""
    if floors is None:
        return []
    lines = []
    for v in judged:
        measured, floor = floors.floor(v.pair.entry, v.pair.environment)
        told = _said(floor) if measured else "floor not measured"
        lines.append(f"{v.pair.entry} [{v.pair.environment}]: {told}")
    return lines


def pairs_of(conf_dir: str | Path, repo: str | Path, commit: str,
             entries: str | None = None) -> list[ArtifactPair | EagerPair]:  # fmt: skip
    """The entries the gate would pair for `commit`, from the censuses asv filed for it; with
    `entries`, only those whose key ("resnet34 none [environment]") matches that regex."""
    import re

    from .side_by_side import artifact_pairs, eager_pairs
    from .structure import census_pairs

    censuses = census_pairs(conf_dir, repo, commit, commit)
    pairs = [*artifact_pairs(censuses), *eager_pairs(censuses, repo, commit, commit)]
    try:
        wanted = re.compile(entries or "")
    except re.error as e:
        raise UNetDecoderError(f"--entries {entries!r} is not a regular expression ({e})") from None
    return [p for p in pairs if wanted.search(key(p.entry, p.environment))]


def a_a_pair(pair: ArtifactPair | EagerPair, scratch: Path) -> ArtifactPair | EagerPair:
    """`pair`'s head against a second copy of itself: the folder copied for an artifact (two
    files loaded, as a gate loads two), the commit against itself for an eager entry."""
    if isinstance(pair, EagerPair):
        return EagerPair(pair.entry, pair.environment, pair.repo, pair.head, pair.head,
                         pair.python)  # fmt: skip
    copy = scratch / key(pair.entry, pair.environment).replace(" ", "_").replace("/", "_")
    if not copy.exists():
        shutil.copytree(pair.head, copy)
    return ArtifactPair(pair.entry, pair.environment, pair.head, copy, pair.python)


def measure_floors(
    pairs: Sequence[ArtifactPair | EagerPair],
    path: Path,
    *,
    trials: int = 10,
    injections: Sequence[float] = INJECTIONS,
    progress: Callable[[str], None] = lambda line: None,
    timed: Callable[..., PairedVerdict] | None = None,
    provenance: dict | None = None,
) -> Floors:
    """Each pair's head against itself, by the gate's rule, `trials` times at 0 and at each
    injected fraction, interleaved; the record at `path` is rewritten after every trial (a
    stopped run keeps what it finished). An existing record of this machine is added to."""
    from .side_by_side import timed_verdict

    if trials < 1 or not injections or not all(0 < f < 10 for f in injections):
        raise UNetDecoderError(f"--trials must be at least 1 and --inject fractions above 0 "
                               f"(0.05 is 5%), got {trials} and {list(injections)}")  # fmt: skip
    if not pairs:
        raise UNetDecoderError("no entry to measure: none of this commit's censuses names an "
                               "artifact or an eager entry; run asv on it first (unet-decoder "
                               "gate, or asv run) so that its entries are built")  # fmt: skip
    here = this_machine()
    floors = Floors.read(path) if path.is_file() else Floors(here)
    if floors.machine != here:
        raise UNetDecoderError(f"{path} holds another machine's floors ({floors.machine.get('cpu')}"
                               "): give a new --record path")  # fmt: skip
    timed = timed or timed_verdict
    floors.provenance = provenance or {}
    with tempfile.TemporaryDirectory(prefix="unet-decoder-floors-") as tmp:
        same = [a_a_pair(pair, Path(tmp)) for pair in pairs]
        for trial in range(trials):
            for pair in same:
                for fraction in (0.0, *injections):
                    start = time.time()
                    found = timed(pair, inject_b=fraction)
                    name = key(pair.entry, pair.environment)
                    floors.add_trial(name, fraction, found, time.time() - start)
                    progress(f"trial {trial + 1}/{trials}, injected {fraction:.0%}: {found.line()}")
            floors.write(path)
    return floors


def format_floors(floors: Floors) -> str:
    """One row per entry: each fraction's slower trials of all, then the floor."""
    fractions = sorted({f for e in floors.entries.values() for f in e["trials"]}, key=float)
    header = "entry".ljust(48) + "".join(f"{float(f):>8.0%}" for f in fractions) + "   floor"
    rows = [header]
    for name, entry in sorted(floors.entries.items()):
        cells = []
        for f in fractions:
            kinds = [t["kind"] for t in entry["trials"].get(f, [])]
            cells.append(f"{sum(k == SLOWER for k in kinds)}/{len(kinds)}".rjust(8))
        rows.append(name.ljust(48) + "".join(cells) + f"   {_said(entry.get('floor'))}")
    return "\n".join(rows + ["(slower trials of all; 0% is A/A: any slower there is a false "
                             "positive, and the entry has no floor)"])  # fmt: skip
