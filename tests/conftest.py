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


@pytest.fixture(scope="session", autouse=True)
def _weights_cache(tmp_path_factory):
    """Trained checkpoints go to one folder per test session: trained once, shared by the
    tests and by the asv and bench subprocesses they start (which inherit the variable),
    never read from or written to the user's own cache."""
    folder = tmp_path_factory.mktemp("weights-cache")
    previous = os.environ.get("UNET_DECODER_CACHE")
    os.environ["UNET_DECODER_CACHE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("UNET_DECODER_CACHE", None)
    else:
        os.environ["UNET_DECODER_CACHE"] = previous


@pytest.fixture(scope="session")
def trained_test_resnet(_weights_cache):
    """timm's tiny test_resnet UNet trained on the synthetic task (~40 s once a session)."""
    from unet_decoder.training import trained_unet

    return trained_unet("test_resnet")


@pytest.fixture(scope="session")
def asv_env_dir(tmp_path_factory):
    """asv environments (~5.5 GB each) shared by the session's scratch repos, removed at the
    end so that test sessions do not pile them up on disk."""
    import shutil

    folder = tmp_path_factory.mktemp("asv-env")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
