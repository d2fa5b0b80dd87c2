"""The confirming rounds, in one place: which entries are measured again, for how many
rounds, and the ratio that judges them. The gate's and the nightly's second look and
`unet-decoder noise` all run `confirm`.

On a shared machine the noise that matters is from process to process, not from sample to
sample: on a 2-core VM one process of an int8 entry ran all its 20 samples at 24.8-28.4 ms
where the medians of the seven processes around it, both sides running the very same
package, were 14.1-19.0 ms. So each confirming process is one observation (the median of the
samples it added), and an entry stays slower only if the median of the head's processes is
slower than the median of the base's by the factor: one slow process on either side cannot
decide it. An entry that `CONFIRM_ROUNDS` leave close to the factor (`undecided`) is measured
in `EXTRA_ROUNDS` more, and judged on all its processes.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence

#: Extra interleaved rounds (head, base | base, head | ...) for the entries flagged at first
#: look: three processes a side, so that a side's median is not one odd process.
CONFIRM_ROUNDS = 3
#: More rounds for the entries those leave `undecided`: seven processes a side.
EXTRA_ROUNDS = 4
BASE = "base"


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
    Each nominee is one more chance for their three processes a side to differ by the factor:
    a cold A/A gate failed on one (x1.12)."""
    return 1 + (factor - 1) / 2


def undecided_band(factor: float) -> tuple[float, float]:
    """The confirming ratios too close to the factor to decide on: above the nomination bar,
    up to twice the factor's margin (x1.05 to x1.20 at 1.10). Three processes a side moved an
    A/A entry to x1.12 once in 20 and left injected 20% slowdowns at x1.03-1.07; seven a side
    narrow the spread of their medians' ratio (by sqrt(3/7) if the processes are independent),
    and cost time only where the verdict is close."""
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


def next_round(ratios: Mapping[str, Mapping[str, float]], done: int, rounds: int,
               factor: float) -> dict[str, set[str]]:  # fmt: skip
    """Per side other than base, what the next round measures (`measured_next`, each side
    judged against base); base measures their union."""
    active = {side: measured_next(r, done, rounds, factor) for side, r in ratios.items()}
    active[BASE] = set().union(*active.values())
    return active


def rounds_described(rounds: int, factor: float) -> str:
    """How many rounds judged an entry, for a verdict's message."""
    low, high = undecided_band(factor)
    return (f"{rounds} more interleaved round(s) ({rounds + EXTRA_ROUNDS} where x{low:.2f}-"
            f"{high:.2f} after them), median of each side's processes")  # fmt: skip


#: Values per side, per entry: one per confirming process.
Processes = dict[str, dict[str, list[float]]]


def confirm(
    flagged: Mapping[str, Iterable[str]],
    measure: Callable[[str, set[str]], Mapping[str, float]],
    order: Callable[[int], Sequence[str]],
    *,
    rounds: int,
    factor: float,
) -> tuple[Processes, dict[str, dict[str, float]]]:
    """Measure the `flagged` entries of each side (other than base) again, with base, in
    interleaved rounds until `next_round` leaves nothing to measure.

    `measure(side, entries)` runs one process of that side over those entries and returns
    the one value it measured per entry (`added_by_process`); `order(done)` is the order of
    the sides in round `done` (0-based). Returns each side's values per entry, and each side's
    ratio against base per entry (`ratio_of_processes`) after the last round."""
    values: Processes = {side: {} for side in (BASE, *flagged)}
    active = {side: set(names) for side, names in flagged.items()}
    active[BASE] = set().union(*active.values())
    ratios: dict[str, dict[str, float]] = {side: {} for side in flagged}
    done = 0
    while active[BASE]:
        for side in order(done):
            if active.get(side):
                for name, value in measure(side, active[side]).items():
                    values[side].setdefault(name, []).append(value)
        done += 1
        ratios = {side: {name: ratio_of_processes(values[BASE][name], mine)
                         for name, mine in values[side].items() if name in values[BASE]}
                  for side in flagged}  # fmt: skip
        active = next_round(ratios, done, rounds, factor)
    return values, ratios
