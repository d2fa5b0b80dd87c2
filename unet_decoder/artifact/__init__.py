"""Deployable artifacts: a tuned flag set written as a folder, and `load_deployed` to run it.

Sits above `engines` and `passes` (it builds with them) and below `tracking` (tune chooses
what to write).
"""

from .build import build_artifact, copy_artifact, kind_of
from .load import DeployedModel, load_deployed
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
]
