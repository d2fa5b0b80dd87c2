"""The optimization room (torch only): the flag registry, the one flag-set policy, Conv+BN
folding, int8, and the torch side of `optimize`.

Every pass is checked against the plain fp32 eager model (`accuracy`), within the budget its
registry entry states (`policy.budget_of`), so a speedup reported anywhere in the project is a
speedup of the same answers.
"""

from .accuracy import pixel_agreement, relative_error
from .optimized import OptimizedModel, apply_passes
from .policy import (
    BEST,
    MODEL_REWRITES,
    PRECISIONS,
    best_flags,
    budget_of,
    check_applicable,
    flags_label,
    min_agreement,
    parse_flags,
    precision_of,
    rewrites_for,
)
from .registry import (
    BF16_TOLERANCE,
    EXACT_TOLERANCE,
    FLAGS,
    INT8_MIN_PIXEL_AGREEMENT,
    INT8_TOLERANCE,
    Pass,
)

__all__ = [
    "BEST",
    "BF16_TOLERANCE",
    "EXACT_TOLERANCE",
    "FLAGS",
    "INT8_MIN_PIXEL_AGREEMENT",
    "INT8_TOLERANCE",
    "MODEL_REWRITES",
    "PRECISIONS",
    "OptimizedModel",
    "Pass",
    "apply_passes",
    "best_flags",
    "budget_of",
    "check_applicable",
    "flags_label",
    "min_agreement",
    "parse_flags",
    "pixel_agreement",
    "precision_of",
    "relative_error",
    "rewrites_for",
]
