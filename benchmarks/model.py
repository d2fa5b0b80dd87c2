"""Size of the model per encoder: changes here explain changes everywhere else."""

import torch

from .common import ENCODERS, THREADS, example_input, model
from .compat import api


class Model:
    params = ENCODERS
    param_names = ["encoder"]
    version = "1"

    def track_params(self, encoder):
        return sum(p.numel() for p in model(encoder).parameters())

    track_params.unit = "parameters"

    def track_gflop(self, encoder):
        """FLOPs of one forward at the benchmark input size (torch.utils.flop_counter)."""
        return api.count_flops(model(encoder), example_input()) / 1e9

    track_gflop.unit = "GFLOP"

    def track_threads(self, encoder):
        """The intra-op thread count every benchmark runs with (UNET_BENCH_THREADS)."""
        torch.set_num_threads(THREADS)
        return torch.get_num_threads()

    track_threads.unit = "threads"
