"""The names the asv suites (`benchmarks/`) use, in one stable place.

asv runs today's suites against every commit's own build, so every name the suites import is
a promise to later commits: they import this module alone (older builds, which predate it,
go through `benchmarks/compat.py`). A move inside the package changes an import here, never
the suites. Bump `FACADE` when a name's meaning changes.
"""

from .bench.neighbours import BUSY_OTHERS_PCT, OtherProcessesCPU
from .bench.rows import measure_row
from .bench.subjects import checkpoint_subject, synthetic_subject
from .census.record import census_path
from .census.take import count_flops, take_census
from .deploy import build_artifact, kind_of, load_deployed, optimize
from .engines.backends import BACKENDS, ENGINE_SETS, check_cpu
from .engines.export import EngineUnavailableError
from .errors import ArtifactMismatchError, FlagError
from .machine import torch_has_native_bf16
from .model import UNet
from .model.checkpoint import state_digest
from .passes.policy import BEST, best_flags, check_applicable, parse_flags, rewrites_for
from .passes.registry import FLAGS
from .training import trained_unet

#: 2: take_census and census_path (the suites' `Census`)
FACADE = 2

__all__ = [
    "BACKENDS",
    "BEST",
    "BUSY_OTHERS_PCT",
    "ENGINE_SETS",
    "FACADE",
    "FLAGS",
    "ArtifactMismatchError",
    "EngineUnavailableError",
    "FlagError",
    "OtherProcessesCPU",
    "UNet",
    "best_flags",
    "build_artifact",
    "census_path",
    "check_applicable",
    "check_cpu",
    "checkpoint_subject",
    "count_flops",
    "kind_of",
    "load_deployed",
    "measure_row",
    "optimize",
    "parse_flags",
    "rewrites_for",
    "state_digest",
    "synthetic_subject",
    "take_census",
    "torch_has_native_bf16",
    "trained_unet",
]
