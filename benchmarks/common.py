"""Shared setup for the asv suites: one fixed grid, models built once per process.

The grid is fixed in code, never by environment variables: every setting that changes a
number is either a parameter (encoder, flags; input shape and threads in `Scaling`) or part
of the benchmark's identity (1x3x256x256 and 2 threads for `Forward` and `Metrics`; change
them only with a `version` bump). Choose subsets with asv's regex over `name(params)`, e.g.
`asv run -b "time_forward\\('resnet34', 'best_compiled'\\)"`; `unet_decoder.tracking.selections`
names the ones the PR gate and the nightly job use. A grid change rewrites asv's
benchmarks.json and `asv publish` then drops stored results that no longer match it.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

import torch

from unet_decoder import FLAGS, UNet, optimize
from unet_decoder.errors import FlagError

# asv runs today's benchmarks against every commit's own build, older ones included: import
# from the layout grouped by concern, falling back to the flat modules of earlier commits.
# measure is re-exported for metrics.py and model.py.
try:
    from unet_decoder.passes import check_applicable, parse_flags
    from unet_decoder.tracking import measure
except ImportError:
    from unet_decoder.optimize import check_applicable, parse_flags

    from unet_decoder import measure  # noqa: F401

warnings.filterwarnings("ignore", category=UserWarning)

#: The deployment engines, on our model exported after the rewrites that apply (reparam,
#: fuse_bn): name -> (backend, precision flags). Same encoders, input, threads and metrics as
#: the torch sets, so the dashboard shows them side by side.
ENGINE_SETS = {
    "onnxruntime": ("onnxruntime", []),
    "onnxruntime_int8": ("onnxruntime", ["int8"]),
    "openvino": ("openvino", []),
    "openvino_bf16": ("openvino", ["bf16"]),
    "openvino_int8": ("openvino", ["int8"]),
}

#: One encoder of each kind: 5-level CNN, depthwise CNN, reparameterizable, stride-4-first;
#: and timm's tiny test_resnet, a cheap probe of per-call overhead that the tests select.
ENCODERS = ["resnet34", "efficientnet_b0", "mobileone_s0", "convnext_atto", "test_resnet"]
FLAG_SETS = ["none", "inference_mode", "channels_last", "fuse_bn", "reparam", "bf16",
             "best_eager", "best_compiled", "best_int8", "best_bf16",
             *ENGINE_SETS]  # fmt: skip
SIZE = 256
THREADS = 2

# best_* aliases: every exact pass that applies to the encoder (reparam only where it has
# reparameterizable blocks), plus the named extra. Resolved per encoder, always the same way.
BEST = {
    "best_eager": ["reparam", "fuse_bn", "channels_last", "inference_mode"],
    "best_compiled": ["reparam", "fuse_bn", "channels_last", "compile", "inference_mode"],
    "best_int8": ["reparam", "fuse_bn", "channels_last", "int8", "inference_mode"],
    "best_bf16": ["reparam", "fuse_bn", "channels_last", "bf16", "compile", "inference_mode"],
}


def _compile_cache() -> None:
    """A persistent inductor cache per asv environment (torch version) and commit, so another
    torch or commit never reuses an artifact. With freezing (every compiled set) torch 2.14
    bypasses its FX graph and AOTAutograd caches, so what later rounds reuse is the compiled
    kernels only: compile gets cheaper, not free (README: "Repeats are cheaper")."""
    if "TORCHINDUCTOR_CACHE_DIR" in os.environ or "ASV_ENV_NAME" not in os.environ:
        return
    root = Path(os.environ.get("ASV_CONF_DIR", ".")) / ".asv" / "compile-cache"
    commit = os.environ.get("ASV_COMMIT", "no-commit")[:12]
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(root / os.environ["ASV_ENV_NAME"] / commit)


_compile_cache()
_models: dict[str, UNet] = {}
_timed: dict[str, tuple[UNet, str | None]] = {}
_runners: dict[tuple, object] = {}
_warned = False


def warn_if_busy(window: float = 0.25) -> None:
    """Say so in asv's log (stderr) when other processes are using the CPU, once a process.

    The load average cannot tell: on a machine that runs benchmarks back to back it counts the
    previous benchmark. What other processes (not ours, nor our compile workers) take during
    a short window just before measuring can.
    """
    global _warned
    if _warned:
        return
    _warned = True
    try:
        from unet_decoder.tracking.measure import BUSY_OTHERS_PCT, OtherProcessesCPU
    except ImportError:  # an older commit's build
        return
    import time

    watch = OtherProcessesCPU().start()
    time.sleep(window)
    others = watch.stop()
    if others is not None and others > BUSY_OTHERS_PCT:
        print(f"unet-decoder: WARNING other processes used {others:.0f}% of the CPU just before "
              "measuring: these numbers are noise; rerun on a quiet machine.",
              file=sys.stderr)  # fmt: skip


def model(encoder: str) -> UNet:
    if encoder not in _models:
        torch.manual_seed(0)
        _models[encoder] = UNet(encoder).eval()
    return _models[encoder]


def timed_model(encoder: str) -> tuple[UNet, str | None]:
    """The model the timing suites run, and how its int8 is calibrated: the encoder's UNet
    trained on the synthetic task (cached once per machine), calibrated on the task's images,
    the same weights `Metrics` judges, so one artifact serves both and the accuracy on the
    dashboard is the accuracy of what was timed. Commits from before trained weights: the
    random-init model, calibrated on the timing input."""
    if encoder not in _timed:
        try:
            from unet_decoder.tracking.bench import synthetic_subject  # noqa: F401
            from unet_decoder.training import trained_unet
        except ImportError:
            _timed[encoder] = (model(encoder), None)
        else:
            _timed[encoder] = (trained_unet(encoder).model.eval(), "synthetic")
    return _timed[encoder]


def example_input(batch: int = 1, size: int = SIZE) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(batch, 3, size, size, generator=generator)


def resolve(encoder: str, flags: str) -> tuple[str, list[str]]:
    """(backend, concrete flag list) for a grid entry; NotImplementedError (asv: n/a) if the
    flags do not apply to the encoder or this commit's build has no such backend."""
    m = model(encoder)
    backend = "torch"
    if flags in ENGINE_SETS:
        backend, extra = ENGINE_SETS[flags]
        try:
            from unet_decoder.engines.deploy import BACKENDS, MODEL_REWRITES
            from unet_decoder.engines.export import EngineUnavailableError
        except ImportError:
            raise NotImplementedError("this commit has no engine backends") from None
        # the first engine commits have no Backend.require: they check while building
        check_installed = getattr(BACKENDS[backend], "require", lambda what: None)
        try:
            check_installed(f"the {flags} entry")
        except EngineUnavailableError as e:
            raise NotImplementedError(str(e)) from None
        names = [f for f in MODEL_REWRITES if FLAGS[f].applies_to(m)] + extra
        # where the engine would not really run this precision on this CPU (OpenVINO bf16
        # without BF16 kernels): n/a, not an fp32 number under the bf16 name
        from unet_decoder.engines import deploy

        try:
            getattr(deploy, "check_cpu", lambda backend, names: None)(backend, names)
        except FlagError as e:
            raise NotImplementedError(str(e)) from None
    elif flags in BEST:
        names = [f for f in BEST[flags] if FLAGS[f].applies_to(m)]
    else:
        names = parse_flags(flags)
    try:
        check_applicable(m, names)
    except FlagError as e:
        raise NotImplementedError(str(e)) from None
    if backend == "torch" and "bf16" in names and not cpu_has_native_bf16():
        raise NotImplementedError(
            "bf16 is n/a on this CPU: no avx512_bf16 or amx_bf16, so torch would emulate it, "
            "slower than fp32, which says nothing about bf16 on a CPU that has it"
        )
    return backend, names


def cpu_has_native_bf16() -> bool:
    """Whether torch's bf16 convolutions run in hardware here (avx512_bf16 or amx_bf16), read
    by the benchmarks themselves so that every commit's build gets the same answer on one
    machine (`unet_decoder.machine.has_native_bf16` is newer than much of the history).
    Emulated, a resnet34 forward's first call took 33 s in a quick run on a 2-core AVX2 machine, and
    every run of the grid would time it and judge it on 16 images."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return True  # not Linux: the engines decide, as before
    return "avx512_bf16" in flags or "amx_bf16" in flags


def runner(encoder: str, flags: str, batch: int = 1, size: int = SIZE, threads: int = THREADS):
    """The optimized `timed_model` for a grid entry: a compiled set or an engine as its
    deployable artifact (built once per environment and code version, see `deployed`), an
    eager set by `optimize` (cheap), once per process."""
    key = (encoder, flags, batch, size, threads)
    if key not in _runners:
        backend, names = resolve(encoder, flags)
        x = example_input(batch, size)
        m, calibration = timed_model(encoder)
        _runners[key] = deployed(m, backend, names, x, threads, calibration) or optimize(
            m, names, x, threads=threads, **engine_options(backend)
        )
    torch.set_num_threads(threads)
    warn_if_busy()
    return _runners[key]


def engine_options(backend: str) -> dict:
    """optimize()/measure_row() keywords for an engine entry: one ONNX export per encoder
    and weights per asv run, shared by its processes, instead of one per process."""
    if backend == "torch":
        return {}
    return {"backend": backend, "onnx_cache": run_scoped_cache("onnx")}


#: Run folders older than this are removed when a benchmark process starts (exports are
#: ~100 MB each and only the run that wrote them reads them).
STALE_RUN_SECONDS = 6 * 3600


def _remove_stale_runs(root: Path) -> None:
    import shutil
    import time

    if not root.is_dir():
        return
    for run in root.iterdir():
        try:
            if time.time() - run.stat().st_mtime > STALE_RUN_SECONDS:
                shutil.rmtree(run, ignore_errors=True)
        except OSError:
            pass


def run_scoped_cache(name: str) -> Path:
    """A folder shared by the processes of one `asv run` (one environment, one commit).

    asv runs every (benchmark, parameters) in its own process, children of one forkserver
    (or of asv itself) per run: that parent's pid and start time identify the run, so the
    six track_ metrics of an entry are measured once, and a rerun measures again.
    """
    parent = os.getppid()
    try:
        started = Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        started = "0"
    run = f"{parent}-{started}-{os.environ.get('ASV_COMMIT', 'x')[:12]}"
    root = Path(tempfile.gettempdir()) / "unet-decoder-asv"
    if not (root / run).exists():
        _remove_stale_runs(root)
    folder = root / run / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def cached_entry(name: str, key: str, compute) -> dict:
    """compute() once per run for this key; later processes of the run read the file."""
    path = run_scoped_cache(name) / f"{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    values = compute()
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(values))
    os.replace(tmp, path)
    return values


#: Code versions whose artifacts are kept per environment (a gate needs 2, a nightly 1 or 2).
KEPT_VERSIONS = 4


def code_digest() -> str:
    """What an artifact's build depends on besides its entry, weights and environment: every
    file of the installed unet_decoder package and this module (which holds the build
    script). Two commits that differ only in docs, tests or other benchmarks share their
    artifacts; any change to the code that builds one gives a new folder."""
    import hashlib

    import unet_decoder

    package = Path(unet_decoder.__file__).resolve().parent
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(package)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def artifact_cache() -> Path:
    """`.asv/artifact-cache/<environment>/code-<digest>/`: another torch (environment) or
    another version of the code that builds it (`code_digest`) never loads an artifact
    built by another, and a commit that changes neither (docs, tests, the gate's docs-only
    side) loads its parent's. Folders beyond the `KEPT_VERSIONS` newest are removed (a
    resnet34 entry is ~25-90 MB). Outside an asv environment (`-E existing` sets neither
    environment nor commit): the run's own folder, or `UNET_BENCH_ARTIFACT_CACHE`, a folder
    whose caller vouches that one build and one torch use it (`unet-decoder noise`: a
    temporary folder shared by the asv runs of one measurement). It names a place, never a
    result."""
    if os.environ.get("UNET_BENCH_ARTIFACT_CACHE"):
        folder = Path(os.environ["UNET_BENCH_ARTIFACT_CACHE"])
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    if "ASV_ENV_NAME" not in os.environ:
        return run_scoped_cache("artifacts")
    import shutil

    env = Path(os.environ.get("ASV_CONF_DIR", ".")) / ".asv" / "artifact-cache"
    env = env / os.environ["ASV_ENV_NAME"]
    folder = env / f"code-{code_digest()}"
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        versions = sorted(env.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in versions[KEPT_VERSIONS:]:
            shutil.rmtree(old, ignore_errors=True)
    else:
        folder.touch()  # used now: the newest, whatever commit first built it
    return folder


def weights_digest(module: torch.nn.Module) -> str:
    """The project's own weights hash; older commits (built by asv from history) predate
    it, so the benchmark keeps a copy of the same loop for them."""
    try:
        from unet_decoder.model.checkpoint import state_digest
    except ImportError:
        import hashlib

        digest = hashlib.sha256(repr(()).encode())
        for name, tensor in module.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
        return digest.hexdigest()[:16]
    return state_digest(module)[:16]


#: Builds an artifact in a child process, from the parent's weights and example input;
#: int8 calibrates on the synthetic task's images when asked. Its build time is kept beside
#: the artifact: `Metrics` tracks it as the entry's setup seconds.
_BUILD = """\
import json, sys, time, torch
from unet_decoder import UNet
from unet_decoder.artifact import build_artifact
a = json.loads(sys.argv[1])
saved = torch.load(a["inputs"])
m = UNet(a["encoder"], num_classes=a["num_classes"])
m.load_state_dict(saved["state"])
calibration = None
if a["calibration"] == "synthetic":
    from unet_decoder.tracking.bench import synthetic_subject
    batch, _, size, _ = saved["x"].shape
    calibration = synthetic_subject(a["encoder"], size, batch).calibration
start = time.perf_counter()
build_artifact(m.eval(), a["names"], saved["x"], a["folder"], backend=a["backend"],
               threads=a["threads"], calibration=calibration, onnx_cache=a["onnx_cache"])
seconds = time.perf_counter() - start
with open(a["folder"] + "/build.json", "w") as f:
    json.dump({"build_seconds": seconds}, f)
"""


def _build_in_child(m: UNet, backend: str, names: list[str], x: torch.Tensor, threads: int,
                    calibration: str | None, folder: Path) -> None:  # fmt: skip
    """Build the artifact into `folder` in a child process, whole or not at all."""
    import shutil
    import subprocess

    label = "+".join([backend, *names])
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        torch.save({"state": m.state_dict(), "x": x}, staging / "inputs.pt")
        args = {"encoder": m.encoder_name, "num_classes": m.num_classes, "names": names,
                "backend": backend, "threads": threads, "calibration": calibration,
                "inputs": str(staging / "inputs.pt"),
                "folder": str(staging / "artifact"),
                "onnx_cache": None if backend == "torch"
                else str(run_scoped_cache("onnx"))}  # fmt: skip
        done = subprocess.run([sys.executable, "-c", _BUILD, json.dumps(args)],
                              capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            last = done.stderr.strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"building the {label} artifact failed: {last[0]}")
        try:
            (staging / "artifact").rename(folder)  # whole or not at all
        except OSError:
            if not (folder / "deployed.json").is_file():  # not a lost race: an error
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def deployed(m: UNet, backend: str, names: list[str], x: torch.Tensor, threads: int,
             calibration: str | None = None):  # fmt: skip
    """Compiled torch sets and the engines, run as the artifact `unet-decoder tune` ships: an
    AOTInductor package, an ONNX Runtime or OpenVINO file, built once per environment, code
    version and entry and loaded by every process (rounds, peakmem, Metrics): compilation is
    paid once, not once per process. It is built in a child process, so a measuring process
    only ever loads: its peak memory and its timings never include a compiler's. None for
    eager sets, and on commits that predate artifacts. `calibration`: "synthetic" (the task's
    images, for the trained model) or None (the example input). The loaded model's
    `setup_seconds` is the build's own time. A cached artifact made on another machine (a
    copied `.asv`, a cache restored on another CPU) is built again here, not refused: the
    folder is a cache, and the numbers must be this machine's."""
    try:
        from unet_decoder.artifact import kind_of, load_deployed
        from unet_decoder.errors import ArtifactMismatchError
    except ImportError:
        return None
    if kind_of(backend, names) == "torch-eager":
        return None
    import shutil

    label = "+".join([backend, *names])
    shape = "x".join(map(str, x.shape))
    calibrated = f"-{calibration}" if calibration else ""
    folder = artifact_cache() / f"{label}-{shape}-{threads}t-{weights_digest(m)}{calibrated}"
    if not (folder / "deployed.json").is_file():
        _build_in_child(m, backend, names, x, threads, calibration, folder)
    try:
        loaded = load_deployed(folder)
    except ArtifactMismatchError:
        shutil.rmtree(folder, ignore_errors=True)
        _build_in_child(m, backend, names, x, threads, calibration, folder)
        loaded = load_deployed(folder)
    try:
        built = json.loads((folder / "build.json").read_text())["build_seconds"]
    except (OSError, ValueError, KeyError):
        built = None
    loaded.setup_seconds = built
    return loaded
