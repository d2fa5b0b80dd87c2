"""Accuracy with real margins: a synthetic task, trained weights, and checks that can fail.

On a random-init UNet every class decision is a coin toss near zero, or one class wins
everywhere, so "pixels unchanged" passes whatever a pass does. These tests show the task
has real classes, that training gives margins, that bf16 and int8 keep their budgets on
trained weights, and that a broken pass is caught there while it slips through on random init.
"""

import pytest
import torch

from unet_decoder import UNet, optimize
from unet_decoder.passes.accuracy import mean_iou, pixel_agreement, relative_error
from unet_decoder.passes.fusion import fold_conv_bn
from unet_decoder.passes.policy import min_agreement
from unet_decoder.passes.registry import (
    BF16_TOLERANCE,
    EXACT_MIN_PIXEL_AGREEMENT,
    INT8_MIN_PIXEL_AGREEMENT,
    INT8_TOLERANCE,
)
from unet_decoder.training import NUM_CLASSES, held_out, make_batch, trained_unet
from unet_decoder.training.task import CALIBRATION_SEED

SIZE = 128  # accuracy checks at a small size keep the tests quick; the task is size-free


def test_the_task_is_deterministic_and_every_class_covers_10_percent():
    batch = held_out()
    again = held_out()
    assert torch.equal(batch.images, again.images) and torch.equal(batch.masks, again.masks)
    share = torch.bincount(batch.masks.flatten(), minlength=NUM_CLASSES) / batch.masks.numel()
    assert len(share) == NUM_CLASSES == 4
    assert (share >= 0.10).all(), share.tolist()
    other = make_batch(4, 256, seed=123)
    assert not torch.equal(other.masks, batch.masks[:4])


def _predictions(model, images):
    with torch.no_grad():
        return torch.cat([model(x[None]) for x in images])


def test_trained_weights_learn_every_class(trained_test_resnet):
    batch = held_out(SIZE)
    logits = _predictions(trained_test_resnet.model, batch.images)
    predicted = logits.argmax(1)
    share = torch.bincount(predicted.flatten(), minlength=NUM_CLASSES) / predicted.numel()
    assert (share >= 0.08).all(), share.tolist()  # no class collapsed
    assert mean_iou(logits, batch.masks, NUM_CLASSES) >= 0.75  # 0.83 measured; 0.9 at 256 px
    assert trained_test_resnet.miou >= 0.85  # as recorded at training time, at 256 px


def test_trained_checkpoints_are_cached_and_reload_identically(trained_test_resnet):
    again = trained_unet("test_resnet")
    assert again.cached and again.path == trained_test_resnet.path
    assert again.miou == trained_test_resnet.miou
    x = held_out(64).images[:1]
    with torch.no_grad():
        assert torch.equal(again.model(x), trained_test_resnet.model(x))
    assert again.path.name.startswith("test_resnet-arch") and "-shapes-v1-" in again.path.name
    assert "torch" in again.path.name


def test_weights_are_keyed_by_the_architecture_they_were_trained_for():
    """A head that changes a decoder width trains its own weights instead of failing to load
    the base's ("13 shape mismatches"); code that builds the same modules keeps the key."""
    from unet_decoder.training.train import architecture_key, checkpoint_name

    torch.manual_seed(0)
    one = UNet("test_resnet", num_classes=NUM_CLASSES)
    torch.manual_seed(1)
    same = UNet("test_resnet", num_classes=NUM_CLASSES)
    wider = UNet("test_resnet", num_classes=NUM_CLASSES, decoder_channels=(256, 128, 64, 48))
    assert architecture_key(one) == architecture_key(same)  # other weights, same architecture
    assert architecture_key(one) != architecture_key(wider)
    names = {checkpoint_name("test_resnet", seed=0, steps=150, architecture=architecture_key(m))
             for m in (one, wider)}  # fmt: skip
    assert len(names) == 2
    assert checkpoint_name("test_resnet", seed=0, steps=150) in names  # this build's default


def _judge(model, flags, images, calibration):
    reference = _predictions(model, images)
    run = optimize(model, flags, example_input=images[:1], calibration=calibration)
    out = torch.cat([run(x[None]) for x in images])
    return relative_error(out, reference), pixel_agreement(out, reference)


@pytest.mark.parametrize(
    ("flags", "tolerance", "floor"),
    [
        (["bf16"], BF16_TOLERANCE, min_agreement(BF16_TOLERANCE)),
        (["fuse_bn", "channels_last", "int8"], INT8_TOLERANCE, INT8_MIN_PIXEL_AGREEMENT),
    ],
    ids=["bf16", "int8"],
)
def test_reduced_precision_meets_its_budget_on_trained_weights(
    trained_test_resnet, flags, tolerance, floor
):
    images = held_out(SIZE).images
    calibration = list(make_batch(4, SIZE, seed=CALIBRATION_SEED).images.split(1))
    error, agreement = _judge(trained_test_resnet.model, flags, images, calibration)
    assert error <= tolerance and agreement >= floor, (error, agreement)


def _broken_fuse_bn(model, x, seed=0):
    """fuse_bn with a bug: every folded conv weight off by ~5% (random, relative)."""
    import copy

    broken = copy.deepcopy(model).eval()
    fold_conv_bn(broken, x)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in broken.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.mul_(1 + 0.05 * torch.randn(m.weight.shape, generator=g))
    return broken


def test_a_broken_pass_is_caught_on_trained_weights_but_not_on_random_init(trained_test_resnet):
    images = held_out(SIZE).images
    # trained weights: the 5% weight error changes enough pixel decisions to fail the floor
    model = trained_test_resnet.model
    broken = _broken_fuse_bn(model, images[:1])
    agreement = pixel_agreement(_predictions(broken, images), _predictions(model, images))
    assert agreement < EXACT_MIN_PIXEL_AGREEMENT, agreement
    # random init: the same bug keeps (nearly) every pixel: the check would wave it through
    torch.manual_seed(0)
    random_init = UNet("test_resnet", num_classes=NUM_CLASSES).eval()
    broken = _broken_fuse_bn(random_init, images[:1])
    agreement = pixel_agreement(_predictions(broken, images), _predictions(random_init, images))
    assert agreement >= EXACT_MIN_PIXEL_AGREEMENT, agreement
