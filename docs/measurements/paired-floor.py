"""What the gate's side-by-side rule sees on this machine: A/A and injected trials of one entry.

    uv run python docs/measurements/paired-floor.py ARTIFACT --trials 10 --json OUT.json
    uv run python docs/measurements/paired-floor.py --eager resnet34 none --trials 5 --json OUT.json

ARTIFACT is a compiled or engine artifact folder (a `pr` entry's, as the gate loads it); it is
copied, so every A/A trial times two folders with the same files. The gate itself would call
those "same artifact" and not time them; the copy's record names another program so that
they are timed, as a head whose program changed but whose speed did not would be. Each trial
is one run of the gate's rule (`tracking.side_by_side.judge`: 4 processes, 4 more if
undecided) with 0% and with the injected slowdowns (a spin after each head call,
`--inject`), trials interleaved.

With --eager ENCODER FLAGS, the pair is an eager entry of one commit (--commit, HEAD) against
itself, each side its own copy of the package imported side by side (`bench.two_commits`),
as the gate would time a head whose code changed but whose speed did not.
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from unet_decoder.bench.measure import machine_info
from unet_decoder.bench.neighbours import OtherProcessesCPU, load_average
from unet_decoder.provenance import provenance
from unet_decoder.tracking.side_by_side import (
    PAIRED_FACTOR,
    ArtifactPair,
    EagerPair,
    judge,
    timed_verdict,
)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("artifact", type=Path, nargs="?")
    parser.add_argument("--eager", nargs=2, metavar=("ENCODER", "FLAGS"))
    parser.add_argument("--commit", default="HEAD")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--inject", type=float, nargs="+", default=[0.05, 0.10])
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    if args.eager:
        return eager(args)
    record = json.loads((args.artifact / "deployed.json").read_text())
    trials: dict[str, list[dict]] = {f"{f:.2f}": [] for f in [0.0, *args.inject]}
    load_before, others = load_average(), OtherProcessesCPU().start()
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "copy"
        shutil.copytree(args.artifact, copy)
        # a record that names another program, so that the rule times the copy instead of
        # calling it the same artifact (the files and their sha256s stay as they are)
        (copy / "deployed.json").write_text(json.dumps({**record, "program": "a copy"}))
        pair = ArtifactPair(f"{record['model']['encoder_name']} {'+'.join(record['flags'])}",
                            "this python", args.artifact, copy)  # fmt: skip
        run_trials(args, lambda fraction: judge(pair, inject_b=fraction), trials)
    label = f"{record['kind']} {'+'.join(record['flags'])}"
    about = {"artifact": str(args.artifact), "label": label, "input_shape": record["input_shape"],
             "threads": record["threads"]}  # fmt: skip
    return write(args, about, trials, load_before, others)


def eager(args) -> int:
    """An eager entry of --commit against itself, each side its own copy of the package."""
    trials: dict[str, list[dict]] = {f"{f:.2f}": [] for f in [0.0, *args.inject]}
    load_before, others = load_average(), OtherProcessesCPU().start()
    commit = subprocess.run(["git", "rev-parse", args.commit], capture_output=True, text=True,
                            check=True).stdout.strip()  # fmt: skip
    pair = EagerPair(" ".join(args.eager), "this python", Path("."), commit, commit)
    about = {"commit": commit, "label": f"torch-eager {' '.join(args.eager)}",
             "input_shape": [1, 3, 256, 256], "threads": 2}  # fmt: skip
    run_trials(args, lambda fraction: timed_verdict(pair, inject_b=fraction), trials,
               lambda: write(args, about, trials, load_before, others))  # fmt: skip
    return write(args, about, trials, load_before, others)


def run_trials(args, judged, trials: dict[str, list[dict]], done=lambda: None) -> None:
    """Each trial judges every fraction once, interleaved; `done` after each trial (the
    record is written as it grows, so a stopped run keeps the trials it finished)."""
    for trial in range(args.trials):
        for fraction in [0.0, *args.inject]:
            start = time.time()
            found = judged(fraction)
            trials[f"{fraction:.2f}"].append(
                {
                    "kind": found.kind,
                    "ratio": found.ratio,
                    "interval": list(found.interval),
                    "processes": found.processes,
                    "seconds": round(time.time() - start, 1),
                }
            )
            print(f"trial {trial + 1} inject {fraction:.2f}: {found.line()}", flush=True)
        done()


def write(args, about: dict, trials: dict, load_before, others) -> int:
    summary = {f: {kind: sum(t["kind"] == kind for t in rows)
                   for kind in ("slower", "not slower", "suspicious")}
               for f, rows in trials.items()}  # fmt: skip
    out = {"provenance": provenance(sys.argv), **about, "paired_factor": PAIRED_FACTOR,
           "summary": summary, "trials": trials,
           "machine": {**machine_info(), "load_before": load_before,
                       "others_cpu_pct": others.stop()}}  # fmt: skip
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
