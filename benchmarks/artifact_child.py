"""Build one artifact in a process of its own, with the commit's own build of the package.

Run by `artifacts.build_in_child` as `python artifact_child.py ARGS_JSON`, so that a
measuring process only ever loads an artifact: its peak memory and timings never include a
compiler's. From the parent it takes the weights and example input (a torch file), the flags,
backend and threads; int8 calibrates on the synthetic task's images when asked. It writes the
artifact, `build.json` (its build time: `Metrics` tracks it as the entry's setup seconds; a
package linked from an earlier build of the same exported program keeps that build's time),
and the list of package modules it imported (`artifacts.built_by_this_code`).

It runs against older commits' builds too, so it asks for nothing they lack: content keys
(`packages`) are passed only where `build_artifact` takes them.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import time
from pathlib import Path


def _calibration(args: dict, x):
    if args["calibration"] != "synthetic":
        return None
    try:
        from unet_decoder.bench.subjects import synthetic_subject
    except ImportError:  # builds before the house move
        from unet_decoder.tracking.bench import synthetic_subject
    batch, _, size, _ = x.shape
    return synthetic_subject(args["encoder"], size, batch).calibration


def _build_artifact():
    try:
        from unet_decoder.deploy import build_artifact
    except ImportError:  # builds before the house move
        from unet_decoder.artifact import build_artifact
    return build_artifact


def _was_linked(earlier: dict | None, package: Path) -> bool:
    """Linked, not compiled: the very file (a package removed meanwhile is compiled again; a
    copy, on a file system without hard links, counts as a build)."""
    try:
        return earlier is not None and os.path.samefile(earlier["package"], package)
    except OSError:
        return False


def imported_modules() -> list[str]:
    """The `unet_decoder/...` files this process imported, relative to site-packages."""
    site = Path(sys.modules["unet_decoder"].__file__).resolve().parent.parent
    ours = [m for name, m in list(sys.modules.items())
            if name.split(".")[0] == "unet_decoder" and getattr(m, "__file__", None)]  # fmt: skip
    return sorted(Path(m.__file__).resolve().relative_to(site).as_posix() for m in ours)


def main(argv: list[str]) -> int:
    import torch

    from unet_decoder import UNet

    args = json.loads(argv[0])
    saved = torch.load(args["inputs"])
    model = UNet(args["encoder"], num_classes=args["num_classes"])
    model.load_state_dict(saved["state"])
    build_artifact = _build_artifact()
    known = args["packages"]
    reuse = {}
    if "packages" in inspect.signature(build_artifact).parameters:
        reuse["packages"] = {digest: earlier["package"] for digest, earlier in known.items()}
    start = time.perf_counter()
    record = build_artifact(model.eval(), args["names"], saved["x"], args["folder"],
                            backend=args["backend"], threads=args["threads"],
                            calibration=_calibration(args, saved["x"]),
                            onnx_cache=args["onnx_cache"], **reuse)  # fmt: skip
    seconds = time.perf_counter() - start
    build: dict[str, object] = {"build_seconds": seconds}
    earlier = known.get(getattr(record, "program", None))
    if _was_linked(earlier, Path(args["folder"]) / record.file):
        build = {"build_seconds": earlier["build_seconds"] or seconds,
                 "linked_from": earlier["build"], "link_seconds": seconds}  # fmt: skip
    (Path(args["folder"]) / "build.json").write_text(json.dumps(build))
    Path(args["imported"]).write_text(json.dumps(imported_modules()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
