"""Bad input gets one clear line a user can catch; weights load only from local files."""

import pickle

import pytest
import timm
import torch
from safetensors.torch import save_file

from unet_decoder import (
    CheckpointError,
    CheckpointNotFoundError,
    ConfigError,
    EncoderError,
    InputError,
    UNet,
    UNetDecoderError,
    WeightsUnavailableError,
)


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_unknown_encoder_suggests_close_timm_names():
    with pytest.raises(EncoderError) as err:
        UNet("resnet343")
    assert "resnet34" in _one_line(err)
    assert isinstance(err.value, ValueError) and isinstance(err.value, UNetDecoderError)


def test_encoder_without_halving_strides_is_refused():
    with pytest.raises(EncoderError, match="strides"):
        UNet("vit_tiny_patch16_224")


def test_wrong_channel_count_at_forward():
    model = UNet("test_resnet", in_chans=3)
    with pytest.raises(InputError) as err:
        model(torch.randn(1, 1, 32, 32))
    assert "in_chans=1" in _one_line(err)


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 1, 3, 32, 32)])
def test_input_that_is_not_4d(shape):
    with pytest.raises(InputError, match="4D"):
        UNet("test_resnet")(torch.randn(*shape))


@pytest.mark.parametrize(
    "channels", [(8,), (), (256, 0, 64, 32), "256", (256.0, 128, 64, 32)], ids=repr
)
def test_bad_decoder_channels(channels):
    with pytest.raises(ConfigError) as err:
        UNet("test_resnet", decoder_channels=channels)
    _one_line(err)


@pytest.mark.parametrize("kwargs", [{"num_classes": 0}, {"in_chans": -1}])
def test_bad_class_or_channel_count(kwargs):
    with pytest.raises(ConfigError):
        UNet("test_resnet", **kwargs)


def test_missing_checkpoint_file(tmp_path):
    with pytest.raises(CheckpointNotFoundError) as err:
        UNet("test_resnet", checkpoint_path=tmp_path / "nope.safetensors")
    assert "nope.safetensors" in _one_line(err)
    assert isinstance(err.value, FileNotFoundError)


def test_pretrained_without_hub_names_checkpoint_path_as_the_way_out():
    with pytest.raises(WeightsUnavailableError) as err:
        UNet("resnet18", pretrained=True)
    assert "checkpoint_path" in _one_line(err)


def _trained(model: UNet) -> UNet:
    # Make BN statistics non-trivial so a reload that forgot buffers would show.
    model.train()
    with torch.no_grad():
        model(torch.randn(4, model.in_chans, 64, 64))
    return model.eval()


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_whole_model_checkpoint_reloads_to_identical_outputs(tmp_path, suffix):
    model = _trained(UNet("test_resnet", num_classes=2))
    path = tmp_path / f"unet{suffix}"
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, path) if suffix == ".safetensors" else torch.save(state, path)
    reloaded = UNet("test_resnet", num_classes=2, checkpoint_path=path).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), reloaded(x))


def test_encoder_checkpoint_from_a_timm_classifier(tmp_path):
    classifier = timm.create_model("test_resnet", num_classes=10)
    path = tmp_path / "encoder.safetensors"
    save_file({k: v.contiguous() for k, v in classifier.state_dict().items()}, path)
    model = UNet("test_resnet", checkpoint_path=path)
    loaded = model.encoder.model.state_dict()
    expected = classifier.state_dict()
    assert len(loaded) > 50
    assert all(torch.equal(v, expected[k]) for k, v in loaded.items())


def test_checkpoint_for_another_model_names_the_keys(tmp_path):
    path = tmp_path / "unet.safetensors"
    save_file(UNet("test_resnet", num_classes=2).state_dict(), path)
    with pytest.raises(CheckpointError) as err:
        UNet("test_convnext", num_classes=2, checkpoint_path=path)
    message = _one_line(err)
    assert "missing" in message and "unexpected" in message


def test_checkpoint_with_wrong_shapes_names_them(tmp_path):
    path = tmp_path / "unet.safetensors"
    save_file(UNet("test_resnet", num_classes=2).state_dict(), path)
    with pytest.raises(CheckpointError, match=r"shape mismatch.*head\.weight"):
        UNet("test_resnet", num_classes=5, checkpoint_path=path)


class _Payload:
    def __reduce__(self):
        return (print, ("arbitrary code ran",))


def test_pickled_code_is_never_executed(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    with path.open("wb") as f:
        pickle.dump({"conv1.weight": _Payload()}, f, protocol=2)
    with pytest.raises(CheckpointError) as err:
        UNet("test_resnet", checkpoint_path=path)
    _one_line(err)
    assert "arbitrary code ran" not in capsys.readouterr().out
