"""Each stored series judged against its own history: a step, or a drift, and the night it began.

Comparing tonight with last night misses a slowdown that comes 2% a night: no single pair of
nights crosses the factor. Here the whole series of one benchmark (per machine and
environment, nights in commit order) is fitted three ways on the log of its values: flat; a
step (one level, then another, from night k); a drift (flat, then a steady slope from night
s). The best change model is kept when it explains the series far better than flat, against
what it leaves unexplained (an F statistic, `MIN_SCORE`), and when the level it ends at
differs from where it started by at least `min_change`.

Where the gate compares two commits in one job, this reads what the nightly has stored, so
a number is compared with the nights it belongs to (Bencher and conbench set each
benchmark's threshold from its own history, MongoDB finds change points in theirs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .stored import result_entries
from .verdict import is_census

#: Nights before a change needed to know the old level, and after it to believe the new one,
#: and the fewest nights judged at all (shorter series fit a change by chance too often).
MIN_BEFORE, MIN_AFTER, MIN_NIGHTS = 4, 2, 12
#: How much better than flat a change model must fit (an F statistic). Simulated flat series
#: with 5% noise reached it in 0.05% of series at 12 nights and in none at 20 or 30
#: (docs/measurements/changepoints-calibration.json, 2000 series each).
MIN_SCORE = 40.0
#: The smallest change of level reported (2%).
MIN_CHANGE = 1.02
#: The noise floor, relative: a series with no noise at all still needs a 0.2% change.
NOISE_FLOOR = 0.002


@dataclass(frozen=True)
class Change:
    start: int  # index of the first night of the new level, or of the drift
    shape: str  # "step" or "drift"
    ratio: float  # the fitted level at the newest night over the level before the change
    score: float  # improvement over flat (`MIN_SCORE`)


@dataclass(frozen=True)
class ChangePoint:
    entry: str  # name(params) [machine/environment]
    commit: str  # the night (commit) it began
    change: Change
    nights: int  # nights in the series

    def line(self) -> str:
        how = "stepped" if self.change.shape == "step" else "began drifting"
        return (f"{self.entry}: x{self.change.ratio:.3f} since {self.commit[:8]}, where it "
                f"{how} ({self.nights} nights stored)")  # fmt: skip


def _sse(values: Sequence[float]) -> float:
    if not values:
        return 0.0
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values)


def _hinge(y: Sequence[float], s: int) -> tuple[float, float, float]:
    """Least squares of y = a + b * max(0, t - s + 1): (sse, a, b)."""
    x = [max(0, t - s + 1) for t in range(len(y))]
    n, sx, sy = len(y), sum(x), sum(y)
    sxx, sxy = sum(v * v for v in x), sum(a * b for a, b in zip(x, y, strict=True))
    det = n * sxx - sx * sx
    if det == 0:
        return math.inf, 0.0, 0.0
    b = (n * sxy - sx * sy) / det
    a = (sy - b * sx) / n
    sse = sum((yi - a - b * xi) ** 2 for xi, yi in zip(x, y, strict=True))
    return sse, a, b


def find_change(values: Sequence[float], *, min_change: float = MIN_CHANGE) -> Change | None:
    """The change of level in a series of positive values (oldest first), if there is one."""
    if len(values) < max(MIN_NIGHTS, MIN_BEFORE + MIN_AFTER) or min(values) <= 0:
        return None
    y = [math.log(v) for v in values]
    flat = _sse(y)
    candidates: list[tuple[float, Change]] = []
    for k in range(MIN_BEFORE, len(y) - MIN_AFTER + 1):
        step = _sse(y[:k]) + _sse(y[k:])
        ratio = math.exp(sum(y[k:]) / len(y[k:]) - sum(y[:k]) / k)
        hinge, _, slope = _hinge(y, k)
        drift = math.exp(slope * (len(y) - k))
        candidates += [(step, Change(k, "step", ratio, 0.0)),
                       (hinge, Change(k, "drift", drift, 0.0))]  # fmt: skip
    sse, best = min(candidates, key=lambda c: c[0])
    # the improvement over flat against what the change model leaves unexplained (an F
    # statistic, 3 parameters: two levels or level and slope, and where)
    floor = len(y) * NOISE_FLOOR**2
    score = (flat - sse) / (max(sse, floor) / (len(y) - 3))
    best = Change(best.start, best.shape, best.ratio, score)
    if score < MIN_SCORE:
        return None
    if max(best.ratio, 1 / best.ratio) < min_change:
        return None
    return best


def _worse(name: str, ratio: float) -> bool:
    """A time or memory that grew; a track_ value that moved either way (accuracy falls, an
    error rises: the series alone cannot say which is worse)."""
    bare = name.split("(")[0]
    return ratio > 1 if bare.rsplit(".", 1)[-1].startswith(("time_", "peakmem_", "mem_")) else True


def stored_series(results_dir: Path, machine: str) -> dict[str, list[tuple[str, float]]]:
    """`name(params) [machine/env]` -> [(commit, value)] oldest first, from asv's results for
    `machine` (commit dates order the nights, as asv's own graphs do)."""
    from asv.results import iter_results_for_machine

    if not (Path(results_dir) / machine).is_dir():
        return {}
    nights: dict[str, list[tuple[int, str, float]]] = {}
    for result in iter_results_for_machine(str(results_dir), machine):
        where = f"{machine}/{result.env_name}"
        for name, (value, _, _) in result_entries(result).items():
            nights.setdefault(f"{name} [{where}]", []).append(
                (result.date or 0, result.commit_hash, float(value))
            )
    return {name: [(commit, value) for _, commit, value in sorted(rows)]
            for name, rows in nights.items()}  # fmt: skip


def change_points(results_dir: Path, machine: str, *,
                  min_change: float = MIN_CHANGE) -> list[ChangePoint]:  # fmt: skip
    """Every stored series of `machine` whose level changed for the worse, largest first.
    Census totals are left out: counts, compared exactly by the gate."""
    found = []
    for name, nights in stored_series(results_dir, machine).items():
        if is_census(name):
            continue
        change = find_change([value for _, value in nights], min_change=min_change)
        if change is not None and _worse(name, change.ratio):
            found.append(ChangePoint(name, nights[change.start][0], change, len(nights)))
    return sorted(found, key=lambda p: -abs(math.log(p.change.ratio)))
