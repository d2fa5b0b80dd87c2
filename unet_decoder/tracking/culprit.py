"""The first slow commit of a night that spans several.

asv measures every new commit of a night (`NEW`: one build and one run each), but the
comparison and the confirming rounds judge only the span's two ends. Each regression they
keep is bisected over the span's first-parent commits: a commit is slow for that entry when
its stored value has gone at least halfway, on the log scale, from the base's to the
newest's. A commit with nothing stored (a night run with `--commits HEAD^!`) is measured
then, that entry alone, so a night of n commits costs at most ceil(log2 n) runs more.

A process's own level on these VMs moves an entry by 5-10%, more than halfway to a 10%
factor, so the commit bisection lands on is only a candidate: it is measured against its
parent in the confirming rounds (`second_look`) and named the first slow commit only if it
is slower there by at least half the night's factor. Otherwise the report says the slowdown
could not be pinned on one commit (spread over several, or noise at one step) and shows the
commits it judged. asv's own `find` bisects the same way but judges each midpoint on one
process and never confirms.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .results_branch import git
from .rounds import nomination_bar
from .second_look import Asv, entry_matches, second_look, split_entry, without_selection
from .selections import exact_entries
from .stored import Stored
from .verdict import REGRESSION, read_asv_output


@dataclass(frozen=True)
class Step:
    """One commit bisection looked at: its value for the entry, and the side it was put on."""

    commit: str
    value: float | None  # None: nothing stored, and measuring it failed
    slow: bool


@dataclass
class Culprit:
    """What bisecting one kept regression found."""

    entry: str
    commit: str | None  # the first slow commit; None: not pinned on one commit
    why: str  # one line: the confirming ratio over its parent, or why it is not pinned
    steps: list[Step] = field(default_factory=list)
    subject: str = ""
    stored_ratio: str = ""  # the commit over its parent, as bisection read them

    def line(self) -> str:
        judged = ", ".join(f"{s.commit[:8]} {_shown(s.value)} {'slow' if s.slow else 'fast'}"
                           for s in self.steps)  # fmt: skip
        where = f" (judged: {judged})" if judged else ""
        if self.commit is None:
            return f"{self.entry}: not pinned on one commit: {self.why}{where}"
        return (f"{self.entry}: first slow commit {self.commit[:8]} {self.subject!r}: "
                f"{self.why}{where}")  # fmt: skip


def first_parent_span(repo: str | Path, base: str, newest: str) -> list[str]:
    """The commits after base up to newest, oldest first, along the first parents: the
    merges that landed on the branch, not the commits inside each merged branch."""
    listed = git(repo, "rev-list", "--first-parent", "--reverse", f"{base}..{newest}")
    return listed.stdout.split()


def value_of(entries: Mapping[str, Sequence[float]], entry: str) -> float | None:
    """The median of every stored sample of `entry` (in its environment where it names one)."""
    samples = [v for name, values in entries.items() if entry_matches(name, [entry])
               for v in values]  # fmt: skip
    return statistics.median(samples) if samples else None


def bisect(span: Sequence[str], base_value: float, newest_value: float,
           value_at: Callable[[str], float | None]) -> tuple[int | None, list[Step]]:  # fmt: skip
    """The index in `span` of the first slow commit, assuming one step (its last commit is
    slow: it is the night's newest), and the commits judged; None where one could not be
    measured."""
    halfway = math.sqrt(base_value * newest_value)
    fast, slow, steps = -1, len(span) - 1, []
    while slow - fast > 1:
        middle = (fast + slow) // 2
        value = value_at(span[middle])
        is_slow = value is not None and value >= halfway
        steps.append(Step(span[middle], value, is_slow))
        if value is None:
            return None, steps
        fast, slow = (fast, middle) if is_slow else (middle, slow)
    return slow, steps


def find_culprits(
    asv: Asv,
    stored: Stored,
    repo: str | Path,
    base: str,
    newest: str,
    regressions: Sequence[tuple[str, str]],
    *,
    rounds: int,
    factor: float,
    extra_args: list[str],
) -> list[Culprit]:
    """For each kept (entry, ratio) regression of base..newest, its first slow commit; none
    when the span is one commit (newest is then the culprit, already confirmed)."""
    span = first_parent_span(repo, base, newest)
    if len(span) < 2:
        return []
    others = without_selection(extra_args)
    read: dict[str, dict[str, list[float]]] = {}

    def entries(commit: str) -> dict[str, list[float]]:
        if commit not in read:
            read[commit] = stored(commit)
        return read[commit]

    def measured(entry: str) -> Callable[[str], float | None]:
        def value_at(commit: str) -> float | None:
            found = value_of(entries(commit), entry)
            if found is None:  # not measured yet: this entry alone, as asv's first look would
                selection = exact_entries([split_entry(entry)[0]])
                code, said = asv("run", "--record-samples", *others, "-b", selection,
                                 f"{commit}^!")  # fmt: skip
                if read_asv_output(code, said).passed:
                    read[commit] = stored(commit)
                    found = value_of(read[commit], entry)
            return found

        return value_at

    culprits, candidates = [], {}
    for entry, _ in regressions:
        base_value, newest_value = value_of(entries(base), entry), value_of(entries(newest), entry)
        if base_value is None or newest_value is None or newest_value <= base_value:
            culprits.append(Culprit(entry, None, "no stored value on both ends to bisect"))
            continue
        index, steps = bisect(span, base_value, newest_value, measured(entry))
        if index is None:
            culprits.append(Culprit(entry, None, f"{steps[-1].commit[:8]} measured nothing",
                                    steps))  # fmt: skip
            continue
        step = (span[index - 1] if index else base, span[index])  # (parent, candidate)
        ratio = value_of(entries(step[1]), entry) / value_of(entries(step[0]), entry)
        culprit = Culprit(entry, step[1], "", steps, stored_ratio=f"{ratio:.2f}")
        candidates.setdefault(step, []).append(culprit)
    for (parent, commit), found in sorted(candidates.items(),
                                          key=lambda kv: span.index(kv[0][1])):  # fmt: skip
        culprits += _confirmed(asv, stored, repo, parent, commit, found, rounds=rounds,
                               factor=factor, extra_args=extra_args, read=read)  # fmt: skip
    return culprits


def _confirmed(asv: Asv, stored: Stored, repo: str | Path, parent: str, commit: str,
               found: list[Culprit], *, rounds: int, factor: float, extra_args: list[str],
               read: dict[str, dict[str, list[float]]]) -> list[Culprit]:  # fmt: skip
    """The candidates of one commit, each named the culprit only if it is slower than the
    commit's parent by half the night's factor after the confirming rounds."""
    subject = git(repo, "log", "-1", "--format=%s", commit).stdout.strip()
    for culprit in found:
        culprit.subject = subject
    if rounds == 0:  # the night looks only once: so does the bisection
        for culprit in found:
            culprit.why = "bisected on stored values, not measured again (--confirm-rounds 0)"
        return found
    step_factor = nomination_bar(factor)
    flagged = [(c.entry, c.stored_ratio) for c in found]
    verdict, _, _ = second_look(asv, stored, parent, commit, flagged, rounds=rounds,
                                factor=step_factor, extra_args=extra_args,
                                read=read)  # fmt: skip
    for measured_again in (parent, commit):  # it appended samples: read them afresh next time
        read.pop(measured_again, None)
    kept = dict(verdict.regressions) if verdict.kind == REGRESSION else {}
    for culprit in found:
        ratio = next((r for name, r in kept.items() if entry_matches(name, [culprit.entry])), None)
        if ratio is not None:
            culprit.why = (f"x{ratio} over its parent {parent[:8]} in {rounds} confirming "
                           f"round(s) (at least x{step_factor:.3g})")  # fmt: skip
        else:
            culprit.commit = None
            culprit.why = (
                f"{commit[:8]} was not slower than its parent {parent[:8]} by "
                f"x{step_factor:.3g} when measured again ({verdict.message[:160]})"
            )
    return found


def _shown(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"
