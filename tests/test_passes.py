"""The optimization contract: every flag set is as accurate as promised, and misuse is refused.

Tolerances are relative L2 error against the plain fp32 eager model on fresh random input
(`unet_decoder.passes`): exact-math passes 1e-4, bf16 3e-2, int8 INT8_TOLERANCE with a pixel
agreement floor.
"""

import itertools

import pytest
import torch

from unet_decoder import FLAGS, FlagError, InputError, UNet, optimize
from unet_decoder.census.take import take_census
from unet_decoder.passes.accuracy import pixel_agreement, relative_error
from unet_decoder.passes.fusion import find_conv_bn_pairs, fold_conv_bn, multi_branch_blocks
from unet_decoder.passes.registry import (
    BF16_TOLERANCE,
    EXACT_TOLERANCE,
    INT8_MIN_PIXEL_AGREEMENT,
    INT8_TOLERANCE,
)

EAGER_EXACT = ["inference_mode", "channels_last", "fuse_bn", "reparam"]
# the passes that apply to every encoder, reparam aside
EVERY_ENCODER = ["inference_mode", "channels_last", "fuse_bn", "concat_free"]


def _subsets(names):
    return [list(c) for r in range(len(names) + 1) for c in itertools.combinations(names, r)]


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {name: UNet(name, num_classes=3).eval() for name in ("test_resnet", "mobileone_s0")}


def _check(model, flags, tolerance, size=64):
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        reference = model(x)
    run = optimize(model, flags, example_input=x)
    out = run(x.clone())
    error = relative_error(out, reference)
    assert out.shape == reference.shape and out.dtype == torch.float32
    assert error <= tolerance, f"{run.label}: relative error {error:.2e} > {tolerance:.0e}"
    return out, reference


def test_every_flag_is_documented_and_ordered():
    assert list(FLAGS) == [
        "reparam", "fuse_bn", "concat_free", "channels_last", "int8", "bf16", "compile",
        "inference_mode",
    ]  # fmt: skip
    for flag in FLAGS.values():
        assert flag.description and "\n" not in flag.description


@pytest.mark.parametrize("flags", _subsets(EAGER_EXACT), ids=lambda f: "+".join(f) or "none")
def test_exact_flag_sets_match_fp32_eager_on_mobileone(models, flags):
    _check(models["mobileone_s0"], flags, EXACT_TOLERANCE)


@pytest.mark.parametrize("flags", _subsets(EVERY_ENCODER), ids=lambda f: "+".join(f) or "none")
def test_exact_flag_sets_match_fp32_eager_on_resnet(models, flags):
    _check(models["test_resnet"], flags, EXACT_TOLERANCE)


@pytest.mark.parametrize("encoder", ["test_resnet", "mobileone_s0"])
def test_bf16_stays_within_its_budget(models, encoder):
    _check(models[encoder], ["bf16"], BF16_TOLERANCE)


def test_fuse_bn_leaves_no_batchnorm_after_a_conv(models):
    x = torch.randn(1, 3, 64, 64)
    for name, model in models.items():
        assert len(find_conv_bn_pairs(model, x)) > 10, name
        run = optimize(model, ["fuse_bn"], example_input=x)
        assert run.notes["folded_conv_bn"] > 10
        assert find_conv_bn_pairs(run.module, x) == [], name
        # the decoder's BatchNorms are gone too, not only the encoder's
        decoder_bns = [
            m for m in run.module.decoder.modules() if isinstance(m, torch.nn.BatchNorm2d)
        ]
        assert decoder_bns == []


@pytest.mark.parametrize("folded", [False, True], ids=["after BatchNorm", "folded"])
def test_concat_free_is_exact_and_runs_no_concat(folded):
    """The decoder's concatenations are gone and the logits are those of fp32 eager, on odd
    sizes, batch 2 and BatchNorm statistics far from identity, with or without fuse_bn."""
    torch.manual_seed(0)
    model = UNet("test_resnet", num_classes=3).eval()
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 3, 67, 45)
    plain = take_census(optimize(model, [], example_input=x), x)
    assert plain.counts["op aten.cat"] == len(model.decoder.blocks)
    flags = ["fuse_bn", "concat_free"] if folded else ["concat_free"]
    run = optimize(model, flags, example_input=x)
    assert run.notes["concats_removed"] == len(model.decoder.blocks)
    assert "op aten.cat" not in take_census(run, x).counts
    with torch.no_grad():
        error = relative_error(run(x), model(x))
    assert error <= EXACT_TOLERANCE, error


def test_concat_free_applies_to_unet_decoders_only():
    with pytest.raises(FlagError, match="'concat_free' does not apply"):
        optimize(torch.nn.Conv2d(3, 3, 1), ["concat_free"])


def test_reparam_leaves_no_multi_branch_block(models):
    model = models["mobileone_s0"]
    assert len(multi_branch_blocks(model)) >= 10
    run = optimize(model, ["reparam"])
    assert multi_branch_blocks(run.module) == []


def test_optimize_never_modifies_the_callers_model(models):
    model = models["mobileone_s0"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimize(model, ["reparam", "fuse_bn", "channels_last"])
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_the_exact_tolerance_catches_a_broken_fold(models):
    # A fold whose scale is off by 0.1% in one layer is the kind of bug the contract exists for.
    model = models["test_resnet"]
    x = torch.randn(1, 3, 64, 64)
    run = optimize(model, ["fuse_bn"], example_input=x)
    conv = run.module.get_submodule(find_conv_bn_pairs(model, x)[-1][0])
    with torch.no_grad():
        conv.weight.mul_(1.001)
        error = relative_error(run(x), model(x))
    assert error > EXACT_TOLERANCE


def test_fold_count_matches_pairs():
    model = UNet("test_resnet").eval()
    x = torch.randn(1, 3, 64, 64)
    pairs = find_conv_bn_pairs(model, x)
    assert fold_conv_bn(model, x) == len(pairs)


def test_unknown_flag_is_refused_with_a_suggestion(models):
    with pytest.raises(FlagError, match="Did you mean fuse_bn"):
        optimize(models["test_resnet"], ["fuse_bnn"])


def test_inapplicable_flag_names_flag_and_encoder(models):
    with pytest.raises(FlagError) as err:
        optimize(models["test_resnet"], ["reparam"])
    assert "'reparam'" in str(err.value) and "'test_resnet'" in str(err.value)


def test_conflicting_precisions_are_refused(models):
    with pytest.raises(FlagError, match="conflict"):
        optimize(models["test_resnet"], "int8+bf16")


def test_flags_accept_strings_and_report_canonical_order(models):
    run = optimize(models["test_resnet"], "inference_mode,channels_last+fuse_bn", threads=1)
    assert run.flags == ["fuse_bn", "channels_last", "inference_mode"]
    assert run.label == "fuse_bn+channels_last+inference_mode"
    assert run.threads == 1 == torch.get_num_threads()
    torch.set_num_threads(2)


def test_optimized_model_checks_its_input(models):
    run = optimize(models["test_resnet"], ["channels_last"])
    with pytest.raises(InputError, match="in_chans=3"):
        run(torch.randn(1, 1, 64, 64))


@pytest.mark.slow
def test_compiled_best_exact_set_matches_fp32_eager(models):
    _check(
        models["test_resnet"], ["fuse_bn", "channels_last", "compile", "inference_mode"],
        EXACT_TOLERANCE,
    )  # fmt: skip


@pytest.mark.slow
def test_compiled_concat_free_set_matches_fp32_eager(models):
    _check(
        models["test_resnet"], ["fuse_bn", "concat_free", "channels_last", "compile"],
        EXACT_TOLERANCE, size=48,
    )  # fmt: skip


@pytest.mark.slow
def test_a_compiled_set_runs_at_a_second_shape_in_the_same_process():
    """Compiling at 64x64 and then at 48x48 once made dynamo recompile the UNet as a
    dynamic-shape graph, which inductor could not lower: compiled sets are static-shape."""
    model = UNet("test_resnet", num_classes=3).eval()
    flags = ["fuse_bn", "channels_last", "compile"]
    first = optimize(model, flags, example_input=torch.randn(2, 3, 64, 64))
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        reference = model(x)
    for run in (optimize(model, flags, example_input=x), first):
        assert relative_error(run(x), reference) <= EXACT_TOLERANCE


@pytest.mark.slow
def test_compiled_reparam_set_matches_fp32_eager(models):
    _check(models["mobileone_s0"], ["reparam", "fuse_bn", "compile"], EXACT_TOLERANCE)


@pytest.mark.slow
def test_int8_within_budget_and_agrees_on_pixels():
    model = UNet("resnet18", num_classes=3).eval()
    for flags in (["fuse_bn", "channels_last", "int8"], ["fuse_bn", "concat_free", "int8"]):
        out, reference = _check(model, flags, INT8_TOLERANCE, size=96)
        assert pixel_agreement(out, reference) >= INT8_MIN_PIXEL_AGREEMENT, flags


@pytest.mark.slow
def test_int8_budget_catches_bad_calibration():
    # Calibrated on inputs 1000x too small, activations clip: the budget must notice.
    model = UNet("resnet18", num_classes=3).eval()
    x = torch.randn(1, 3, 96, 96)
    run = optimize(model, ["int8"], example_input=x, calibration=[x * 1e-3])
    with torch.no_grad():
        assert relative_error(run(x), model(x)) > INT8_TOLERANCE


@pytest.mark.slow
def test_int8_is_specialized_to_the_example_shape():
    model = UNet("test_resnet").eval()
    run = optimize(model, ["int8"], example_input=torch.randn(1, 3, 64, 64))
    with pytest.raises(InputError, match="exported for inputs of shape"):
        run(torch.randn(1, 3, 96, 96))


@pytest.mark.slow
def test_int8_on_unreparameterized_mobileone_says_to_add_reparam(models):
    with pytest.raises(FlagError, match="reparam"):
        optimize(models["mobileone_s0"], ["int8"])


def test_int8_uses_7_bit_activations_where_the_cpu_lacks_vnni(monkeypatch):
    """Without VNNI, x86 int8 kernels sum u8 x s8 pairs in saturating int16 (torchao: "set
    reduce_range=True on earlier CPUs without VNNI"); with it, the full 8 bits are safe."""
    from unet_decoder import machine

    monkeypatch.setattr(machine, "cpu_flags", lambda: ["avx2", "fma"])
    assert machine.int8_needs_reduced_range()
    for vnni in ("avx512_vnni", "avx_vnni", "amx_int8"):
        monkeypatch.setattr(machine, "cpu_flags", lambda v=vnni: ["avx2", v])
        assert not machine.int8_needs_reduced_range()
