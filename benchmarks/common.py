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


#: Builds kept per entry and environment (a gate needs 2, a nightly 1 or 2).
KEPT_VERSIONS = 4
#: The file, beside the artifact, that lists what its build ran: `unet_decoder/...` paths
#: (relative to the installed package's parent) and this module, each with its sha256.
SOURCES = "sources.json"
_THIS_MODULE = "benchmarks/common.py"


def _file_digest(path: Path) -> str | None:
    import hashlib

    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return None


def sources_now(listed) -> dict[str, str | None]:
    """The current sha256 of each listed source: the installed package's files and this
    module; None for a file that no longer exists."""
    import unet_decoder

    site = Path(unet_decoder.__file__).resolve().parent.parent
    return {name: _file_digest(Path(__file__) if name == _THIS_MODULE else site / name)
            for name in listed}  # fmt: skip


def _builds(entry: Path) -> list[Path]:
    """The builds of an entry, newest (last used) first."""
    builds = [b for b in entry.iterdir() if b.name.startswith("build-")]
    return sorted(builds, key=lambda b: b.stat().st_mtime, reverse=True)


def built_by_this_code(entry: Path) -> Path | None:
    """The build of `entry` whose recorded sources all read the same today, if any.

    An artifact depends on the code its build ran, not on the whole package: a commit that
    changes the gate, the CLI or the docs builds the same AOTInductor package as its parent,
    and its gate should not pay 28-62 s per entry (here) to compile it again. The build child
    records every `unet_decoder` module it imported (and this module, which holds its
    script); a build is reused only if none of them changed. A file it did not import cannot
    change what it built unless an imported one changes to import it, which changes the
    sources. Another torch is another environment, so another folder (`artifact_cache`).
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
        import shutil

        folder = Path(os.environ.get("ASV_CONF_DIR", ".")) / ".asv" / "artifact-cache"
        folder = folder / os.environ["ASV_ENV_NAME"]
        for old in folder.glob("code-*"):  # the layout before builds were keyed by sources
            shutil.rmtree(old, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _keep_newest_builds(entry: Path) -> None:
    """Remove the builds of `entry` beyond the `KEPT_VERSIONS` newest (a resnet34 entry is
    ~25-90 MB)."""
    import shutil

    for old in _builds(entry)[KEPT_VERSIONS:]:
        shutil.rmtree(old, ignore_errors=True)


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
#: the artifact: `Metrics` tracks it as the entry's setup seconds. A package it links from an
#: earlier build (the same exported program, `compiled_packages`) keeps that build's time: the
#: metric is what building the artifact costs, not what finding it cost.
_BUILD = """\
import inspect, json, os, sys, time, torch
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
known = a["packages"]
reuse = {}  # commits before content keys build every time
if "packages" in inspect.signature(build_artifact).parameters:
    reuse["packages"] = {digest: earlier["package"] for digest, earlier in known.items()}
start = time.perf_counter()
record = build_artifact(m.eval(), a["names"], saved["x"], a["folder"], backend=a["backend"],
                        threads=a["threads"], calibration=calibration,
                        onnx_cache=a["onnx_cache"], **reuse)
seconds = time.perf_counter() - start
build = {"build_seconds": seconds}
earlier = known.get(getattr(record, "program", None))
# linked, not compiled: the very file (a package removed meanwhile is compiled again; a copy,
# on a file system without hard links, counts as a build)
try:
    linked = earlier is not None and os.path.samefile(earlier["package"],
                                                      a["folder"] + "/" + record.file)
except OSError:
    linked = False
if linked:
    build = {"build_seconds": earlier["build_seconds"] or seconds, "linked_from": earlier["build"],
             "link_seconds": seconds}
with open(a["folder"] + "/build.json", "w") as f:
    json.dump(build, f)
# what this build ran of the package, for built_by_this_code
import pathlib
site = pathlib.Path(sys.modules["unet_decoder"].__file__).resolve().parent.parent
imported = sorted(pathlib.Path(module.__file__).resolve().relative_to(site).as_posix()
                  for name, module in list(sys.modules.items())
                  if name.split(".")[0] == "unet_decoder" and getattr(module, "__file__", None))
with open(a["imported"], "w") as f:
    json.dump(imported, f)
"""


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


def _build_in_child(m: UNet, backend: str, names: list[str], x: torch.Tensor, threads: int,
                    calibration: str | None, entry: Path) -> Path:  # fmt: skip
    """Build the artifact in a child process and file it under `entry` as
    `build-<digest of its sources>`, whole or not at all; return that folder."""
    import hashlib
    import shutil
    import subprocess

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
        done = subprocess.run([sys.executable, "-c", _BUILD, json.dumps(args)],
                              capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            last = done.stderr.strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"building the {label} artifact failed: {last[0]}")
        imported = json.loads((staging / "imported.json").read_text())
        sources = json.dumps(sources_now([*imported, _THIS_MODULE]), sort_keys=True, indent=1)
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


def deployed(m: UNet, backend: str, names: list[str], x: torch.Tensor, threads: int,
             calibration: str | None = None):  # fmt: skip
    """Compiled torch sets and the engines, run as the artifact `unet-decoder tune` ships: an
    AOTInductor package, an ONNX Runtime or OpenVINO file, built once per environment, entry
    and version of the code its build runs (`built_by_this_code`), and loaded by every
    process (rounds, peakmem, Metrics): compilation is paid once, not once per process. It
    is built in a child process, so a measuring process only ever loads: its peak memory and
    its timings never include a compiler's. None for eager sets, and on commits that predate
    artifacts. `calibration`: "synthetic" (the task's images, for the trained model) or None
    (the example input). The loaded model's `setup_seconds` is the build's own time. A cached
    artifact made on another machine (a copied `.asv`, a cache restored on another CPU) is
    built again here, not refused: the folder is a cache, and the numbers must be this
    machine's."""
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
    entry = artifact_cache() / f"{label}-{shape}-{threads}t-{weights_digest(m)}{calibrated}"
    build = (m, backend, names, x, threads, calibration, entry)
    folder = built_by_this_code(entry) or _build_in_child(*build)
    try:
        loaded = load_deployed(folder)
    except ArtifactMismatchError:
        shutil.rmtree(folder, ignore_errors=True)
        folder = _build_in_child(*build)
        loaded = load_deployed(folder)
    try:
        built = json.loads((folder / "build.json").read_text())["build_seconds"]
    except (OSError, ValueError, KeyError):
        built = None
    loaded.setup_seconds = built
    return loaded
