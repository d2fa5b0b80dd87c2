"""The deployment engines a user would pick instead: export, ONNX Runtime, OpenVINO.

An exported model must give the eager model's logits at any size, and every engine backend
is held to the same accuracy contract as the torch passes, on trained weights.
"""

import json

import pytest
import torch

from unet_decoder import FlagError, InputError, UNet, export_onnx, optimize
from unet_decoder.cli import main
from unet_decoder.engines.export import CHECK_SHAPES, check_onnx
from unet_decoder.engines.openvino import plugin_runs_bf16
from unet_decoder.passes import EXACT_TOLERANCE, pixel_agreement, relative_error
from unet_decoder.passes.policy import min_agreement
from unet_decoder.passes.registry import FLAGS
from unet_decoder.training import held_out, make_batch
from unet_decoder.training.task import CALIBRATION_SEED

SIZE = 128


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = UNet("test_resnet", num_classes=3).eval()
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "unet.onnx")
    return model, path


def test_one_export_serves_every_batch_and_size_within_1e_4(exported):
    """Dynamic batch, height and width: the pad to the encoder's stride and the crop are in
    the graph, so 250x300 (not a multiple of 32) works from a file exported at 256x256."""
    model, path = exported
    checked = check_onnx(model, path)
    assert [shape for shape, _ in checked] == [(b, 3, h, w) for b, h, w in CHECK_SHAPES]
    for shape, error in checked:
        assert error <= EXACT_TOLERANCE, (shape, error)


def test_openvino_reads_the_same_file(exported):
    import openvino as ov

    model, path = exported
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    x = torch.randn(1, 3, 250, 300)
    with torch.no_grad():
        expected = model(x)
    got = torch.from_numpy(compiled({0: x.numpy()})[compiled.output(0)])
    assert got.shape == expected.shape
    assert relative_error(got, expected) <= EXACT_TOLERANCE


ENGINE_SETS = [
    ("onnxruntime", ["fuse_bn"]),
    ("onnxruntime", ["fuse_bn", "int8"]),
    ("openvino", ["fuse_bn"]),
    ("openvino", ["fuse_bn", "bf16"]),
    ("openvino", ["fuse_bn", "int8"]),
]


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "flags"), ENGINE_SETS,
                         ids=["+".join([b, *f]) for b, f in ENGINE_SETS])  # fmt: skip
def test_every_engine_backend_meets_its_budget_on_trained_weights(
    trained_test_resnet, backend, flags
):
    """Same contract as the torch passes: relative error and pixel agreement against the
    trained fp32 eager model on held-out images, int8 calibrated on other images."""
    images = held_out(SIZE).images
    calibration = list(make_batch(4, SIZE, seed=CALIBRATION_SEED).images.split(1))
    model = trained_test_resnet.model
    if backend == "openvino" and "bf16" in flags and not plugin_runs_bf16():
        # this CPU has no BF16 kernels: OpenVINO would run fp32 and call it bf16
        with pytest.raises(FlagError, match="no BF16 kernels here"):
            optimize(model, flags, example_input=images[:1], backend=backend)
        return
    run = optimize(model, flags, example_input=images[:1], calibration=calibration,
                   backend=backend, threads=2)  # fmt: skip
    with torch.no_grad():
        reference = torch.cat([model(x[None]) for x in images])
    out = torch.cat([run(x[None]) for x in images])
    budget = max(FLAGS[f].tolerance for f in flags)
    error, agreement = relative_error(out, reference), pixel_agreement(out, reference)
    assert error <= budget and agreement >= min_agreement(budget), (error, agreement)
    if budget > EXACT_TOLERANCE:  # reduced precision really ran: not the fp32 graph
        assert error > 1e-5
    assert run.label == "+".join([backend, *flags]) and run.setup_seconds > 0


@pytest.mark.parametrize(
    ("backend", "flags", "message"),
    [
        ("onnxruntime", ["compile"], "torch runtime flag"),
        ("openvino", ["channels_last"], "torch runtime flag"),
        ("onnxruntime", ["bf16"], "no bf16 CPU kernels"),
        ("tensorrt", [], "Unknown backend 'tensorrt'"),
    ],
)
def test_flags_an_engine_cannot_honour_are_refused_in_one_line(backend, flags, message):
    model = UNet("test_resnet").eval()
    with pytest.raises(FlagError, match=message) as caught:
        optimize(model, flags, backend=backend)
    assert "\n" not in str(caught.value)


def test_an_engine_model_refuses_another_shape():
    model = UNet("test_resnet").eval()
    run = optimize(model, [], example_input=torch.randn(1, 3, 64, 64), backend="onnxruntime")
    with pytest.raises(InputError, match=r"built for inputs of shape \(1, 3, 64, 64\)"):
        run(torch.randn(1, 3, 96, 96))


def test_export_command_writes_and_checks_the_file(tmp_path, capsys, trained_test_resnet):
    out = tmp_path / "model.onnx"
    assert main(["export", str(out), "--encoder", "test_resnet",
                 "--checkpoint", str(trained_test_resnet.path)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert out.is_file() and not list(tmp_path.glob(".*.tmp"))
    assert printed.count("relative error") == 3 and "1x3x250x300" in printed
    assert main(["export", str(tmp_path / "model.txt")]) == 2
    assert "must end in .onnx" in capsys.readouterr().err


@pytest.mark.slow
def test_peers_put_the_engines_beside_our_sets_with_a_verdict(tmp_path, capsys):
    """`bench --peers`: ONNX Runtime and OpenVINO at each precision, judged like our rows,
    timed in the same interleaved rounds, and a per-precision verdict printed; smp's Unet on
    the same encoder (timm's, through smp's `tu-`), eager and at its best, in the same table."""
    path = tmp_path / "r.json"
    argv = ["bench", "--encoders", "test_resnet", "--size", "64", "--min-seconds", "0.05",
            "--flags", "fuse_bn+channels_last+int8+inference_mode", "--peers",
            "--json", str(path)]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(path.read_text())
    rows = result["rows"]
    engines = {r["flags"]: r for r in rows if r["backend"] != "torch"}
    # each engine twice: on a plain export (what a user gets exporting the model) and on
    # the rewritten one
    expected = {"onnxruntime", "onnxruntime+int8", "openvino", "openvino+bf16", "openvino+int8",
                "onnxruntime+fuse_bn+concat_free", "onnxruntime+fuse_bn+concat_free+int8",
                "openvino+fuse_bn+concat_free", "openvino+fuse_bn+concat_free+bf16",
                "openvino+fuse_bn+concat_free+int8"}  # fmt: skip
    printed = capsys.readouterr().out
    if plugin_runs_bf16():
        assert engines["openvino+fuse_bn+concat_free+bf16"]["precision"] == "bf16"
        assert engines["openvino+bf16"]["precision"] == "bf16"
    else:  # not an fp32 row under the bf16 name: left out, and the table says why
        expected -= {"openvino+fuse_bn+concat_free+bf16", "openvino+bf16"}
        assert any("openvino+bf16 not run" in note for note in result["skipped"])
        assert "openvino+fuse_bn+concat_free+bf16 not run" in printed
    assert set(engines) == expected, sorted(engines)
    assert all(r["median_ms"] > 0 and r["samples"] >= 10 for r in rows)
    assert "test_resnet int8: torch" in printed
    smp = [r for r in rows if r["model"] == "smp.Unet"]
    assert [r["flags"] for r in smp] == ["none", "channels_last+compile+inference_mode"]
    assert smp[1]["max_rel_error"] <= 1e-4  # compiled smp against eager smp
    assert "vs smp.Unet at its best" in printed


def test_an_export_is_reused_only_for_the_same_weights_and_shape(tmp_path):
    """The asv suites share one export per encoder and weights across a run's processes."""
    from unet_decoder.engines.runner import cached_export

    model = UNet("test_resnet").eval()
    x = torch.randn(1, 3, 64, 64)
    first = cached_export(model, x, tmp_path)
    stamp = first.stat().st_mtime_ns
    assert cached_export(model, x, tmp_path) == first and first.stat().st_mtime_ns == stamp
    assert cached_export(model, torch.randn(1, 3, 96, 96), tmp_path) != first
    with torch.no_grad():
        model.head.bias.add_(1.0)
    assert cached_export(model, x, tmp_path) != first
    assert len(list(tmp_path.glob("*.onnx"))) == 3
