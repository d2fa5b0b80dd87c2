"""Where the fp32 forward's time goes: our best compiled torch set against OpenVINO, by operator.

    uv run python docs/measurements/conv-ceiling.py --encoders resnet34,efficientnet_b0 --json OUT

Both run in one process, profiled in alternating rounds (`census.profile.profile_pair`):
torch.profiler's self time per operator for the torch.compile'd set (its convolutions are
oneDNN calls the profiler sees: `mkldnn::_convolution_pointwise`), and OpenVINO's own
performance counters per layer type and primitive. Each side's convolution time is set
against the model's FLOPs (`torch.utils.flop_counter`, almost all of them convolutions) and
the bench's measured 3x3 conv peak of the same run, which says how far a faster conv kernel
could still take either. Random-init weights: time does not depend on them.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from unet_decoder import UNet, build_artifact, load_deployed
from unet_decoder.bench.measure import conv_peak_gflops, machine_info
from unet_decoder.bench.neighbours import OtherProcessesCPU, load_average
from unet_decoder.census.profile import profile_pair
from unet_decoder.census.take import count_flops
from unet_decoder.deploy import optimize
from unet_decoder.passes.policy import best_flags
from unet_decoder.provenance import provenance

THREADS, SHAPE = 2, (1, 3, 256, 256)


def is_conv(key: str) -> bool:
    return "convolution" in key.lower() or " Convolution" in key


def side(times: dict[str, float], flops: int, peak: float) -> dict:
    conv = sum(ms for key, ms in times.items() if is_conv(key))
    top = sorted(times.items(), key=lambda kv: -kv[1])[:8]
    return {"profiled_ms": sum(times.values()), "conv_ms": conv, "other_ms": sum(times.values())
            - conv, "conv_gflop_per_s": flops / 1e9 / (conv / 1e3) if conv else None,
            "conv_fraction_of_peak": flops / 1e9 / (conv / 1e3) / peak if conv else None,
            "top": [[key, ms] for key, ms in top]}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--encoders", default="resnet34,efficientnet_b0")
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    load_before, others = load_average(), OtherProcessesCPU().start()
    peak = conv_peak_gflops()
    found = {}
    for encoder in args.encoders.split(","):
        torch.manual_seed(0)
        model = UNet(encoder).eval()
        x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
        flags = best_flags(model, "best_compiled")
        ours = optimize(model, flags, x, threads=THREADS)
        with tempfile.TemporaryDirectory() as tmp:
            build_artifact(model, [], x, Path(tmp) / "ov", backend="openvino", threads=THREADS)
            openvino = load_deployed(Path(tmp) / "ov")
            for run in (ours, openvino):
                for _ in range(3):
                    run(x)
            a, b = profile_pair(ours, openvino, x, calls=10, rounds=4)
        flops = count_flops(model, x)
        found[encoder] = {"gflop": flops / 1e9, "torch": {"flags": "+".join(flags),
                          **side(a, flops, peak)}, "openvino": side(b, flops, peak)}  # fmt: skip
        print(encoder, json.dumps({k: v for k, v in found[encoder].items()}, indent=1)[:1500])
    out = {"provenance": provenance(sys.argv), "input_shape": list(SHAPE), "threads": THREADS,
           "conv_peak_gflops": peak, "encoders": found,
           "machine": {**machine_info(), "load_before": load_before,
                       "others_cpu_pct": others.stop()}}  # fmt: skip
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
