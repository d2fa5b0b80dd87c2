"""What a user relies on from UNet: shapes for every encoder kind, the spec's architecture."""

import pytest
import torch
from torch import nn

from unet_decoder import UNet
from unet_decoder.model.blocks import ConvBlock, UpBlock

# One encoder of each kind the decoder must adapt to, kept tiny so the suite stays fast.
ENCODER_KINDS = {
    "5-level CNN (strides 2..32)": "test_resnet",
    "stride-4-first (convnext)": "test_convnext",
    "NHWC, fixed-size in timm (swin)": "swin_tiny_patch4_window7_224",
    "reparameterizable (mobileone)": "mobileone_s0",
    "depthwise CNN (efficientnet)": "test_efficientnet",
}


@pytest.mark.parametrize("encoder", ENCODER_KINDS.values(), ids=ENCODER_KINDS.keys())
@pytest.mark.parametrize("size", [(64, 64), (61, 77)], ids=["multiple-of-32", "odd"])
def test_logits_have_the_input_size_for_every_encoder_kind(encoder, size):
    model = UNet(encoder, num_classes=3).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, *size))
    assert logits.shape == (2, 3, *size)
    assert torch.isfinite(logits).all()


def test_in_chans_other_than_three():
    model = UNet("test_resnet", num_classes=2, in_chans=1).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 40, 40)).shape == (1, 2, 40, 40)


def test_nhwc_encoder_features_are_permuted_to_nchw():
    model = UNet("swin_tiny_patch4_window7_224").eval()
    assert model.encoder.channels_last_output
    with torch.no_grad():
        features = model.encoder(torch.randn(1, 3, 64, 64))
    assert [f.shape[1] for f in features] == model.encoder.channels
    assert [64 // f.shape[-1] for f in features] == model.encoder.reductions


def test_odd_input_is_zero_padded_bottom_right_then_cropped():
    # The documented contract: an odd input gives exactly the logits of its zero-padded
    # version, cropped back to the input's height and width.
    model = UNet("test_resnet").eval()
    x = torch.randn(1, 3, 50, 37)
    padded = torch.nn.functional.pad(x, (0, 64 - 37, 0, 64 - 50))
    with torch.no_grad():
        assert torch.equal(model(x), model(padded)[..., :50, :37])


@pytest.mark.parametrize(("encoder", "levels"), [("test_resnet", 5), ("test_convnext", 4)])
def test_architecture_is_the_specs_unet(encoder, levels):
    model = UNet(encoder, decoder_channels=(256, 128, 64, 32))
    blocks = list(model.decoder.blocks)
    assert len(blocks) == levels - 1  # one stage per skip
    assert [b.conv[0].out_channels for b in blocks] == [256, 128, 64, 32][: levels - 1]
    skips = model.encoder.channels[::-1][1:]
    for block, skip in zip(blocks, skips, strict=True):
        assert isinstance(block, UpBlock)
        up = block.up
        assert isinstance(up, nn.ConvTranspose2d)
        assert (up.kernel_size, up.stride) == ((2, 2), (2, 2))
        # concatenation: the block's first conv sees upsampled + skip channels
        assert block.conv[0].in_channels == up.out_channels + skip
        assert isinstance(block.conv, ConvBlock)
        kinds = [type(m) for m in block.conv]
        assert kinds == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU] * 2
        convs = [m for m in block.conv if isinstance(m, nn.Conv2d)]
        assert all(c.kernel_size == (3, 3) and c.bias is None for c in convs)
    # final upsample covers the encoder's first stride (2 for 5 levels, 4 for convnext)
    assert model.encoder.reductions[0] == {5: 2, 4: 4}[levels]


def test_gradients_reach_encoder_and_decoder_in_train_mode():
    model = UNet("test_resnet", num_classes=2).train()
    logits = model(torch.randn(2, 3, 64, 64))
    target = torch.randint(0, 2, (2, 64, 64))
    nn.functional.cross_entropy(logits, target).backward()
    params = dict(model.named_parameters())
    assert [n for n, p in params.items() if p.grad is None] == []
    # timm zero-inits each residual block's last BN gamma, so inner residual convs may get an
    # exactly-zero gradient at init; the stem (the path every signal takes) and every decoder
    # and head parameter must not.
    nonzero = {n for n, p in params.items() if p.grad.abs().sum() > 0}
    stem = [n for n in params if n.startswith("encoder.model.conv1")]
    assert stem and set(stem) <= nonzero
    assert {n for n in params if n.startswith(("decoder.", "head."))} <= nonzero


@pytest.mark.parametrize("encoder", ["test_resnet", "test_convnext"])
def test_head_before_upsample_gives_the_papers_logits(encoder):
    """The head runs at the decoder's resolution, then the logits are upsampled: the same
    logits as the paper's order (upsample the features, then the 1x1 conv), to float rounding,
    on odd sizes too (borders and the pad/crop included)."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = UNet(encoder, num_classes=5).eval()
    for m in model.modules():  # non-trivial BN statistics and a head bias
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    nn.init.uniform_(model.head.bias, -1, 1)
    x = torch.randn(2, 3, 61, 77)
    with torch.no_grad():
        ours = model(x)
        stride = model.encoder.output_stride
        padded = F.pad(x, (0, (-77) % stride, 0, (-61) % stride))
        y = model.decoder(model.encoder(padded))
        y = F.interpolate(y, size=padded.shape[-2:], mode="bilinear", align_corners=False)
        papers = model.head(y)[..., :61, :77]
    assert model.encoder.reductions[0] > 1  # the upsample is really there
    assert ((ours - papers).norm() / papers.norm()).item() < 1e-6
