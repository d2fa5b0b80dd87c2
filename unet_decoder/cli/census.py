"""`unet-decoder census A [B]`: what an artifact runs, counted; with B, what changed."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import UNetDecoderError
from ..files import check_output, write_atomically


def add(sub) -> None:
    census = sub.add_parser(
        "census",
        help="count what an artifact runs (operators, kernels, engine primitives); with two, "
        "the delta",
        description="Load an artifact folder (written by tune or build_artifact) and count what "
        "one forward runs: the aten operators an eager set dispatches, the kernels and oneDNN "
        "calls of an AOTInductor package, the nodes of ONNX Runtime's optimized graph, or "
        "OpenVINO's runtime primitives with their precision. With a second folder, print what "
        "changed from A to B. Counting has no noise: the same build counts the same here.",
    )
    census.add_argument("a", type=Path, help="an artifact folder (the base, with B)")
    census.add_argument("b", type=Path, nargs="?", help="the artifact to compare with A")
    census.add_argument(
        "--profile", action="store_true",
        help="with B: also profile both in this process, in alternating rounds, and print the "
        "operators whose time grew (eager torch, ONNX Runtime, OpenVINO; an AOTInductor "
        "package has no per-operator times)",
    )  # fmt: skip
    census.add_argument("--json", type=Path, help="write the census (of B if given) as JSON")
    census.set_defaults(run=run)


def _load(folder: Path):
    import torch

    from ..deploy import load_deployed

    loaded = load_deployed(folder)
    return loaded, torch.randn(loaded.input_shape, generator=torch.Generator().manual_seed(1))


def _take(loaded, x):
    from ..census.take import take_census

    return take_census(loaded, x, about={"label": loaded.label})


def run(args: argparse.Namespace) -> int:
    from ..census import census_delta
    from ..provenance import provenance

    check_output(args.json, "--json")
    if args.profile and args.b is None:
        raise UNetDecoderError("--profile compares two artifacts: give B too.")
    a, x = _load(args.a)
    first = _take(a, x)
    if args.b is None:
        shown = first
        for key, n in sorted(first.counts.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"{n:5}  {key}")
        extra = f", {first.flop / 1e9:.3f} GFLOP" if first.flop else ""
        print(f"{first.total} counted ({first.kind}{extra})")
    else:
        b, _ = _load(args.b)
        shown = _take(b, x)
        delta = census_delta(first, shown, limit=40)
        print("\n".join(delta) if delta else "the same census: nothing changed")
        if args.profile:
            from ..census.profile import profile_delta, profile_pair

            print("\ntime by operator, B against A (profiled in one process, alternating):")
            print("\n".join(profile_delta(*profile_pair(a, b, x))))
    if args.json is not None:
        record = {"provenance": provenance(args.argv), **json.loads(shown.to_json())}
        write_atomically(args.json, (json.dumps(record, indent=1) + "\n").encode())
    return 0
