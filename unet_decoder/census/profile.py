"""Where the time of one forward goes, by operator, and what grew between two artifacts.

The census says what changed; this says what it costs. Each kind is asked with its own
counters: torch.profiler for eager torch (self CPU time by aten operator), ONNX Runtime's
session profiling (time by node type), OpenVINO's performance counters (time by layer type
and the primitive that ran it). An AOTInductor package calls its oneDNN kernels below the
profiler's reach, so it has no per-operator times here: its census delta is what there is.

Two artifacts are profiled in one process, in alternating rounds, and each operator's time
is the median of its rounds: the process's own speed level is shared by both.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from ..errors import UNetDecoderError

#: Calls a round, and rounds a side.
CALLS, ROUNDS = 10, 3


def _eager(run, x: torch.Tensor, calls: int) -> dict[str, float]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            run(x)
    # named as the census names them: aten::convolution -> op aten.convolution
    return {f"op {e.key.replace('::', '.')}": e.self_cpu_time_total / 1e3 / calls
            for e in prof.key_averages() if e.self_cpu_time_total > 0}  # fmt: skip


class _OrtProfiler:
    def __init__(self, model: Path, threads: int) -> None:
        import onnxruntime as ort

        from ..engines.onnxruntime import session_options

        self.tmp = tempfile.TemporaryDirectory(prefix="unet-decoder-profile-")
        options = session_options(threads)
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(self.tmp.name) / "ort")
        self.ort, self.options, self.model = ort, options, model

    def __call__(self, run, x: torch.Tensor, calls: int) -> dict[str, float]:
        session = self.ort.InferenceSession(str(self.model), self.options,
                                            providers=["CPUExecutionProvider"])  # fmt: skip
        name = session.get_inputs()[0].name
        feed = {name: x.numpy()}
        session.run(None, feed)  # the first run plans memory: not timed
        for _ in range(calls):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
        times: dict[str, float] = defaultdict(float)
        runs = 0
        for event in events:
            if event.get("cat") == "Session" and event.get("name") == "model_run":
                runs += 1
            if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
                times[f"node {event['args'].get('op_name', '?')}"] += event["dur"] / 1e3
        return {key: ms / max(runs, 1) for key, ms in times.items()}


def _openvino(run, x: torch.Tensor, calls: int, compiled) -> dict[str, float]:
    request = compiled.create_infer_request()
    request.infer({0: x.numpy()})
    times: dict[str, float] = defaultdict(float)
    for _ in range(calls):
        request.infer({0: x.numpy()})
        for info in request.profiling_info:
            if info.status.name == "EXECUTED":
                times[f"primitive {info.node_type} {info.exec_type}"] += (
                    info.real_time.total_seconds() * 1e3
                )
    return {key: ms / calls for key, ms in times.items()}


def profiler_for(run) -> Any:
    """A function (run, x, calls) -> {operator: ms per call} for this artifact or run."""
    record = getattr(run, "record", None)
    kind = record.kind if record is not None else "torch-eager"
    if kind == "torch-eager":
        return _eager
    if kind == "onnxruntime":
        return _OrtProfiler(run.folder / record.file, run.threads)
    if kind == "openvino":
        from ..engines.openvino import compile_runner

        path = run.folder / record.file
        compiled = compile_runner(path, record.precision, run.threads, profiling=True).compiled
        return lambda run, x, calls: _openvino(run, x, calls, compiled)
    raise UNetDecoderError(
        f"{run!r} is an AOTInductor package: its kernels run below torch.profiler, so there "
        "are no per-operator times; compare the census instead (unet-decoder census A B)."
    )


def profile_pair(a, b, x: torch.Tensor, *, calls: int = CALLS,
                 rounds: int = ROUNDS) -> tuple[dict[str, float], dict[str, float]]:  # fmt: skip
    """Per-operator ms per call of `a` and of `b`, profiled in alternating rounds here."""
    profilers = {"a": profiler_for(a), "b": profiler_for(b)}
    seen: dict[str, list[dict[str, float]]] = {"a": [], "b": []}
    for i in range(rounds):
        for side in ("a", "b") if i % 2 == 0 else ("b", "a"):
            run = a if side == "a" else b
            seen[side].append(profilers[side](run, x, calls))
    return tuple(
        {key: statistics.median(r.get(key, 0.0) for r in rounds_)
         for key in {k for r in rounds_ for k in r}}
        for rounds_ in (seen["a"], seen["b"])
    )  # fmt: skip


def profile_delta(a: dict[str, float], b: dict[str, float], *, limit: int = 8) -> list[str]:
    """The operators whose time moved most from `a` to `b`, largest first, then the totals."""
    moved = {key: b.get(key, 0.0) - a.get(key, 0.0) for key in {*a, *b}}
    ranked = sorted(moved.items(), key=lambda kv: -abs(kv[1]))[:limit]
    lines = [f"{ms:+.2f} ms {key} ({a.get(key, 0.0):.2f} -> {b.get(key, 0.0):.2f})"
             for key, ms in ranked if abs(ms) >= 0.005]  # fmt: skip
    total_a, total_b = sum(a.values()), sum(b.values())
    return [*lines, f"total {total_a:.2f} -> {total_b:.2f} ms per call (profiled)"]


def main(argv: list[str] | None = None) -> int:
    """`python -m unet_decoder.census.profile A B`: the gate's child, in an asv environment's
    Python; prints the profile delta of two artifact folders as a JSON list of lines."""
    import argparse

    from ..deploy.load import load_deployed

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    args = parser.parse_args(argv)
    a, b = load_deployed(args.a), load_deployed(args.b)
    x = torch.randn(a.input_shape, generator=torch.Generator().manual_seed(1))
    try:
        lines = profile_delta(*profile_pair(a, b, x))
    except UNetDecoderError as e:
        lines = [str(e)]
    print(json.dumps(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
