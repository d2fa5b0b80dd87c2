"""Compiled and engine entries run as the artifact `unet-decoder tune` ships, built once.

An AOTInductor package, an ONNX Runtime or OpenVINO file is built once per environment,
entry and version of the code its build runs (`built_by_this_code`) by a child process
(`artifact_child.py`), and loaded by every process that times or judges the entry (rounds,
peakmem, Metrics): compilation is paid once, not once per process, and a measuring process
only ever loads.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from .compat import api
from .runs import run_scoped_cache

#: Builds kept per entry and environment (a gate needs 2, a nightly 1 or 2).
KEPT_VERSIONS = 4
#: The file, beside the artifact, that lists what its build ran: `unet_decoder/...` paths
#: (relative to the installed package's parent) and the build program, each with its sha256.
SOURCES = "sources.json"
CHILD = Path(__file__).with_name("artifact_child.py")
#: The build program's own name in `SOURCES`.
CHILD_SOURCE = "benchmarks/artifact_child.py"


def _file_digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return None


def sources_now(listed) -> dict[str, str | None]:
    """The current sha256 of each listed source: the installed package's files and the build
    program; None for a file that no longer exists."""
    import unet_decoder

    site = Path(unet_decoder.__file__).resolve().parent.parent
    return {name: _file_digest(CHILD if name == CHILD_SOURCE else site / name)
            for name in listed}  # fmt: skip


def _builds(entry: Path) -> list[Path]:
    """The builds of an entry, newest (last used) first."""
    builds = [b for b in entry.iterdir() if b.name.startswith("build-")]
    return sorted(builds, key=lambda b: b.stat().st_mtime, reverse=True)


def built_by_this_code(entry: Path) -> Path | None:
    """The build of `entry` whose recorded sources all read the same today, if any.

    An artifact depends on the code its build ran, not on the whole package: a commit that
    changes the gate, the CLI or the docs builds the same AOTInductor package as its parent,
    and its gate should not pay 28-62 s per entry (on a 2-core VM) to compile it again. The
    build child records every `unet_decoder` module it imported (and itself); a build is
    reused only if none of them changed. A file it did not import cannot change what it built
    unless an imported one changes to import it, which changes the sources. Another torch is
    another environment, so another folder (`artifact_cache`).
    """
    if not entry.is_dir():
        return None
    for build in _builds(entry):
        try:
            recorded = json.loads((build / SOURCES).read_text())
        except (OSError, ValueError):
            continue
        if (build / "deployed.json").is_file() and sources_now(recorded) == recorded:
            build.touch()  # used now: the newest, whatever commit first built it
            return build
    return None


def artifact_cache() -> Path:
    """`.asv/artifact-cache/<environment>/`: one folder per entry, holding its builds by the
    code they ran (`built_by_this_code`), so another torch never loads an artifact built by
    another and a commit that changes none of a build's sources loads it. Outside an asv
    environment (`-E existing` sets neither environment nor commit): the run's own folder,
    or `UNET_BENCH_ARTIFACT_CACHE`, a folder whose caller vouches that one torch uses it
    (`unet-decoder noise`: a temporary folder shared by the asv runs of one measurement).
    It names a place, never a result."""
    if os.environ.get("UNET_BENCH_ARTIFACT_CACHE"):
        folder = Path(os.environ["UNET_BENCH_ARTIFACT_CACHE"])
    elif "ASV_ENV_NAME" not in os.environ:
        return run_scoped_cache("artifacts")
    else:
        folder = Path(os.environ.get("ASV_CONF_DIR", ".")) / ".asv" / "artifact-cache"
        folder = folder / os.environ["ASV_ENV_NAME"]
        for old in folder.glob("code-*"):  # the layout before builds were keyed by sources
            shutil.rmtree(old, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _keep_newest_builds(entry: Path) -> None:
    """Remove the builds of `entry` beyond the `KEPT_VERSIONS` newest (a resnet34 entry is
    ~25-90 MB)."""
    for old in _builds(entry)[KEPT_VERSIONS:]:
        shutil.rmtree(old, ignore_errors=True)


def weights_digest(module: torch.nn.Module) -> str:
    """The project's own weights hash; builds that predate it get the same loop here."""
    if api.state_digest is not None:
        return api.state_digest(module)[:16]
    digest = hashlib.sha256(repr(()).encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def compiled_packages(entry: Path) -> dict[str, dict]:
    """The AOTInductor packages already built for `entry`, by the digest of the program they
    compiled: a build whose sources changed (a refactor, a docstring) but whose exported
    program did not links one of them instead of compiling it again."""
    found = {}
    for build in reversed(_builds(entry)) if entry.is_dir() else []:
        try:
            record = json.loads((build / "deployed.json").read_text())
            package = build / record["file"]
            program = record.get("program")
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if program and package.is_file():
            try:
                seconds = json.loads((build / "build.json").read_text())["build_seconds"]
            except (OSError, ValueError, KeyError):
                seconds = None
            found[program] = {"package": str(package), "build": build.name,
                              "build_seconds": seconds}  # fmt: skip
    return found


def build_in_child(m, backend: str, names: list[str], x: torch.Tensor, threads: int,
                   calibration: str | None, entry: Path) -> Path:  # fmt: skip
    """Build the artifact in a child process and file it under `entry` as
    `build-<digest of its sources>`, whole or not at all; return that folder."""
    label = "+".join([backend, *names])
    entry.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=entry, prefix=".staging."))
    try:
        torch.save({"state": m.state_dict(), "x": x}, staging / "inputs.pt")
        args = {"encoder": m.encoder_name, "num_classes": m.num_classes, "names": names,
                "backend": backend, "threads": threads, "calibration": calibration,
                "inputs": str(staging / "inputs.pt"),
                "folder": str(staging / "artifact"),
                "imported": str(staging / "imported.json"),
                "packages": compiled_packages(entry),
                "onnx_cache": None if backend == "torch"
                else str(run_scoped_cache("onnx"))}  # fmt: skip
        done = subprocess.run([sys.executable, str(CHILD), json.dumps(args)],
                              capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            last = done.stderr.strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"building the {label} artifact failed: {last[0]}")
        imported = json.loads((staging / "imported.json").read_text())
        sources = json.dumps(sources_now([*imported, CHILD_SOURCE]), sort_keys=True, indent=1)
        (staging / "artifact" / SOURCES).write_text(sources)
        folder = entry / f"build-{hashlib.sha256(sources.encode()).hexdigest()[:12]}"
        try:
            (staging / "artifact").rename(folder)  # whole or not at all
        except OSError:
            if not (folder / "deployed.json").is_file():  # not a lost race: an error
                raise
        folder.touch()
        _keep_newest_builds(entry)
        return folder
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def deployed(m, backend: str, names: list[str], x: torch.Tensor, threads: int,
             calibration: str | None = None):  # fmt: skip
    """The entry's artifact, built once (see the module docstring) and loaded here; None for
    eager sets, and on commits that predate artifacts. `calibration`: "synthetic" (the task's
    images, for the trained model) or None (the example input). The loaded model's
    `setup_seconds` is the build's own time. A cached artifact made on another machine (a
    copied `.asv`, a cache restored on another CPU) is built again here, not refused: the
    folder is a cache, and the numbers must be this machine's."""
    if api.load_deployed is None or api.kind_of(backend, names) == "torch-eager":
        return None
    label = "+".join([backend, *names])
    shape = "x".join(map(str, x.shape))
    calibrated = f"-{calibration}" if calibration else ""
    entry = artifact_cache() / f"{label}-{shape}-{threads}t-{weights_digest(m)}{calibrated}"
    build = (m, backend, names, x, threads, calibration, entry)
    folder = built_by_this_code(entry) or build_in_child(*build)
    try:
        loaded = api.load_deployed(folder)
    except api.ArtifactMismatchError:
        shutil.rmtree(folder, ignore_errors=True)
        folder = build_in_child(*build)
        loaded = api.load_deployed(folder)
    try:
        built = json.loads((folder / "build.json").read_text())["build_seconds"]
    except (OSError, ValueError, KeyError):
        built = None
    loaded.setup_seconds = built
    return loaded
