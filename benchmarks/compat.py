"""The one place that knows older commits' layouts.

asv runs today's suites against every commit's own build. From the house move on, a build
has `unet_decoder.benchmarking` (one stable facade) and the suites use it as `api`; an older
build gets the same names from where that commit kept them, or None where it had no such
thing (its entries are then n/a). Every fallback lives here, none in the suites.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import SimpleNamespace


def _first(*places: tuple[str, str]):
    """The first `(module, name)` that imports, else None."""
    for module, name in places:
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    return None


#: The best sets as every build before the facade resolved them (the facade's own
#: `passes.policy.BEST` started as this table).
OLDER_BEST = {
    "best_eager": ("reparam", "fuse_bn", "channels_last", "inference_mode"),
    "best_compiled": ("reparam", "fuse_bn", "channels_last", "compile", "inference_mode"),
    "best_int8": ("reparam", "fuse_bn", "channels_last", "int8", "inference_mode"),
    "best_bf16": ("reparam", "fuse_bn", "channels_last", "bf16", "compile", "inference_mode"),
}
OLDER_ENGINE_SETS = {
    "onnxruntime": ("onnxruntime", ()),
    "onnxruntime_int8": ("onnxruntime", ("int8",)),
    "openvino": ("openvino", ()),
    "openvino_bf16": ("openvino", ("bf16",)),
    "openvino_int8": ("openvino", ("int8",)),
}


def _cpu_has_native_bf16() -> bool:
    """/proc/cpuinfo read here, so that every older build gets one answer on one machine."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return True  # not Linux: the engines decide, as before
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _older() -> SimpleNamespace:
    from unet_decoder import FLAGS, UNet, optimize
    from unet_decoder.errors import FlagError

    parse_flags = _first(("unet_decoder.passes", "parse_flags"),
                         ("unet_decoder.optimize", "parse_flags"))  # fmt: skip
    rewrites = _first(("unet_decoder.engines.deploy", "MODEL_REWRITES")) or ()
    has_subjects = _first(("unet_decoder.tracking.bench", "synthetic_subject")) is not None

    def best_flags(model, name):
        return parse_flags([f for f in OLDER_BEST[name] if FLAGS[f].applies_to(model)])

    def rewrites_for(model):
        return [name for name in rewrites if FLAGS[name].applies_to(model)]

    return SimpleNamespace(
        FACADE=0, FLAGS=FLAGS, UNet=UNet, optimize=optimize, FlagError=FlagError,
        BEST=OLDER_BEST, ENGINE_SETS=OLDER_ENGINE_SETS, best_flags=best_flags,
        parse_flags=parse_flags, rewrites_for=rewrites_for,
        check_applicable=_first(("unet_decoder.passes", "check_applicable"),
                                ("unet_decoder.optimize", "check_applicable")),
        count_flops=_first(("unet_decoder.tracking.measure", "count_flops"),
                           ("unet_decoder.measure", "count_flops")),
        BUSY_OTHERS_PCT=_first(("unet_decoder.tracking.measure", "BUSY_OTHERS_PCT")),
        OtherProcessesCPU=_first(("unet_decoder.tracking.measure", "OtherProcessesCPU")),
        # trained weights and their subjects came in together
        trained_unet=_first(("unet_decoder.training", "trained_unet")) if has_subjects else None,
        synthetic_subject=_first(("unet_decoder.tracking.bench", "synthetic_subject")),
        checkpoint_subject=_first(("unet_decoder.tracking.bench", "checkpoint_subject")),
        measure_row=_first(("unet_decoder.tracking.bench", "measure_row")),
        BACKENDS=_first(("unet_decoder.engines.deploy", "BACKENDS")),
        check_cpu=_first(("unet_decoder.engines.deploy", "check_cpu")),
        EngineUnavailableError=_first(("unet_decoder.engines.export", "EngineUnavailableError")),
        state_digest=_first(("unet_decoder.model.checkpoint", "state_digest")),
        kind_of=_first(("unet_decoder.artifact", "kind_of")),
        load_deployed=_first(("unet_decoder.artifact", "load_deployed")),
        build_artifact=_first(("unet_decoder.artifact", "build_artifact")),
        ArtifactMismatchError=_first(("unet_decoder.errors", "ArtifactMismatchError")),
        torch_has_native_bf16=_cpu_has_native_bf16,
    )  # fmt: skip


#: Names the facade gained after it first shipped (FACADE 1), None on builds before them.
LATER_NAMES = ("take_census", "census_path")

try:
    from unet_decoder import benchmarking as api
except ImportError:
    api = _older()
for _name in LATER_NAMES:
    if not hasattr(api, _name):
        setattr(api, _name, None)
