"""The one place for flag-set policy: canonical order, conflicts, applicability, the name of
a set, its precision, its accuracy budget, the best sets and the model rewrites.

Everything that names, sorts or judges a flag set (optimize, the engines, artifacts, bench,
tune and the asv suites) asks here, so that a set means the same thing everywhere.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

from torch import nn

from ..errors import FlagError
from .registry import (
    BF16_MIN_PIXEL_AGREEMENT,
    BF16_TOLERANCE,
    CONFLICTS,
    EXACT_MIN_PIXEL_AGREEMENT,
    EXACT_TOLERANCE,
    FLAGS,
    INT8_MIN_PIXEL_AGREEMENT,
    Pass,
)

#: The precisions a flag set runs at; "fp32" is the absence of a precision flag.
PRECISIONS = ("fp32", "bf16", "int8")

#: Flags that rewrite the model itself (they change the module, not how it is called), so
#: they are applied before an engine export too.
MODEL_REWRITES = ("reparam", "fuse_bn", "concat_free")

#: The best sets by name: every exact pass that applies to the encoder (reparam only where it
#: has reparameterizable blocks), plus the named extra. The asv grid's `best_*` entries and
#: bench's default rows resolve them with `best_flags`, always the same way.
#: concat_free is in every set: side by side it was never slower, and int8 gains most
#: (docs/measurements/rewrite-pairs-concat_free-2026-12-02.json).
_EXACT = ("reparam", "fuse_bn", "concat_free", "channels_last")
BEST: dict[str, tuple[str, ...]] = {
    "best_eager": (*_EXACT, "inference_mode"),
    "best_compiled": (*_EXACT, "compile", "inference_mode"),
    "best_int8": (*_EXACT, "int8", "inference_mode"),
    "best_bf16": (*_EXACT, "bf16", "compile", "inference_mode"),
}


def parse_flags(flags: str | Iterable[str] | None) -> list[str]:
    """Accept ["a", "b"], "a,b", "a+b" or "none"/None; return canonical order, validated."""
    if flags is None:
        return []
    items = flags.replace("+", ",").split(",") if isinstance(flags, str) else list(flags)
    names = [f.strip() for f in items if f.strip() and f.strip() != "none"]
    for name in names:
        if name not in FLAGS:
            close = difflib.get_close_matches(name, FLAGS, n=2)
            hint = f" Did you mean {' or '.join(close)}?" if close else ""
            raise FlagError(
                f"Unknown optimization flag {name!r}.{hint} Known flags: {', '.join(FLAGS)}."
            )
    chosen = set(names)
    for pair, why in CONFLICTS.items():
        if pair <= chosen:
            raise FlagError(f"Flags {' and '.join(sorted(pair))} conflict: {why}.")
    return [name for name in FLAGS if name in chosen]


def check_applicable(model: nn.Module, names: Sequence[str]) -> None:
    """An inapplicable flag is an error, never a silent no-op reported as a speedup."""
    for name in names:
        flag: Pass = FLAGS[name]
        if not flag.applies_to(model):
            encoder = getattr(model, "encoder_name", type(model).__name__)
            raise FlagError(
                f"Flag {name!r} does not apply to encoder {encoder!r}: {flag.why_not}. "
                "Drop it from the flag set."
            )


def flags_label(names: Sequence[str]) -> str:
    """The canonical name of a flag set, as benchmarks and results files spell it."""
    return "+".join(names) if names else "none"


def precision_of(flags: Sequence[str]) -> str:
    """fp32, bf16 or int8: the precision a flag set runs at."""
    return next((p for p in ("int8", "bf16") if p in flags), "fp32")


def min_agreement(tolerance: float) -> float:
    """The agreement floor that goes with an error budget: the looser, the lower."""
    if tolerance <= EXACT_TOLERANCE:
        return EXACT_MIN_PIXEL_AGREEMENT
    return BF16_MIN_PIXEL_AGREEMENT if tolerance <= BF16_TOLERANCE else INT8_MIN_PIXEL_AGREEMENT


def budget_of(flags: Sequence[str]) -> dict[str, float]:
    """The accuracy contract of a flag set: its loosest pass's relative-error budget and the
    pixel-agreement floor that goes with it (exact for the empty set)."""
    tolerance = max((FLAGS[f].tolerance for f in flags), default=EXACT_TOLERANCE)
    return {"max_rel_error": tolerance, "min_agreement": min_agreement(tolerance)}


def within_budget(flags: Sequence[str], rel_error: float, agreement: float) -> bool:
    budget = budget_of(flags)
    return rel_error <= budget["max_rel_error"] and agreement >= budget["min_agreement"]


def rewrites_for(model: nn.Module) -> list[str]:
    """The `MODEL_REWRITES` that apply to this model."""
    return [name for name in MODEL_REWRITES if FLAGS[name].applies_to(model)]


def best_flags(model: nn.Module, name: str) -> list[str]:
    """A `BEST` set resolved for this model: its passes that apply, in canonical order."""
    return parse_flags([f for f in BEST[name] if FLAGS[f].applies_to(model)])
