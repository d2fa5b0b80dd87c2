"""Deployment: `optimize()` (torch or an engine), and artifacts: a flag set written as a
folder (`build_artifact`), its record (`deployed.json`), and `load_deployed` to run it.

Sits above `engines` and `passes` (it dispatches to and builds with them) and below `tune`
(which chooses what to write) and `bench` (which measures what `optimize` returns).
"""

from .build import build_artifact, copy_artifact, kind_of
from .load import DeployedModel, load_deployed
from .optimize import optimize
from .record import KINDS, RECORD_NAME, DeployRecord, mismatches

__all__ = [
    "KINDS",
    "RECORD_NAME",
    "DeployRecord",
    "DeployedModel",
    "build_artifact",
    "copy_artifact",
    "kind_of",
    "load_deployed",
    "mismatches",
    "optimize",
]
