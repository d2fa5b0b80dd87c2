"""A deterministic census of what one forward of an entry runs, and what changed between two.

Timing on a shared 2-core VM cannot see a 2% change; counting can see a change of one
operator. The census lists what the program dispatches (eager aten operators), what the
compiled program calls (AOTInductor's generated kernels and oneDNN externs, with their fused
post-ops), or what the engine executes (ONNX Runtime's optimized graph, OpenVINO's runtime
primitives with their precision), plus the FLOPs of the model it was built from. The same
build gives the same census on the same machine and libraries, so a gate compares it exactly.

`record` (no torch) holds the census and its delta, for the gate; `take` counts it.
"""

from .record import Census, census_delta, census_path

__all__ = ["Census", "census_delta", "census_path"]
