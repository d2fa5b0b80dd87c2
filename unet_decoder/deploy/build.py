"""Write a flag set of a UNet as a folder another process can run: the model file and its record.

torch sets that compile (`compile`, `int8`) become an AOTInductor package (torch.export,
then C++ compiled ahead of time with freezing), which loads in milliseconds with no compile
and no timm; other torch sets keep the weights and re-apply their passes at load. Engine sets
are the engine's own file: ONNX (QDQ for int8) for ONNX Runtime, IR for OpenVINO.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from ..errors import ArtifactError, FlagError
from ..passes.policy import budget_of, check_applicable, parse_flags, precision_of
from ..passes.registry import FLAGS, Pipeline, inductor_config
from .program import link_or_copy, program_digest
from .record import KINDS, RECORD_NAME, DeployRecord, environment, sha256_of

#: Flags that only say how a torch module is called; AOTInductor takes care of both.
_CALL_FLAGS = ("compile", "inference_mode")


def kind_of(backend: str, flags: Sequence[str]) -> str:
    """The artifact kind a (backend, flag set) is deployed as."""
    if backend == "torch":
        return "torch-aoti" if {"compile", "int8"} & set(flags) else "torch-eager"
    if backend not in KINDS:
        raise FlagError(f"Unknown backend {backend!r}; pick torch, onnxruntime or openvino.")
    return backend


class _Autocast(nn.Module):
    """bf16 autocast inside the graph, so torch.export records it (a context around the
    export call is not captured); fp32 logits out, as from every other artifact."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.module(x).float()


def _package_aoti(pipeline: Pipeline, path: Path, packages: Mapping[str, str | Path]) -> str:
    """Export and compile into `path`, or link the package in `packages` that compiled the
    same program (`program_digest`); return that digest."""
    from torch._inductor import aoti_compile_and_package

    module = pipeline.module
    if pipeline.autocast_dtype is not None:
        module = _Autocast(module)
    x = pipeline.example_input.contiguous(memory_format=pipeline.memory_format)
    pipeline.compile = True  # inductor_config: freezing, so convs are prepacked constants
    options = {"freezing": True}
    with torch.no_grad(), inductor_config(pipeline):
        program = torch.export.export(module, (x,))
        digest = program_digest(program, options)
        known = packages.get(digest)
        if known is not None and Path(known).is_file():
            link_or_copy(Path(known), path)
        else:
            aoti_compile_and_package(program, package_path=str(path), inductor_configs=options)
    return digest


def _write_engine(model: nn.Module, backend: str, flags: list[str], example_input: torch.Tensor,
                  calibration: list[torch.Tensor], out: Path,
                  onnx_cache: Path | None) -> None:  # fmt: skip
    from ..engines.backends import check_backend, check_cpu
    from ..engines.runner import export_for, rewritten

    check_backend(backend, flags).require(f"A {backend} artifact")
    check_cpu(backend, flags)
    module = rewritten(model, flags, example_input, calibration).module  # the one copy
    precision = precision_of(flags)
    with tempfile.TemporaryDirectory(prefix="unet-decoder-artifact-") as tmp:
        onnx = export_for(module, example_input, Path(tmp), onnx_cache)
        if backend == "onnxruntime":
            from ..engines.onnxruntime import write_model

            write_model(onnx, precision, calibration, out)
        else:
            from ..engines.openvino import prepare, save

            save(prepare(onnx, precision, calibration), out)


def build_artifact(
    model: nn.Module,
    flags: str | Sequence[str] | None,
    example_input: torch.Tensor,
    folder: str | Path,
    *,
    backend: str = "torch",
    threads: int | None = None,
    calibration: Sequence[torch.Tensor] | None = None,
    onnx_cache: str | Path | None = None,
    packages: Mapping[str, str | Path] | None = None,
) -> DeployRecord:
    """Write `model` with `flags` applied (on `backend`) into `folder`, for `example_input`'s
    shape and `threads` intra-op threads; return its record (also written as deployed.json).

    The artifact is built in a folder beside `folder` and renamed into place once its record,
    with every file's sha256, is written: a build killed at any point leaves `folder` as it
    was (absent, or the earlier artifact), never a folder that loads half-built files.

    `model` is not modified. int8 is calibrated on `calibration` (default: the example).
    An AOTInductor package's kernels keep the thread count they were compiled for.
    `packages`: AOTInductor packages compiled before, by their record's `program`; a build
    whose exported program has the same digest links that file instead of compiling again.
    """
    names = parse_flags(flags)
    check_applicable(model, names)
    kind = kind_of(backend, names)
    folder = Path(folder)
    _check_destination(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.building.", dir=folder.parent))
    try:
        record = _build_into(model, names, kind, backend, example_input, staging, threads,
                             calibration, onnx_cache, packages)  # fmt: skip
        _replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return record


def _check_destination(folder: Path) -> None:
    """A new folder, an empty one or an earlier artifact: never someone's other files."""
    if folder.exists() and not folder.is_dir():
        raise ArtifactError(f"{folder} is a file; give a folder for the artifact.")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / RECORD_NAME).is_file():
        raise ArtifactError(
            f"{folder} holds files that are not a deployed artifact; give a new folder."
        )


def _build_into(model: nn.Module, names: list[str], kind: str, backend: str,
                example_input: torch.Tensor, folder: Path, threads: int | None,
                calibration: Sequence[torch.Tensor] | None, onnx_cache: str | Path | None,
                packages: Mapping[str, str | Path] | None) -> DeployRecord:  # fmt: skip
    batches = list(calibration) if calibration is not None else [example_input]
    previous = torch.get_num_threads()
    threads = threads or previous
    torch.set_num_threads(threads)
    try:
        out = folder / KINDS[kind][0]
        program = None
        if kind == "torch-eager":
            from safetensors.torch import save_file

            state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
            save_file(state, str(out))
        elif kind == "torch-aoti":
            pipeline = Pipeline(copy.deepcopy(model).eval(), example_input, batches)
            for name in names:
                if name not in _CALL_FLAGS:
                    FLAGS[name].apply(pipeline)
            program = _package_aoti(pipeline, out, packages or {})
        else:
            _write_engine(model, backend, names, example_input, batches, out,
                          None if onnx_cache is None else Path(onnx_cache))  # fmt: skip
    finally:
        torch.set_num_threads(previous)
    record = DeployRecord(
        kind=kind,
        file=out.name,
        input_shape=list(example_input.shape),
        flags=names,
        precision=precision_of(names),
        threads=threads,
        model={
            "encoder_name": getattr(model, "encoder_name", None),
            "num_classes": getattr(model, "num_classes", None),
            "in_chans": getattr(model, "in_chans", example_input.shape[1]),
            "decoder_channels": list(getattr(model, "decoder_channels", ())),
        },
        environment=environment(kind),
        budget=budget_of(names),
        program=program,
        files={p.name: sha256_of(p) for p in sorted(folder.iterdir()) if p.is_file()},
    )
    record.write(folder)
    return record


def copy_artifact(source: Path, destination: Path) -> None:
    """Put an artifact folder at `destination` whole or not at all: copied beside it, then
    renamed over the previous artifact there (never over a folder that is not one)."""
    destination = Path(destination)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    try:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        _replace(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _replace(staging: Path, destination: Path) -> None:
    """Rename a whole artifact folder over `destination` (an earlier artifact, or nothing)."""
    if destination.exists():
        old = staging.with_name(staging.name + ".old")
        destination.rename(old)
        staging.rename(destination)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(destination)
