"""Two artifacts timed side by side in one process, in alternating blocks, in a few processes.

On a shared VM each process runs at its own speed level for its whole life (5-10% apart for
eager resnet34, 25-35% for efficientnet_b0's compiled entries), so two numbers from two
processes differ by that much whatever the code did. Two artifacts loaded into one process
share its level: their ratio cancels it. Each process loads both (`load_deployed`), times them
in blocks of calls in the order A B B A A B B A ..., and reports the median of its B/A block
ratios; the processes alternate which artifact they load first (the one loaded second ran ~2%
faster in every A/A process of an earlier check). The verdict is on the per-process ratios:
their geometric mean and a 95% confidence interval (Student's t), not one median against
another.

`python -m unet_decoder.bench.paired A B ...` is one such process (it prints JSON);
`compare_artifacts` runs several and judges them.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import UNetDecoderError

#: Student's t, two-sided 95%, by degrees of freedom (1-10; the normal's 1.96 beyond 30).
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
        9: 2.262, 10: 2.228, 15: 2.131, 20: 2.086, 30: 2.042}  # fmt: skip


def t95(df: int) -> float:
    known = [d for d in _T95 if d <= df]
    return _T95[max(known)] if df <= 30 else 1.96


def block_order(blocks: int) -> list[str]:
    """A B B A A B B A ...: every B block has an A block beside it, and neither side always
    runs first within a pair."""
    return [side for i in range(blocks) for side in (("A", "B") if i % 2 == 0 else ("B", "A"))]


def time_in_one_process(a: Path, b: Path, *, blocks: int, calls: int, a_first: bool,
                        inject_b: float = 0.0) -> dict:  # fmt: skip
    """Load both artifacts here (in the order asked) and time them (`time_loaded`)."""
    began = time.perf_counter()
    from ..deploy.load import load_deployed

    loaded = {}
    for side, folder in (("A", a), ("B", b)) if a_first else (("B", b), ("A", a)):
        loaded[side] = load_deployed(folder)
    load_s = round(time.perf_counter() - began, 2)
    shapes = {side: run.input_shape for side, run in loaded.items()}
    if shapes["A"] != shapes["B"]:
        raise UNetDecoderError(f"the artifacts take different inputs: {shapes}; compare two "
                               "built for the same shape.")  # fmt: skip
    found = time_loaded(loaded, shapes["A"], blocks=blocks, calls=calls, a_first=a_first,
                        inject_b=inject_b)  # fmt: skip
    return {**found, "load_s": load_s}


def time_loaded(loaded: dict, shape: tuple[int, ...], *, blocks: int, calls: int,
                a_first: bool, inject_b: float = 0.0) -> dict:  # fmt: skip
    """Warm both runs up, time `blocks` pairs of blocks of `calls` calls each; the median of
    the B/A ratios of each pair of blocks."""
    import torch

    began = time.perf_counter()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    for run in loaded.values():
        for _ in range(3):
            run(x)
    times: dict[str, list[float]] = {"A": [], "B": []}
    for side in block_order(blocks):
        run = loaded[side]
        run(x)  # the other side's threads and caches: one untimed call first
        samples = []
        for _ in range(calls):
            start = time.perf_counter()
            run(x)
            if side == "B" and inject_b:  # spin, not sleep: a sleeping process wakes slower
                until = start + (time.perf_counter() - start) * (1 + inject_b)
                while time.perf_counter() < until:
                    pass
            samples.append((time.perf_counter() - start) * 1e3)
        times[side].append(statistics.median(samples))
    ratios = [bb / aa for aa, bb in zip(times["A"], times["B"], strict=True)]
    return {"ratio": statistics.median(ratios), "a_ms": statistics.median(times["A"]),
            "b_ms": statistics.median(times["B"]), "a_first": a_first,
            "block_ratios": ratios,
            "timed_s": round(time.perf_counter() - began, 2)}  # fmt: skip


@dataclass
class PairedResult:
    a: str
    b: str
    processes: list[dict] = field(default_factory=list)
    blocks: int = 0
    calls: int = 0
    inject_b: float = 0.0
    machine: dict = field(default_factory=dict)  # machine_info, load before and others' CPU

    @property
    def ratio(self) -> float:
        """Geometric mean of the processes' B/A ratios: over 1, B is slower."""
        return math.exp(statistics.fmean(math.log(p["ratio"]) for p in self.processes))

    @property
    def interval(self) -> tuple[float, float]:
        """95% confidence interval of that ratio, from the spread of the processes."""
        logs = [math.log(p["ratio"]) for p in self.processes]
        if len(logs) < 2:
            return (math.nan, math.nan)
        half = t95(len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
        centre = statistics.fmean(logs)
        return (math.exp(centre - half), math.exp(centre + half))

    def verdict(self) -> str:
        low, high = self.interval
        if low > 1:
            return f"B is slower: x{self.ratio:.3f} (95% interval x{low:.3f}-x{high:.3f})"
        if high < 1:
            return f"B is faster: x{self.ratio:.3f} (95% interval x{low:.3f}-x{high:.3f})"
        return (f"no difference this can see: x{self.ratio:.3f} (95% interval x{low:.3f}-"
                f"x{high:.3f})")  # fmt: skip

    def to_dict(self) -> dict:
        low, high = self.interval
        return {**asdict(self), "ratio": self.ratio, "interval": [low, high],
                "verdict": self.verdict()}  # fmt: skip


def check_counts(processes: int, blocks: int, calls: int) -> None:
    if processes < 2 or blocks < 1 or calls < 1:
        raise UNetDecoderError(
            f"--processes must be at least 2 (an interval needs two), --blocks and --calls at "
            f"least 1; got {processes}, {blocks}, {calls}"
        )


def compare_artifacts(a: str | Path, b: str | Path, *, processes: int = 4, blocks: int = 12,
                      calls: int = 8, inject_b: float = 0.0, progress=lambda label: None,
                      python: str | Path | None = None) -> PairedResult:  # fmt: skip
    """`processes` fresh processes, each timing both artifacts (`time_in_one_process`),
    alternating which one it loads first. `python`: the interpreter they run in (default this
    one; the gate gives an asv environment's, whose torch built the artifacts)."""
    check_counts(processes, blocks, calls)
    from ..deploy.record import DeployRecord

    records = [DeployRecord.read(Path(folder)) for folder in (a, b)]  # bad: one line, here

    def command(a_first: bool) -> list[str]:
        return [str(python or sys.executable), "-m", "unet_decoder.bench.paired", str(a), str(b),
                "--blocks", str(blocks), "--calls", str(calls), "--first",
                "A" if a_first else "B", "--inject-b", str(inject_b)]  # fmt: skip

    result = PairedResult(str(a), str(b), blocks=blocks, calls=calls, inject_b=inject_b)
    return run_processes(result, command, processes, records[0].threads, progress)


def run_processes(result: PairedResult, command: Callable[[bool], list[str]], processes: int,
                  threads: int, progress: Callable[[str], None], *,
                  env: dict[str, str] | None = None) -> PairedResult:  # fmt: skip
    """Run `processes` of `command(a_first)`, alternating the load order, into `result`,
    with the machine block (the load before, and the CPU other processes took meanwhile)."""
    from .measure import machine_info
    from .neighbours import OtherProcessesCPU, load_average

    load_before = load_average()
    neighbours = OtherProcessesCPU().start()
    for i in range(processes):
        progress(f"process {i + 1}/{processes}")
        began = time.perf_counter()
        done = subprocess.run(command(i % 2 == 0), capture_output=True, text=True, env=env)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise UNetDecoderError(f"a paired timing process failed: {last}")
        found = json.loads(done.stdout.strip().splitlines()[-1])
        # what a process costs beyond its timed calls: interpreter, imports, loading both sides
        found["wall_s"] = round(time.perf_counter() - began, 2)
        result.processes.append(found)
    result.machine = {**machine_info(), "threads": threads, "load_before": load_before,
                      "others_cpu_pct": neighbours.stop()}  # fmt: skip
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one process of compare_artifacts")
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--blocks", type=int, default=12)
    parser.add_argument("--calls", type=int, default=8)
    parser.add_argument("--first", choices=("A", "B"), default="A")
    parser.add_argument("--inject-b", type=float, default=0.0)
    args = parser.parse_args(argv)
    found = time_in_one_process(args.a, args.b, blocks=args.blocks, calls=args.calls,
                                a_first=args.first == "A", inject_b=args.inject_b)  # fmt: skip
    print(json.dumps(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
