"""Run a deployed artifact where nothing of the test's process is imported."""

import os
import subprocess
import sys

import torch

# Ends as asv's benchmark processes do (its forkserver calls os._exit), so that no
# destructor or atexit handler cleans up after the load.
_CODE = """\
import os, sys, torch
from unet_decoder import load_deployed
run = load_deployed(sys.argv[1])
x = torch.load(sys.argv[2])
torch.save(torch.cat([run(b[None]) for b in x]), sys.argv[3])
os._exit(0)
"""


def logits_from_fresh_process(folder, images, workdir):
    """load_deployed(folder) in a new interpreter, called on each image; its logits.

    The child's temporary folder is `workdir / "fresh-tmp"`, for the caller to inspect."""
    inputs, outputs = workdir / "fresh-in.pt", workdir / "fresh-out.pt"
    temp = workdir / "fresh-tmp"
    temp.mkdir(exist_ok=True)
    torch.save(images, inputs)
    env = {**os.environ, "TMPDIR": str(temp),
           "TORCHINDUCTOR_CACHE_DIR": str(workdir / "fresh-inductor-cache")}  # fmt: skip
    subprocess.run([sys.executable, "-c", _CODE, str(folder), str(inputs), str(outputs)],
                   check=True, env=env)  # fmt: skip
    return torch.load(outputs)
