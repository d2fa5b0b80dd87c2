"""The one fixed grid of the asv suites, and the models it runs, built once per process.

The grid is fixed in code, never by environment variables: every setting that changes a
number is either a parameter (encoder, flags; input shape and threads in `Scaling`) or part
of the benchmark's identity (1x3x256x256 and 2 threads for `Forward` and `Metrics`; change
them only with a `version` bump). Choose subsets with asv's regex over `name(params)`, e.g.
`asv run -b "time_forward\\('resnet34', 'best_compiled'\\)"`; `unet_decoder.tracking.selections`
names the ones the PR gate and the nightly job use. A grid change rewrites asv's
benchmarks.json and `asv publish` then drops stored results that no longer match it.

The package is reached through `compat.api` alone (today's facade, or an older commit's
layout); compiled sets and engines run as their artifact (`artifacts.deployed`).
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import torch

from .artifacts import deployed
from .compat import api
from .runs import engine_options

warnings.filterwarnings("ignore", category=UserWarning)

#: One encoder of each kind: 5-level CNN, depthwise CNN, reparameterizable, stride-4-first;
#: and timm's tiny test_resnet, a cheap probe of per-call overhead that the tests select.
ENCODERS = ["resnet34", "efficientnet_b0", "mobileone_s0", "convnext_atto", "test_resnet"]
#: Single passes, the best sets (`api.BEST`) and the engines (`api.ENGINE_SETS`), by name.
FLAG_SETS = ["none", "inference_mode", "channels_last", "fuse_bn", "reparam", "bf16",
             "best_eager", "best_compiled", "best_int8", "best_bf16",
             "onnxruntime", "onnxruntime_int8", "openvino", "openvino_bf16",
             "openvino_int8"]  # fmt: skip
SIZE = 256
THREADS = 2
#: What a benchmark process prints (asv's log) when it trained an encoder's weights itself.
RETRAINED = "unet-decoder: NOTE trained"


def _compile_cache() -> None:
    """A persistent inductor cache per asv environment (torch version) and commit, so another
    torch or commit never reuses an artifact. With freezing (every compiled set) torch 2.14
    bypasses its FX graph and AOTAutograd caches, so what later rounds reuse is the compiled
    kernels only: compile gets cheaper, not free."""
    if "TORCHINDUCTOR_CACHE_DIR" in os.environ or "ASV_ENV_NAME" not in os.environ:
        return
    root = Path(os.environ.get("ASV_CONF_DIR", ".")) / ".asv" / "compile-cache"
    commit = os.environ.get("ASV_COMMIT", "no-commit")[:12]
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(root / os.environ["ASV_ENV_NAME"] / commit)


_compile_cache()
_models: dict[str, object] = {}
_timed: dict[str, tuple[object, str | None]] = {}
_runners: dict[tuple, object] = {}
_warned = False


def warn_if_busy(window: float = 0.25) -> None:
    """Say so in asv's log (stderr) when other processes are using the CPU, once a process.

    The load average cannot tell: on a machine that runs benchmarks back to back it counts the
    previous benchmark. What other processes (not ours, nor our compile workers) take during
    a short window just before measuring can.
    """
    global _warned
    if _warned or api.OtherProcessesCPU is None:
        return
    _warned = True
    import time

    watch = api.OtherProcessesCPU().start()
    time.sleep(window)
    others = watch.stop()
    if others is not None and others > api.BUSY_OTHERS_PCT:
        print(f"unet-decoder: WARNING other processes used {others:.0f}% of the CPU just before "
              "measuring: these numbers are noise; rerun on a quiet machine.",
              file=sys.stderr)  # fmt: skip


def model(encoder: str):
    if encoder not in _models:
        torch.manual_seed(0)
        _models[encoder] = api.UNet(encoder).eval()
    return _models[encoder]


def timed_model(encoder: str):
    """The model the timing suites run, and how its int8 is calibrated: the encoder's UNet
    trained on the synthetic task (cached once per machine), calibrated on the task's images,
    the same weights `Metrics` judges, so one artifact serves both and the accuracy on the
    dashboard is the accuracy of what was timed. Commits from before trained weights: the
    random-init model, calibrated on the timing input."""
    if encoder not in _timed:
        if api.trained_unet is None:
            _timed[encoder] = (model(encoder), None)
        else:
            trained = api.trained_unet(encoder)
            if getattr(trained, "cached", True) is False:  # the gate reports it (RETRAINED)
                print(f"{RETRAINED} {encoder} ({trained.path.name}): no cached weights for this "
                      "build's architecture", file=sys.stderr)  # fmt: skip
            _timed[encoder] = (trained.model.eval(), "synthetic")
    return _timed[encoder]


def example_input(batch: int = 1, size: int = SIZE) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(batch, 3, size, size, generator=generator)


def _engine_flags(encoder: str, flags: str) -> tuple[str, list[str]]:
    backend, extra = api.ENGINE_SETS[flags]
    if api.BACKENDS is None:
        raise NotImplementedError("this commit has no engine backends")
    # the first engine commits have no Backend.require: they check while building
    check_installed = getattr(api.BACKENDS[backend], "require", lambda what: None)
    try:
        check_installed(f"the {flags} entry")
    except api.EngineUnavailableError as e:
        raise NotImplementedError(str(e)) from None
    names = [*api.rewrites_for(model(encoder)), *extra]
    # where the engine would not really run this precision on this CPU (OpenVINO bf16
    # without BF16 kernels): n/a, not an fp32 number under the bf16 name
    if api.check_cpu is not None:
        try:
            api.check_cpu(backend, names)
        except api.FlagError as e:
            raise NotImplementedError(str(e)) from None
    return backend, names


def resolve(encoder: str, flags: str) -> tuple[str, list[str]]:
    """(backend, concrete flag list) for a grid entry; NotImplementedError (asv: n/a) if the
    flags do not apply to the encoder or this commit's build has no such backend."""
    m = model(encoder)
    backend = "torch"
    if flags in api.ENGINE_SETS:
        backend, names = _engine_flags(encoder, flags)
    elif flags in api.BEST:
        names = api.best_flags(m, flags)
    else:
        names = api.parse_flags(flags)
    try:
        api.check_applicable(m, names)
    except api.FlagError as e:
        raise NotImplementedError(str(e)) from None
    if backend == "torch" and "bf16" in names and not api.torch_has_native_bf16():
        # emulated, a resnet34 forward's first call took 33 s on a 2-core AVX2 VM, and every
        # run of the grid would time it and judge it on 16 images
        raise NotImplementedError(
            "bf16 is n/a on this CPU: no avx512_bf16 or amx_bf16, so torch would emulate it, "
            "slower than fp32, which says nothing about bf16 on a CPU that has it"
        )
    return backend, names


def runner(encoder: str, flags: str, batch: int = 1, size: int = SIZE, threads: int = THREADS):
    """The optimized `timed_model` for a grid entry: a compiled set or an engine as its
    deployable artifact (built once per environment and code version, see `deployed`), an
    eager set by `optimize` (cheap), once per process."""
    key = (encoder, flags, batch, size, threads)
    if key not in _runners:
        backend, names = resolve(encoder, flags)
        x = example_input(batch, size)
        m, calibration = timed_model(encoder)
        _runners[key] = deployed(m, backend, names, x, threads, calibration) or api.optimize(
            m, names, x, threads=threads, **engine_options(backend)
        )
    torch.set_num_threads(threads)
    warn_if_busy()
    return _runners[key]
