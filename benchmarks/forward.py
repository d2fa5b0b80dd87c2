"""Steady-state speed and process memory of one forward, per encoder and flag set."""

from .common import ENCODERS, FLAG_SETS, example_input, runner


class Forward:
    params = (ENCODERS, FLAG_SETS)
    param_names = ["encoder", "flags"]
    version = "1"
    timeout = 900
    # One round: each round is a new process that pays torch.compile again. Use
    # `asv run -a rounds=3` (or `asv continuous`, which interleaves) for tighter numbers.
    rounds = 1
    repeat = (5, 20, 10.0)
    warmup_time = 0.5

    def setup(self, encoder, flags):
        # Built, compiled and warmed up here, never in the timed call.
        self.run = runner(encoder, flags)
        self.x = example_input()

    def time_forward(self, encoder, flags):
        """Median wall time of one forward (compile/calibration excluded)."""
        self.run(self.x)

    def peakmem_forward(self, encoder, flags):
        """Peak RSS of the whole process (import torch, model, compile, forward): what a
        deployment pays. See track_forward_peak_mb for the forward's own share."""
        self.run(self.x)
