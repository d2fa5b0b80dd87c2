"""A slowdown seen at first look is measured again before it fails anything.

The entries asv flags at first look, and those slower there than a lower bar
(`rounds.nomination_bar`: two processes a side hide a real slowdown as easily as they fake
one), are measured again in the confirming rounds (`rounds.confirm`: `asv run -a rounds=1
--append-samples`, one process per side and round), and judged by the median of each side's
processes. The samples also join the stored results, so the dashboard shows what the verdict
saw. The pull-request gate and the nightly job both look twice; `unet-decoder noise` measures
both looks the same way.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from .rounds import (
    added_by_process,
    confirm,
    nomination_bar,
    ratio_of_processes,
    rounds_described,
)
from .selections import exact_entries
from .stored import Stored
from .verdict import PASS, REGRESSION, Verdict, is_census, read_asv_output

CONFIRM_HEADER = "== unet-decoder: measuring the flagged benchmarks again =="
TABLE_HEADER = "| Ratio | Base, each process | Head, each process | Benchmark |"

#: Runs `asv <args>` (with the caller's config, machine, directory and environment) and
#: returns its exit code and output.
Asv = Callable[..., tuple[int, str]]


def asv_caller(config: str | Path, machine: str | None, cwd: str | Path | None,
               env: Mapping[str, str] | None) -> Asv:  # fmt: skip
    """`asv --config CONFIG <args> --machine MACHINE`, run in `cwd` with `env` (None: this
    process's), as the gate and the nightly call it every time."""

    def asv(*args: str) -> tuple[int, str]:
        command = [sys.executable, "-m", "asv", "--config", str(config), *args]
        if machine:
            command += ["--machine", machine]
        done = subprocess.run(command, cwd=cwd, env=None if env is None else dict(env),
                              capture_output=True, text=True)  # fmt: skip
        return done.returncode, done.stdout + done.stderr

    return asv


def nominees(base: Mapping[str, Sequence[float]], head: Mapping[str, Sequence[float]],
             bar: float) -> list[tuple[str, str]]:  # fmt: skip
    """(entry, ratio) of the entries stored on both sides whose pooled median (asv's own
    value) is slower on the head by more than `bar`. Census totals are counts, compared
    exactly elsewhere (`structure`), not times to measure again."""
    found = []
    for name in sorted(n for n in base.keys() & head.keys() if not is_census(n)):
        ratio = ratio_of_processes(base[name], head[name])
        if ratio > bar:
            found.append((name, f"{ratio:.2f}"))
    return found


def measured_between(before: Mapping[str, Sequence[float]],
                     after: Mapping[str, Sequence[float]]) -> dict[str, list[float]]:  # fmt: skip
    """The stored entries a run wrote or rewrote: the first look's own measurements, not what
    earlier runs left for other environments or selections."""
    return {name: list(v) for name, v in after.items() if list(before.get(name) or []) != list(v)}


def to_look_again(
    flagged: list[tuple[str, str]],
    base: Mapping[str, Sequence[float]],
    head: Mapping[str, Sequence[float]],
    factor: float,
) -> list[tuple[str, str]]:
    """The entries the second look measures: asv's flagged ones, then the nominees among the
    first look's stored results (`base`, `head`) that asv did not flag (asv prints only the
    rows it calls changed)."""
    found = dict(flagged)
    for name, ratio in nominees(base, head, nomination_bar(factor)):
        if not entry_matches(name, found):
            found[name] = ratio
    return list(found.items())


def second_look(
    asv: Asv,
    stored: Stored,
    base: str,
    head: str,
    flagged: list[tuple[str, str]],
    *,
    rounds: int,
    factor: float,
    extra_args: list[str],
    read: Mapping[str, dict[str, list[float]]] | None = None,
) -> tuple[Verdict, list[str], str]:
    """The verdict on the (benchmark, ratio) entries flagged or nominated at first look after
    `rounds` more interleaved rounds, what asv said, and the table of each entry's processes
    (empty when a confirming run failed or measured nothing). `extra_args` are the first look's;
    its -b selection and rounds are replaced (each call measures only those entries, one
    round).
    `stored` reads asv's results, so that each process is one observation; `read` is what it
    returned for a commit just before (the caller's own read), not read again."""
    at_first = dict(flagged)
    others = without_selection(extra_args)
    log = [CONFIRM_HEADER]
    latest = dict(read or {})  # per commit, as its last call (or the first look) left it
    commits = {"head": head, "base": base}

    def measure(side: str, active: set[str]) -> dict[str, float]:
        commit = commits[side]
        before = latest[commit] if commit in latest else stored(commit)
        selection = exact_entries(split_entry(name)[0] for name in active)
        code, said = asv("run", "--append-samples", "--show-stderr", "-a", "rounds=1",
                         *others, "-b", selection, f"{commit}^!")  # fmt: skip
        log.append(said)
        measured = read_asv_output(code, said)
        if not measured.passed:  # a failure or nothing measured stays what it is
            raise _Stopped(measured)
        latest[commit] = stored(commit)
        found = latest[commit].items()
        return {name: added_by_process(before.get(name), samples)
                for name, samples in found if entry_matches(name, active)}  # fmt: skip

    def order(done: int) -> tuple[str, str]:  # asv continuous's: head first, then alternate
        return ("head", "base") if done % 2 == 0 else ("base", "head")

    try:
        observed, ratios = confirm({"head": set(at_first)}, measure, order, rounds=rounds,
                                   factor=factor)  # fmt: skip
    except _Stopped as stopped:
        return stopped.verdict, log, ""
    ratios = ratios["head"]
    still = []
    table = [TABLE_HEADER, "|-------|--------------------|--------------------|-----------|"]
    for name, ratio in sorted(ratios.items()):
        values = [", ".join(f"{v:.4g}" for v in observed[side][name]) for side in ("base", "head")]
        table.append(f"| {ratio:.2f} | {values[0]} | {values[1]} | {name} |")
        if ratio > factor:
            still.append((name, f"{ratio:.2f}"))
    table_text = "\n".join(table)
    log.append(table_text)
    judged = {split_entry(name)[0] for name in ratios}
    # an entry left unjudged keeps its first-look verdict: slower than the factor stays
    # slower; a nominee below it was never a regression
    unread = [(n, r) for n, r in at_first.items()
              if split_entry(n)[0] not in judged and _ratio(r) > factor]  # fmt: skip
    more = rounds_described(rounds, factor)
    if still or unread:
        listed = "; ".join(f"{name} x{ratio}" for name, ratio in [*still, *unread][:8])
        message = (f"PERFORMANCE DECREASED: {len(still) + len(unread)} benchmark(s) slower "
                   f"than the factor, confirmed by {more}: {listed}")  # fmt: skip
        if unread:
            message += f" ({len(unread)} kept from the first look: no stored samples to read)"
        return Verdict(REGRESSION, message, regressions=[*still, *unread]), log, table_text
    listed = "; ".join(f"{name} x{ratio}" for name, ratio in at_first.items())
    bar = nomination_bar(factor)
    message = (f"no benchmark slower than the factor after {more} (slower than x{bar:.2f} "
               f"at first look, not confirmed: {listed})")  # fmt: skip
    return Verdict(PASS, message), log, table_text


class _Stopped(Exception):
    """A confirming run failed or measured nothing: its verdict is the second look's."""

    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict


def _ratio(shown: str) -> float:
    """A ratio as asv's table or `nominees` shows it ("1.16", "~1.16"); unparsable: inf, so
    that an entry asv called slower stays slower."""
    try:
        return float(shown.lstrip("~"))
    except ValueError:
        return math.inf


_ENV_SUFFIX = re.compile(r"^(.*\))\s+\[([^\]]+)\]$")


def split_entry(name: str) -> tuple[str, str | None]:
    """(benchmark, machine/environment): asv adds ` [machine/env]` to a name when a comparison
    spans several environments."""
    match = _ENV_SUFFIX.match(name)
    return (match.group(1), match.group(2)) if match else (name, None)


def entry_matches(name: str, flagged: Iterable[str]) -> bool:
    """Whether a row of the later comparison is a flagged entry: same benchmark, and same
    environment where both rows name one (the later `asv compare` may name environments the
    first table did not)."""
    bare, env = split_entry(name)
    return any(bare == b and (env == e or None in (env, e)) for b, e in map(split_entry, flagged))


def without_selection(args: list[str]) -> list[str]:
    """`args` less its -b selections and rounds attribute: each confirming call sets its own."""
    kept, i = [], 0
    while i < len(args):
        value = args[i + 1] if i + 1 < len(args) else ""
        if args[i] in ("-b", "--bench") or (
            args[i] in ("-a", "--attribute") and value.startswith("rounds=")
        ):
            i += 2
            continue
        if not args[i].startswith(("--bench=", "--attribute=rounds=")):
            kept.append(args[i])
        i += 1
    return kept
