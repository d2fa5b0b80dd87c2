"""What the gate's side-by-side rule sees on this machine: A/A and injected trials of one entry.

    uv run python docs/measurements/paired-floor.py ARTIFACT --trials 10 --json OUT.json

ARTIFACT is a compiled or engine artifact folder (a `pr` entry's, as the gate loads it); it is
copied, so every A/A trial times two folders with the same files. The gate itself would call
those "same artifact" and not time them; the copy's record names another program so that
they are timed, as a head whose program changed but whose speed did not would be. Each trial
is one run of the gate's rule (`tracking.side_by_side.judge`: 4 processes, 4 more if
undecided) with 0% and with the injected slowdowns (a spin after each head call,
`--inject`), trials interleaved.
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from unet_decoder.bench.measure import machine_info
from unet_decoder.bench.neighbours import OtherProcessesCPU, load_average
from unet_decoder.provenance import provenance
from unet_decoder.tracking.side_by_side import PAIRED_FACTOR, ArtifactPair, judge


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--inject", type=float, nargs="+", default=[0.05, 0.10])
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
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
        for trial in range(args.trials):
            for fraction in [0.0, *args.inject]:
                start = time.time()
                found = judge(pair, inject_b=fraction)
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
    summary = {f: {kind: sum(t["kind"] == kind for t in rows)
                   for kind in ("slower", "not slower", "suspicious")}
               for f, rows in trials.items()}  # fmt: skip
    out = {"provenance": provenance(sys.argv), "artifact": str(args.artifact),
           "label": f"{record['kind']} {'+'.join(record['flags'])}",
           "input_shape": record["input_shape"], "threads": record["threads"],
           "paired_factor": PAIRED_FACTOR, "summary": summary, "trials": trials,
           "machine": {**machine_info(), "load_before": load_before,
                       "others_cpu_pct": others.stop()}}  # fmt: skip
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
