"""What a gate costs, and how much of it is the census: wall time and asv's own durations.

    uv run python docs/measurements/gate-cost.py --json OUT -- unet-decoder gate BASE HEAD ...
    uv run python docs/measurements/gate-cost.py --json OUT --results-only BASE HEAD

Runs the gate command after `--` (output passed through), times it, and then reads the asv
result files the run wrote for both commits, every environment: asv stores each benchmark's
duration (`duration`: all its parameter combinations, rounds included) and each environment's
build (`<build>`, `<setup_cache ...>`). The census share is what the `track_census`
benchmarks took, plus what taking the census cost inside the `time_forward` processes that
filed it (each census file's `about.seconds`), of the whole measured time and of the wall.
`--results-only` reads the files of a gate that already ran (no wall time then: only asv's
durations). The gate's own job summary (its verdict, each side-by-side line with what it
cost, the census delta; written where GITHUB_STEP_SUMMARY points) is kept in the record.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from unet_decoder.bench.measure import machine_info
from unet_decoder.bench.neighbours import OtherProcessesCPU, load_average
from unet_decoder.provenance import provenance


def commit_hash(rev: str) -> str:
    return subprocess.run(["git", "rev-parse", rev], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


def durations(results: Path, commit: str) -> dict[str, dict[str, float]]:
    """Per environment: seconds per benchmark name and per asv stage of `commit`'s files."""
    found: dict[str, dict[str, float]] = {}
    for path in sorted(results.glob(f"*/{commit[:8]}-*.json")):
        data = json.loads(path.read_text())
        columns = data["result_columns"]
        spent = {f"stage {k}": float(v) for k, v in data.get("durations", {}).items()}
        for name, row in data["results"].items():
            value = dict(zip(columns, row, strict=False)).get("duration")
            if value is not None:
                spent[name] = float(value)
        found[data["env_name"]] = spent
    return found


def census_seconds(conf_dir: Path, commit: str) -> float:
    """What taking the censuses of `commit` cost inside the timing processes that filed them
    (`about.seconds`, benchmarks/census.py), every environment. A file an earlier run filed
    counts too, so clear `.asv/census` before a measured gate (an overcount otherwise)."""
    total = 0.0
    for path in (conf_dir / ".asv" / "census").glob(f"*/{commit}/*.json"):
        total += float(json.loads(path.read_text()).get("about", {}).get("seconds") or 0)
    return total


def main() -> int:
    argv = sys.argv[1:]
    gate = argv[argv.index("--") + 1 :] if "--" in argv else []
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--results-only", nargs=2, metavar=("BASE", "HEAD"))
    parser.add_argument("--conf-dir", type=Path, default=Path("."), help="beside asv.conf.json")
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if bool(gate) == bool(args.results_only):
        parser.error("give either a gate command after -- or --results-only BASE HEAD")
    machine = machine_info()
    wall = rc = summary = None
    machine["load_before"], others = load_average(), OtherProcessesCPU().start()
    if gate:
        base, head = [a for a in gate[2:] if not a.startswith("-")][:2]
        start = time.perf_counter()
        with tempfile.NamedTemporaryFile("r", suffix=".md") as told:
            env = {**os.environ, "GITHUB_STEP_SUMMARY": told.name}
            rc = subprocess.run(["uv", "run", *gate], env=env).returncode
            summary = told.read()
        wall = time.perf_counter() - start
    else:
        base, head = args.results_only
    machine["others_cpu_pct"] = others.stop()
    sides = {}
    for rev in (base, head):
        commit = commit_hash(rev)
        sides[commit] = durations(args.conf_dir / ".asv" / "results", commit)
    inside = sum(census_seconds(args.conf_dir, commit) for commit in sides)
    total = census = timing = stages = 0.0
    by_benchmark: dict[str, float] = defaultdict(float)
    for envs in sides.values():
        for spent in envs.values():
            for name, seconds in spent.items():
                total += seconds
                by_benchmark[name] += seconds
                if name.startswith("stage "):
                    stages += seconds
                elif "census" in name:
                    census += seconds
                else:
                    timing += seconds
    # the census taken inside time_forward's processes is part of their duration: moved
    census, timing = census + inside, timing - inside
    report = {
        "provenance": provenance(["docs/measurements/gate-cost.py", *argv]),
        "gate_command": gate or None,
        "gate_rc": rc,
        "wall_s": wall,
        "gate_summary": summary,
        "asv_seconds": {"total": total, "census": census, "timing": timing, "stages": stages},
        "census_share_of_asv": census / total if total else None,
        "census_share_of_wall": census / wall if wall else None,
        "by_benchmark": dict(sorted(by_benchmark.items(), key=lambda kv: -kv[1])),
        "commits": sides,
        "machine": machine,
    }
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: report[k] for k in ("wall_s", "asv_seconds", "census_share_of_asv",
                                             "census_share_of_wall")}, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
