"""What each entry runs, counted: a number with no noise next to every timing.

`track_census` is the total the census counts (aten operators an eager forward dispatches,
AOTInductor kernels and externs, ONNX Runtime graph nodes, OpenVINO primitives); the counts
behind it go to `.asv/census/<environment>/<commit>/` (`api.census_path`), where the gate
compares base and head exactly and reports the delta ("+4 op aten.copy_").

The census is taken where the entry is already loaded: in `time_forward`'s own process
(`file_census`, its setup), from the runner it times, so that counting adds no process that
loads a model or an artifact (on a warm PR gate such processes were 23% of its wall time,
docs/measurements/gate-cost-*.json). `track_census` then reads what that process filed for
this environment and commit, and takes the census itself only where none was filed (a run
that selects the census alone).
"""

import json
import os
import time
from pathlib import Path

from .common import ENCODERS, FLAG_SETS, example_input, resolve, runner, timed_model
from .compat import api


def census_file(encoder: str, flags: str) -> Path | None:
    """Where this entry's census goes for the running asv environment and commit; None
    outside asv, or on a build that takes no census."""
    if api.census_path is None or not {"ASV_ENV_NAME", "ASV_COMMIT"} <= os.environ.keys():
        return None
    return Path(api.census_path(os.environ.get("ASV_CONF_DIR", "."), os.environ["ASV_ENV_NAME"],
                                os.environ["ASV_COMMIT"], encoder, flags))  # fmt: skip


def take(encoder: str, flags: str):
    """The census of exactly what this process times (the runner is cached per process)."""
    m, _ = timed_model(encoder)
    about = {"encoder": encoder, "flags": flags, "commit": os.environ.get("ASV_COMMIT")}
    start = time.perf_counter()
    census = api.take_census(runner(encoder, flags), example_input(), model=m, about=about)
    # what counting cost beside the timing (docs/measurements/gate-cost.py adds it up)
    census.about["seconds"] = round(time.perf_counter() - start, 3)
    return census


def file_census(encoder: str, flags: str) -> int | None:
    """`time_forward`'s setup, after the class's (which loaded the runner): the total of the
    census filed for this asv environment and commit, taken and filed first where there is
    none that still names an existing artifact. None outside asv or on a build without a
    census. Setup time is never timed."""
    path = census_file(encoder, flags)
    if path is None or api.take_census is None:
        return None
    total = filed_total(path)
    if total is None:
        census = take(encoder, flags)
        census.write(path)
        total = census.total
    return total


def filed_total(path: Path) -> int | None:
    """The total of the census filed at `path` for this commit, or None where there is
    none, it is unreadable, names another commit, or names an artifact folder that is gone
    (a cleared artifact cache: the gate would pair a folder that no longer exists). Read as
    plain JSON: the facade of older builds has no census reader."""
    try:
        data = json.loads(path.read_text())
        about, counts = data.get("about", {}), data["counts"]
        total = sum(int(n) for n in counts.values())
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    if about.get("commit") != os.environ.get("ASV_COMMIT"):
        return None
    if "artifact" in about and not Path(about["artifact"]).is_dir():
        return None
    return total


class Census:
    """1x3x256x256, 2 threads, as `Forward`: the census of exactly what it times."""

    params = (ENCODERS, FLAG_SETS)
    param_names = ["encoder", "flags"]
    version = "1"
    timeout = 900

    def setup(self, encoder, flags):
        if api.take_census is None:
            raise NotImplementedError("this commit's build takes no census")
        resolve(encoder, flags)  # n/a (NotImplementedError) where Forward is n/a

    def track_census(self, encoder, flags):
        """Operators, kernels, nodes or primitives one forward runs, all counted."""
        total = file_census(encoder, flags)  # what time_forward filed, or taken now
        return total if total is not None else take(encoder, flags).total

    track_census.unit = "operators"
