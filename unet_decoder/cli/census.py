"""`unet-decoder census A [B]`: what an artifact runs, counted; with B, what changed."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

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
    census.add_argument("--json", type=Path, help="write the census (of B if given) as JSON")
    census.set_defaults(run=run)


def _take(folder: Path):
    import torch

    from ..census.take import take_census
    from ..deploy import load_deployed

    loaded = load_deployed(folder)
    x = torch.randn(loaded.input_shape, generator=torch.Generator().manual_seed(1))
    return take_census(loaded, x, about={"artifact": str(folder), "label": loaded.label})


def run(args: argparse.Namespace) -> int:
    from ..census import census_delta
    from ..provenance import provenance

    check_output(args.json, "--json")
    first = _take(args.a)
    if args.b is None:
        shown = first
        for key, n in sorted(first.counts.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"{n:5}  {key}")
        extra = f", {first.flop / 1e9:.3f} GFLOP" if first.flop else ""
        print(f"{first.total} counted ({first.kind}{extra})")
    else:
        shown = _take(args.b)
        delta = census_delta(first, shown, limit=40)
        print("\n".join(delta) if delta else "the same census: nothing changed")
    if args.json is not None:
        record = {"provenance": provenance(args.argv), **json.loads(shown.to_json())}
        write_atomically(args.json, (json.dumps(record, indent=1) + "\n").encode())
    return 0
