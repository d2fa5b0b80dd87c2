"""Take the census of anything the project runs: an eager flag set, or a loaded artifact."""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from ..deploy.record import library_versions
from ..errors import UNetDecoderError
from ..machine import cpu_flags, cpu_name
from .programs import aoti_counts, onnxruntime_counts, openvino_counts
from .record import Census


class _Dispatched(TorchDispatchMode):
    """Counts every aten operator a forward dispatches, and the bytes of what they return."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter = Counter()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.counts[f"op {func.overloadpacket}"] += 1
        self.bytes += sum(t.nbytes for t in tree_leaves(out) if isinstance(t, torch.Tensor))
        return out


def _eager(run, x: torch.Tensor) -> tuple[Counter, int, int]:
    flops = FlopCounterMode(display=False)
    dispatched = _Dispatched()
    with torch.no_grad(), flops, dispatched:
        run(x)
    return dispatched.counts, flops.get_total_flops(), dispatched.bytes


def count_flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one forward of the plain model (a multiply-add counts 2); the bench's and the
    asv suites' FLOPs too (`bench.measure`)."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return counter.get_total_flops()


def take_census(run: Any, x: torch.Tensor, *, model: torch.nn.Module | None = None,
                about: dict | None = None) -> Census:  # fmt: skip
    """The census of `run` (an `optimize` result or a `load_deployed` artifact) on `x`.

    Eager runs count the operators one forward dispatches (and their FLOPs, as
    `torch.utils.flop_counter` sees them); artifacts are read, not run, and their FLOPs are
    those of `model`, the module they were built from, when given."""
    record = getattr(run, "record", None)  # a DeployedModel
    kind = record.kind if record is not None else "torch-eager"
    flop = bytes_ = None
    if kind == "torch-eager":
        counts, flop, bytes_ = _eager(run, x)
    elif kind == "torch-aoti":
        counts = aoti_counts(run.folder / record.file)
    elif kind == "onnxruntime":
        counts = onnxruntime_counts(run.folder / record.file, run.threads)
    elif kind == "openvino":
        compiled = getattr(run.runner, "compiled", None)
        if compiled is None:
            raise UNetDecoderError(f"{run!r} has no OpenVINO compiled model to take a census of")
        counts = openvino_counts(compiled)
    else:
        raise UNetDecoderError(f"no census for artifacts of kind {kind!r}")
    if flop is None and model is not None:
        flop = count_flops(model, x)
    # what picks the kernels: the CPU, and the libraries of this kind (torch; the engine's)
    machine = {"cpu": cpu_name(), "flags": cpu_flags(), **library_versions(kind)}
    # which interpreter ran it (an asv environment's), and which artifact: the gate times the
    # base's and the head's side by side there (an eager entry: both commits' code)
    about = {**(about or {}), "machine": machine, "python": sys.executable}
    if record is not None:
        about["artifact"] = str(run.folder.resolve())
    return Census(kind, dict(sorted(counts.items())), flop, bytes_, about=about)
