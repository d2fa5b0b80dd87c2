"""What `unet-decoder tune` searches: the candidates a budget admits, the thread counts, and
the record of one search (`TuneResult`), which the report draws and `tune.json` holds."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from torch import nn

from ..deploy.build import kind_of
from ..engines.backends import ENGINE_SETS
from ..machine import usable_cores
from ..passes.policy import (
    best_flags,
    budget_of,
    flags_label,
    parse_flags,
    precision_of,
    rewrites_for,
)

#: --budget -> the precisions it admits; each candidate is still judged by its own budget.
BUDGETS: dict[str, tuple[str, ...]] = {
    "exact": ("fp32",),
    "bf16": ("fp32", "bf16"),
    "int8": ("fp32", "bf16", "int8"),
}

#: Statuses, best first (the table's order).
STATUSES = ("chosen", "finalist", "screened out", "over budget", "ruled out", "failed",
            "skipped")  # fmt: skip


@dataclass
class Candidate:
    backend: str
    flags: list[str]
    threads: int
    status: str = "pending"
    reason: str = ""
    baseline: bool = False  # plain fp32 eager: timed in the final rounds whatever its status
    folder: str | None = None
    build_s: float | None = None
    load_s: float | None = None
    rel_error: float | None = None
    pixel_agreement: float | None = None
    miou: float | None = None
    screen_ms: float | None = None
    median_ms: float | None = None
    iqr_ms: float | None = None
    samples: int | None = None
    speedup: float | None = None
    budget: dict[str, float] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return kind_of(self.backend, self.flags)

    @property
    def precision(self) -> str:
        return precision_of(self.flags)

    @property
    def label(self) -> str:
        return f"{self.kind} {flags_label(self.flags)}"

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "kind": self.kind, "precision": self.precision,
                "label": self.label}  # fmt: skip


def thread_options(threads: int | None) -> list[int]:
    """The thread counts searched: 1, 2, 4... up to the usable cores (or the one asked)."""
    if threads is not None:
        return [threads]
    cores = usable_cores()
    options = {cores}
    t = 1
    while t < cores:
        options.add(t)
        t *= 2
    return sorted(options)


def plan_candidates(model: nn.Module, budget: str, threads: int) -> list[Candidate]:
    """Per precision the budget admits: plain fp32 eager, torch's best sets (eager, and the
    compiled ones as AOTInductor packages) and every engine set, with every exact rewrite
    that applies (they remove work, never add it)."""
    precisions = BUDGETS[budget]
    rewrites = rewrites_for(model)
    plans: list[tuple[str, list[str]]] = [("torch", []), ("torch", best_flags(model, "best_eager"))]
    for name in ("best_compiled", "best_bf16", "best_int8"):
        flags = [f for f in best_flags(model, name) if f != "inference_mode"]  # AOTI's own
        if precision_of(flags) in precisions:
            plans.append(("torch", flags))
    for backend, extra in ENGINE_SETS.values():
        if precision_of(extra) in precisions:
            plans.append((backend, parse_flags([*rewrites, *extra])))
    found = [
        Candidate(backend, flags, threads, budget=budget_of(flags)) for backend, flags in plans
    ]
    found[0].baseline = True
    return found


@dataclass
class TuneResult:
    encoder: str
    budget: str
    input_shape: list[int]
    weights: str
    machine: dict[str, object]
    candidates: list[Candidate]
    search_seconds: float
    thread_note: str
    artifact: str | None = None
    reload_rel_error: float | None = None

    @property
    def chosen(self) -> Candidate:
        return next(c for c in self.candidates if c.status == "chosen")

    def to_dict(self) -> dict[str, object]:
        data = {k: v for k, v in asdict(self).items() if k != "candidates"}
        data["candidates"] = [c.to_dict() for c in self.candidates]
        data["chosen"] = self.chosen.to_dict()
        return data


def ranked(candidates: list[Candidate]) -> list[Candidate]:
    """Best first: by status (`STATUSES`), then final time, then screening time."""

    def key(c: Candidate):
        timed = c.median_ms if c.status in ("chosen", "finalist") else None
        rank = STATUSES.index(c.status) if c.status in STATUSES else len(STATUSES)
        return (rank, float("inf") if timed is None else timed, c.screen_ms or float("inf"))

    return sorted(candidates, key=key)
