"""The optimization room: the flag registry, Conv+BN folding, int8, `optimize`, accuracy.

Every pass is checked against the plain fp32 eager model (`accuracy`), within the budget its
registry entry states, so a speedup reported anywhere in the project is a speedup of the
same answers.
"""

from .accuracy import pixel_agreement, relative_error
from .optimize import OptimizedModel, check_applicable, flags_label, optimize, parse_flags
from .registry import (
    BF16_TOLERANCE,
    EXACT_TOLERANCE,
    FLAGS,
    INT8_MIN_PIXEL_AGREEMENT,
    INT8_TOLERANCE,
    Pass,
)

__all__ = [
    "BF16_TOLERANCE",
    "EXACT_TOLERANCE",
    "FLAGS",
    "INT8_MIN_PIXEL_AGREEMENT",
    "INT8_TOLERANCE",
    "OptimizedModel",
    "Pass",
    "check_applicable",
    "flags_label",
    "optimize",
    "parse_flags",
    "pixel_agreement",
    "relative_error",
]
