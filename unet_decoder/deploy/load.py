"""`load_deployed(folder)`: run an artifact written by `unet-decoder tune` (or `build_artifact`).

Torch tensor in, fp32 torch logits out, whatever the engine. The artifact is checked
against this machine first: another CPU capability or library version is refused in one
line, because the artifact was compiled and chosen for the machine it was measured on.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from ..errors import ArtifactError, InputError
from .record import DeployRecord, check_environment, mismatches


class DeployedModel:
    """A loaded artifact: call it like the model, on inputs of `input_shape`."""

    def __init__(self, record: DeployRecord, runner: Callable[[torch.Tensor], torch.Tensor],
                 threads: int, folder: Path, load_seconds: float) -> None:  # fmt: skip
        self.record = record
        self.runner = runner
        self.threads = threads
        self.folder = folder
        self.load_seconds = load_seconds
        self.input_shape = tuple(record.input_shape)
        self.label = record.label

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or tuple(x.shape) != self.input_shape:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise InputError(
                f"{self.folder} was built for inputs of shape {self.input_shape}, got {got}; "
                "tune again with that --size and --batch."
            )
        y = self.runner(x.detach().float())
        return y.float() if y.dtype != torch.float32 else y

    def __repr__(self) -> str:
        return f"DeployedModel({self.label!r}, threads={self.threads}, {str(self.folder)!r})"


def _torch_threads(threads: int) -> None:
    # torch's thread count is per process: set it on every call, so that artifacts tuned
    # for different counts can be timed side by side in one process.
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


#: The library of a loaded AOTInductor package, as /proc/self/maps names it:
#: <temp folder>/<model name>/data/aotinductor/<model name>/<hash>.wrapper.so
_UNPACKED_AOTI = re.compile(r"(/\S*)/[^/\s]+/data/aotinductor/\S+\.so$", re.MULTILINE)


def _unpacked_aoti_folders() -> set[Path]:
    """The temporary folders that this process's loaded AOTInductor packages were unpacked
    into, read from the libraries it has mapped: the one way to name ours exactly, since
    torch 2.12 unpacks into /tmp/XXXXXX and 2.14 into $TMPDIR/aotinductor_XXXXXX."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:  # not Linux: nothing to find, nothing removed
        return set()
    return {Path(m) for m in _UNPACKED_AOTI.findall(maps)}


def _remove_unpacked(folders: set[Path]) -> None:
    """Delete what loading a package unpacked, once its library is mapped.

    torch deletes the folder only when its loader is destroyed, which a process ending in
    `os._exit` (asv's forkserver runs every benchmark so) never does: each load left 30-100 MB
    in /tmp, gigabytes a night. The mapped library stays valid after its file is gone."""
    temp_roots = {Path(tempfile.gettempdir()).resolve(), Path("/tmp").resolve()}
    for folder in folders:
        if folder.resolve().parent in temp_roots:
            shutil.rmtree(folder, ignore_errors=True)


def _aoti_runner(record: DeployRecord, path: Path, threads: int):
    from torch._inductor import aoti_load_package

    unpacked_before = _unpacked_aoti_folders()
    package = aoti_load_package(str(path))
    _remove_unpacked(_unpacked_aoti_folders() - unpacked_before)
    memory_format = torch.channels_last if "channels_last" in record.flags else None

    def run(x: torch.Tensor) -> torch.Tensor:
        _torch_threads(threads)
        if memory_format is not None:
            x = x.contiguous(memory_format=memory_format)
        with torch.no_grad():
            return package(x)

    return run


def _eager_runner(record: DeployRecord, path: Path, threads: int):
    from ..model import UNet
    from .optimize import optimize

    model = UNet(**record.model, checkpoint_path=path).eval()
    example = torch.zeros(record.input_shape)
    run = optimize(model, record.flags, example_input=example, threads=threads)

    def call(x: torch.Tensor) -> torch.Tensor:
        _torch_threads(threads)
        return run(x)

    return call


def _engine_runner(record: DeployRecord, path: Path, threads: int):
    if record.kind == "onnxruntime":
        from ..engines.onnxruntime import OrtRunner

        return OrtRunner(path, threads)
    from ..engines.openvino import compile_runner

    return compile_runner(path, record.precision, threads)


def load_deployed(
    folder: str | Path, *, threads: int | None = None, strict: bool = True
) -> DeployedModel:
    """Load the artifact in `folder` for this process.

    `threads`: intra-op threads (default: the count it was tuned with). An AOTInductor
    package's kernels were compiled for their count; another one is refused. `strict=False`
    runs an artifact made for another CPU or library version with a warning instead of an
    ArtifactMismatchError (an AOTInductor package may then crash or run slowly).
    """
    folder = Path(folder)
    record = DeployRecord.read(folder)
    if strict:
        check_environment(record, folder)
    else:
        found = mismatches(record)
        if found:
            warnings.warn(f"{folder} was tuned for another machine: {'; '.join(found)}",
                          stacklevel=2)  # fmt: skip
    threads = threads or record.threads
    if threads < 1:
        raise ArtifactError(f"threads must be >= 1, got {threads}")
    if record.kind == "torch-aoti" and threads != record.threads:
        raise ArtifactError(
            f"{folder} is an AOTInductor package compiled for {record.threads} thread(s); "
            f"its kernels cannot use {threads}: tune again with --threads {threads}."
        )
    path = folder / record.file
    start = time.perf_counter()
    if record.kind == "torch-aoti":
        runner = _aoti_runner(record, path, threads)
    elif record.kind == "torch-eager":
        runner = _eager_runner(record, path, threads)
    else:
        runner = _engine_runner(record, path, threads)
    return DeployedModel(record, runner, threads, folder, time.perf_counter() - start)
