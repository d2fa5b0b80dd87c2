"""What each entry runs, counted: a number with no noise next to every timing.

`track_census` is the total the census counts (aten operators an eager forward dispatches,
AOTInductor kernels and externs, ONNX Runtime graph nodes, OpenVINO primitives); the counts
behind it go to `.asv/census/<environment>/<commit>/` (`api.census_path`), where the gate
compares base and head exactly and reports the delta ("+4 op aten.copy_"). The process
builds nothing new: it loads the artifact the timing rounds load, or applies the eager
passes, and reads the artifact or counts one forward.
"""

import os

from .common import ENCODERS, FLAG_SETS, example_input, runner, timed_model
from .compat import api


class Census:
    """1x3x256x256, 2 threads, as `Forward`: the census of exactly what it times."""

    params = (ENCODERS, FLAG_SETS)
    param_names = ["encoder", "flags"]
    version = "1"
    timeout = 900

    def setup(self, encoder, flags):
        if api.take_census is None:
            raise NotImplementedError("this commit's build takes no census")
        runner(encoder, flags)  # n/a (NotImplementedError) where Forward is n/a

    def track_census(self, encoder, flags):
        """Operators, kernels, nodes or primitives one forward runs, all counted."""
        m, _ = timed_model(encoder)
        about = {"encoder": encoder, "flags": flags, "commit": os.environ.get("ASV_COMMIT")}
        census = api.take_census(runner(encoder, flags), example_input(), model=m, about=about)
        if "ASV_ENV_NAME" in os.environ and "ASV_COMMIT" in os.environ:
            census.write(api.census_path(os.environ.get("ASV_CONF_DIR", "."),
                                         os.environ["ASV_ENV_NAME"], os.environ["ASV_COMMIT"],
                                         encoder, flags))  # fmt: skip
        return census.total

    track_census.unit = "operators"
