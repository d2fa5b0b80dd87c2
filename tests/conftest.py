import os
import warnings

import pytest
import torch

# Hubs are unreachable here: fail at once instead of ~45 s of retries.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore", category=UserWarning, module="timm")


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield
