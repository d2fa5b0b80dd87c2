"""Named subsets of the one fixed asv grid, as asv `-b` regexes over `name(params)`.

The grid never changes to make a run smaller; a job picks entries by name instead, so every
result lands in the same series whatever selected it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..errors import UNetDecoderError

SELECTIONS: dict[str, str] = {
    # the PR gate: two encoders x plain, best compiled and best int8 steady-state time, and
    # the census of each (what it runs, compared exactly)
    "pr": r"(time_forward|track_census)\('(resnet34|efficientnet_b0)', "
    r"'(none|best_compiled|best_int8)'\)",
    # the cheapest entries (timm's tiny test_resnet): a quick check that everything runs
    "smoke": r"\('test_resnet'",
    # every time_ benchmark of the grid, scaling rows included
    "time": r"^forward\.",
    # everything (the nightly job)
    "all": r".",
}


def exact_entries(names: Iterable[str]) -> str:
    """An asv -b regex that selects exactly these `name(params)` entries, nothing else."""
    return "|".join(f"^{re.escape(name)}$" for name in sorted(set(names)))


def selection_regex(name: str) -> str:
    if name not in SELECTIONS:
        raise UNetDecoderError(
            f"Unknown selection {name!r}; pick one of {', '.join(SELECTIONS)} or use -b REGEX."
        )
    return SELECTIONS[name]
