"""Run a deployed artifact where nothing of the test's process is imported."""

import subprocess
import sys

import torch

_CODE = """\
import sys, torch
from unet_decoder import load_deployed
run = load_deployed(sys.argv[1])
x = torch.load(sys.argv[2])
torch.save(torch.cat([run(b[None]) for b in x]), sys.argv[3])
"""


def logits_from_fresh_process(folder, images, workdir):
    """load_deployed(folder) in a new interpreter, called on each image; its logits."""
    inputs, outputs = workdir / "fresh-in.pt", workdir / "fresh-out.pt"
    torch.save(images, inputs)
    subprocess.run([sys.executable, "-c", _CODE, str(folder), str(inputs), str(outputs)],
                   check=True)  # fmt: skip
    return torch.load(outputs)
