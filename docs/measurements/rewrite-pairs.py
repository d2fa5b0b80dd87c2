"""What a model rewrite gives each backend: its artifact against the same set without it, paired.

    uv run python docs/measurements/rewrite-pairs.py --rewrite concat_free \
        --encoders resnet34,efficientnet_b0 --processes 6 --json OUT.json

For every encoder and every base set (torch `best_compiled` and `best_int8`, ONNX Runtime and
OpenVINO fp32 and int8, each with the model rewrites that apply minus the one under test),
two artifacts are built: without and with `--rewrite`. They are timed side by side in fresh
processes (`bench.paired.compare_artifacts`: alternating blocks in one process, the load order
alternating between processes), and the record keeps each pair's B/A ratio (B: with the
rewrite; under 1 is faster) with its 95% interval, and each artifact's relative error against
plain fp32 eager. Weights are seeded random init: what is compared is speed, on the same
shapes and arithmetic; accuracy claims are `bench`'s, on trained weights.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from unet_decoder import UNet
from unet_decoder.bench.measure import machine_info
from unet_decoder.bench.neighbours import OtherProcessesCPU, load_average
from unet_decoder.bench.paired import compare_artifacts
from unet_decoder.deploy.build import build_artifact
from unet_decoder.deploy.load import load_deployed
from unet_decoder.engines.backends import check_cpu
from unet_decoder.errors import FlagError
from unet_decoder.passes.accuracy import relative_error
from unet_decoder.passes.policy import best_flags, flags_label, parse_flags, rewrites_for
from unet_decoder.provenance import provenance

#: (backend, the set's flags beyond the model rewrites) of each base set.
BASES = {
    "best_compiled": ("torch", None),
    "best_int8": ("torch", None),
    "onnxruntime": ("onnxruntime", ()),
    "onnxruntime_int8": ("onnxruntime", ("int8",)),
    "openvino": ("openvino", ()),
    "openvino_int8": ("openvino", ("int8",)),
}


def base_flags(model, name: str, rewrite: str) -> tuple[str, list[str]]:
    backend, extra = BASES[name]
    flags = best_flags(model, name) if extra is None else [*rewrites_for(model), *extra]
    return backend, parse_flags([f for f in flags if f != rewrite])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rewrite", default="concat_free")
    parser.add_argument("--encoders", default="resnet34,efficientnet_b0")
    parser.add_argument("--sets", default=",".join(BASES))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--processes", type=int, default=6)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(2)
    load_before, others = load_average(), OtherProcessesCPU().start()
    pairs: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for encoder in args.encoders.split(","):
            torch.manual_seed(0)
            model = UNet(encoder).eval()
            x = torch.randn(1, 3, args.size, args.size)
            calibration = [torch.randn(1, 3, args.size, args.size) for _ in range(4)]
            with torch.no_grad():
                reference = model(x)
            for name in args.sets.split(","):
                backend, without = base_flags(model, name, args.rewrite)
                with_it = parse_flags([*without, args.rewrite])
                try:
                    check_cpu(backend, with_it)
                except FlagError as e:  # a precision this CPU would not really run
                    print(f"{encoder} {name}: skipped ({e})", flush=True)
                    continue
                folders, errors = [], []
                for flags in (without, with_it):
                    folder = Path(tmp) / f"{encoder}-{backend}-{flags_label(flags)}"
                    build_artifact(model, flags, x, folder, backend=backend, threads=2,
                                   calibration=calibration)  # fmt: skip
                    with torch.no_grad():
                        errors.append(relative_error(load_deployed(folder)(x), reference))
                    folders.append(folder)
                result = compare_artifacts(*folders, processes=args.processes)
                low, high = result.interval
                pairs.append({"encoder": encoder, "set": name, "backend": backend,
                              "without": flags_label(without), "with": flags_label(with_it),
                              "ratio": result.ratio, "interval": [low, high],
                              "verdict": result.verdict(), "rel_error": errors,
                              "processes": result.processes})  # fmt: skip
                print(f"{encoder} {name} ({backend}): {result.verdict()}", flush=True)
                write(args, pairs, load_before, others, done=False)
    write(args, pairs, load_before, others, done=True)
    return 0


def write(args, pairs: list[dict], load_before, others, *, done: bool) -> None:
    """Written after every pair: a stopped run keeps the pairs it finished."""
    machine = {**machine_info(), "load_before": load_before,
               "others_cpu_pct": others.stop() if done else None}  # fmt: skip
    out = {"provenance": provenance(sys.argv), "rewrite": args.rewrite, "size": args.size,
           "threads": 2, "weights": "seeded random init (speed only)", "complete": done,
           "pairs": pairs, "machine": machine}  # fmt: skip
    args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
