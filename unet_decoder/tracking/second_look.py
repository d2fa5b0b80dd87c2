"""A slowdown seen at first look is measured again before it fails anything.

On a shared machine one slow minute can push one side of one entry past the factor, and the
noise that matters is from process to process, not from sample to sample: on a 2-core VM one
process of an int8 entry ran all its 20 samples at 24.8-28.4 ms where the medians of the seven
processes around it, both sides running the very same package, were 14.1-19.0 ms. So the
entries asv flags at first look, and those slower there than a lower bar (`nomination_bar`:
two processes a side hide a real slowdown as easily as they fake one), are measured again in
`CONFIRM_ROUNDS` more interleaved rounds (`asv run -a rounds=1 --append-samples`, one process
per side and round), each process is one observation (the median of the samples it added),
and an entry stays slower only if the median of the head's processes is slower than the
median of the base's by the factor: one slow process on either side cannot decide it. An
entry whose three processes a side leave it close to the factor (`undecided`) is measured in
`EXTRA_ROUNDS` more, and judged on all its processes. The
samples also join the stored results, so the dashboard shows what the verdict saw. The
pull-request gate and the nightly job both look twice; `unet-decoder noise` measures both
looks the same way.
"""

from __future__ import annotations

import math
import re
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from .selections import exact_entries
from .stored import Stored
from .verdict import PASS, REGRESSION, Verdict, read_asv_output

#: Extra interleaved rounds (head, base | base, head | ...) for the entries flagged at first
#: look: three processes a side, so that a side's median is not one odd process.
CONFIRM_ROUNDS = 3
#: More rounds for the entries those leave `undecided`: seven processes a side.
EXTRA_ROUNDS = 4
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


def added_by_process(before: Sequence[float] | None, after: Sequence[float]) -> float:
    """What one `asv run -a rounds=1 --append-samples` process measured: the median of the
    samples it appended after the stored ones; for a benchmark that records no samples (asv
    then replaces the value), the value it stored."""
    kept = len(before or [])
    if kept and len(after) > kept and list(after[:kept]) == list(before):
        return statistics.median(after[kept:])
    return statistics.median(after)


def ratio_of_processes(base: Sequence[float], head: Sequence[float]) -> float:
    """The confirming rounds' verdict on one entry: median of the head's processes over the
    median of the base's (each process one value, `added_by_process`)."""
    base, head = statistics.median(base), statistics.median(head)
    if base == 0:
        return math.inf if head > 0 else 1.0
    return head / base


def nomination_bar(factor: float) -> float:
    """The first-look ratio above which an entry is measured again: half the factor's margin
    (1.05 at 1.10). asv's own rule, slower than the factor *and* significantly so over two
    processes a side, let 8 of 30 injected 20% slowdowns through on a 2-core VM (`unet-decoder
    noise`), all at the first look, which the confirming rounds then never saw: a process
    there can run 10-30% off its neighbours for its whole life, so two a side decide little.
    The confirming rounds judge every nominee, but each nominee is one more chance for their
    three processes a side to differ by the factor: a cold A/A gate failed on one (x1.12)."""
    return 1 + (factor - 1) / 2


def undecided_band(factor: float) -> tuple[float, float]:
    """The confirming ratios too close to the factor to decide on: above the nomination bar,
    up to twice the factor's margin (x1.05 to x1.20 at 1.10). On a 2-core VM a process can run
    5-10% off another of the same build for its whole life, so three a side moved an A/A entry
    to x1.12 once in 20 (a cold gate failed on it) and left injected 20% slowdowns at
    x1.03-1.07; seven a side narrow the spread of their medians' ratio (by sqrt(3/7) if the
    processes are independent), and cost time only where the verdict is close."""
    return nomination_bar(factor), 1 + 2 * (factor - 1)


def undecided(ratio: float, factor: float) -> bool:
    low, high = undecided_band(factor)
    return low < ratio <= high


def measured_next(ratios: Mapping[str, float], done: int, rounds: int,
                  factor: float) -> set[str]:  # fmt: skip
    """The entries the next confirming round measures, from each one's ratio after `done`
    rounds: every one for the first `rounds`, then for `EXTRA_ROUNDS` more the undecided."""
    if done < rounds:
        return set(ratios)
    if done < rounds + EXTRA_ROUNDS:
        return {name for name, ratio in ratios.items() if undecided(ratio, factor)}
    return set()


def rounds_described(rounds: int, factor: float) -> str:
    """How many rounds judged an entry, for a verdict's message."""
    low, high = undecided_band(factor)
    return (f"{rounds} more interleaved round(s) ({rounds + EXTRA_ROUNDS} where x{low:.2f}-"
            f"{high:.2f} after them), median of each side's processes")  # fmt: skip


def nominees(base: Mapping[str, Sequence[float]], head: Mapping[str, Sequence[float]],
             bar: float) -> list[tuple[str, str]]:  # fmt: skip
    """(entry, ratio) of the entries stored on both sides whose pooled median (asv's own
    value) is slower on the head by more than `bar`."""
    found = []
    for name in sorted(base.keys() & head.keys()):
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
        if not _matches(name, found):
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
    others = _without_selection(extra_args)
    log = [CONFIRM_HEADER]
    observed: dict[str, dict[str, list[float]]] = {}
    latest = dict(read or {})  # per commit, as its last call (or the first look) left it
    ratios: dict[str, float] = {}  # per entry, after the rounds so far
    active, done = set(at_first), 0
    while active:
        selection = exact_entries(_split(name)[0] for name in active)
        for commit in (head, base) if done % 2 == 0 else (base, head):
            before = latest[commit] if commit in latest else stored(commit)
            code, said = asv("run", "--append-samples", "--show-stderr", "-a", "rounds=1",
                             *others, "-b", selection, f"{commit}^!")  # fmt: skip
            log.append(said)
            measured = read_asv_output(code, said)
            if not measured.passed:  # a failure or nothing measured stays what it is
                return measured, log, ""
            side = "head" if commit == head else "base"
            latest[commit] = stored(commit)
            for name, samples in latest[commit].items():
                if _matches(name, active):
                    value = added_by_process(before.get(name), samples)
                    observed.setdefault(name, {"base": [], "head": []})[side].append(value)
        done += 1
        ratios = {name: ratio_of_processes(base_and_head["base"], base_and_head["head"])
                  for name, base_and_head in observed.items()
                  if base_and_head["base"] and base_and_head["head"]}  # fmt: skip
        active = measured_next(ratios, done, rounds, factor)
    still = []
    table = [TABLE_HEADER, "|-------|--------------------|--------------------|-----------|"]
    for name, ratio in sorted(ratios.items()):
        values = [", ".join(f"{v:.4g}" for v in observed[name][side]) for side in ("base", "head")]
        table.append(f"| {ratio:.2f} | {values[0]} | {values[1]} | {name} |")
        if ratio > factor:
            still.append((name, f"{ratio:.2f}"))
    table_text = "\n".join(table)
    log.append(table_text)
    judged = {_split(name)[0] for name in observed}
    # an entry left unjudged keeps its first-look verdict: slower than the factor stays
    # slower; a nominee below it was never a regression
    unread = [(n, r) for n, r in at_first.items()
              if _split(n)[0] not in judged and _ratio(r) > factor]  # fmt: skip
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


def _ratio(shown: str) -> float:
    """A ratio as asv's table or `nominees` shows it ("1.16", "~1.16"); unparsable: inf, so
    that an entry asv called slower stays slower."""
    try:
        return float(shown.lstrip("~"))
    except ValueError:
        return math.inf


_ENV_SUFFIX = re.compile(r"^(.*\))\s+\[([^\]]+)\]$")


def _split(name: str) -> tuple[str, str | None]:
    """(benchmark, machine/environment): asv adds ` [machine/env]` to a name when a comparison
    spans several environments."""
    match = _ENV_SUFFIX.match(name)
    return (match.group(1), match.group(2)) if match else (name, None)


def _matches(name: str, flagged: Iterable[str]) -> bool:
    """Whether a row of the later comparison is a flagged entry: same benchmark, and same
    environment where both rows name one (the later `asv compare` may name environments the
    first table did not)."""
    bare, env = _split(name)
    return any(bare == b and (env == e or None in (env, e)) for b, e in map(_split, flagged))


def _without_selection(args: list[str]) -> list[str]:
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
