"""What each engine offers: its precisions, the packages it needs, and which flags apply.

A backend run is judged exactly like a torch flag set: its logits against the plain fp32
eager model, within the budget of its precision flag (`passes.policy.budget_of`). Only the
flags that rewrite the model itself (`MODEL_REWRITES`) apply before export; each engine plans
its own memory layout and graph, so torch's runtime flags do not apply to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import FlagError
from ..passes.policy import MODEL_REWRITES
from .export import require


@dataclass(frozen=True)
class Backend:
    name: str
    precisions: tuple[str, ...]  # beyond fp32, which every engine runs
    packages: tuple[str, ...]  # what export, build and calibration import

    def require(self, what: str) -> None:
        """One line naming the extra to install when a package is missing."""
        for package in self.packages:
            require(package, what)

    def why_not(self, flag: str) -> str | None:
        if flag in MODEL_REWRITES or flag in self.precisions:
            return None
        if flag in ("int8", "bf16"):
            return f"{self.name} has no {flag} CPU kernels for this model"
        return f"it is a torch runtime flag; {self.name} plans its own layout and graph"


BACKENDS: dict[str, Backend] = {
    # ORT_ENABLE_ALL; int8: static QDQ, u8 activations, s8 per-channel weights
    "onnxruntime": Backend("onnxruntime", ("int8",), ("onnxscript", "onnxruntime")),
    # explicit precision hint; int8: NNCF post-training quantization
    "openvino": Backend("openvino", ("bf16", "int8"), ("onnxscript", "openvino", "nncf")),
}

#: Every engine at every precision it offers, by the name the asv grid and bench's rows give
#: it: entry -> (backend, precision flags). Run on our model after the rewrites that apply.
ENGINE_SETS: dict[str, tuple[str, tuple[str, ...]]] = {
    (name if precision == "fp32" else f"{name}_{precision}"): (
        name, () if precision == "fp32" else (precision,)
    )
    for name, backend in BACKENDS.items()
    for precision in ("fp32", *backend.precisions)
}  # fmt: skip


def check_backend(backend: str, names: Sequence[str]) -> Backend:
    """The backend, or a one-line FlagError naming what to change."""
    if backend not in BACKENDS:
        raise FlagError(f"Unknown backend {backend!r}; pick torch or one of {', '.join(BACKENDS)}.")
    chosen = BACKENDS[backend]
    for name in names:
        why = chosen.why_not(name)
        if why:
            raise FlagError(f"Flag {name!r} does not apply to the {backend} backend: {why}.")
    return chosen


def check_cpu(backend: str, names: Sequence[str]) -> None:
    """A precision the engine would not really run on this CPU is refused, never reported
    under its name: OpenVINO ignores its bf16 hint where its CPU plugin has no BF16 (no
    avx512_bf16 or AMX) and runs fp32. Needs the engine installed."""
    if backend == "openvino" and "bf16" in names:
        from .openvino import plugin_runs_bf16

        if not plugin_runs_bf16():
            raise FlagError(
                "Flag 'bf16' does not apply to the openvino backend on this CPU: OpenVINO "
                "has no BF16 kernels here and would run fp32; drop bf16."
            )
