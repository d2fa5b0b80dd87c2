"""`unet-decoder tune` as a user runs it: a ranking, a chosen artifact that another process
loads with the measured answers, and clear refusals before any minute is spent."""

import contextlib
import io
import json

import pytest
import torch

from unet_decoder import UNet, load_deployed
from unet_decoder.cli import main
from unet_decoder.passes import relative_error
from unet_decoder.training import held_out
from unet_decoder.tune import candidates as tune

from .fresh_process import logits_from_fresh_process
from .task_files import write_task_as_files

SIZE = 64


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, trained_test_resnet):
    out = tmp_path_factory.mktemp("tune") / "deployed"
    argv = ["tune", "--encoder", "test_resnet", "--size", str(SIZE), "--min-seconds", "0.2",
            "--out", str(out)]  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()) as printed:  # what the user reads
        code = main(argv)
    return code, out, printed.getvalue()


@pytest.mark.slow
def test_tune_writes_the_fastest_candidate_of_its_final_rounds(tuned, capsys):
    code, out, _ = tuned
    assert code == 0
    report = json.loads((out / "tune.json").read_text())
    candidates = report["candidates"]
    chosen = [c for c in candidates if c["status"] == "chosen"]
    assert len(chosen) == 1
    chosen = chosen[0]
    # every candidate built (a failed build would drop a whole kind from the search)
    assert not [(c["label"], c["reason"]) for c in candidates if c["status"] == "failed"]
    # every candidate timed in the same final rounds was no faster than the chosen one (a
    # screened-out candidate keeps its screening time, from other rounds)
    final = [c for c in candidates if c["status"] in ("chosen", "finalist") or c["baseline"]]
    assert len(final) >= 2 and any(c["baseline"] for c in final)
    assert all(chosen["median_ms"] <= c["median_ms"] for c in final)
    assert chosen["rel_error"] <= chosen["budget"]["max_rel_error"]
    # whatever was not timed says why; every backend was searched
    assert all(c["reason"] for c in candidates if c["status"] not in ("chosen", "finalist"))
    assert {c["kind"] for c in candidates} == {"torch-eager", "torch-aoti", "onnxruntime",
                                               "openvino"}  # fmt: skip
    record = json.loads((out / "deployed.json").read_text())
    assert record["kind"] == chosen["kind"] and record["threads"] == chosen["threads"]
    assert record["measured"]["median_ms"] == chosen["median_ms"]
    assert report["search_seconds"] > 0 and report["reload_rel_error"] == 0.0
    from PIL import Image

    with Image.open(out / "tune.png") as image:
        assert image.format == "PNG" and image.width > 300


@pytest.mark.slow
def test_a_tuned_artifact_reloads_in_a_fresh_process_with_the_measured_answers(
    tuned, tmp_path, trained_test_resnet
):
    _, out, _ = tuned
    record = json.loads((out / "deployed.json").read_text())
    images = held_out(SIZE).images
    fresh = logits_from_fresh_process(out, images, tmp_path)
    with torch.no_grad():
        reference = torch.cat([trained_test_resnet.model(x[None]) for x in images])
    error = relative_error(fresh, reference)
    # the same held-out images, the same error that tune measured and recorded
    assert error == pytest.approx(record["measured"]["rel_error"], rel=1e-3, abs=1e-7)
    assert error <= record["budget"]["max_rel_error"]
    here = load_deployed(out)
    assert relative_error(torch.cat([here(x[None]) for x in images]), fresh) <= 1e-6


@pytest.mark.slow
def test_tune_prints_the_ranking_and_the_choice(tuned):
    code, out, printed = tuned
    assert code == 0
    assert "final rounds" in printed and "Chosen:" in printed and "Search:" in printed
    chosen = json.loads((out / "deployed.json").read_text())
    assert f"{chosen['measured']['median_ms']:.1f} ms" in printed


def test_thread_counts_searched_are_powers_of_two_up_to_the_cores(monkeypatch):
    monkeypatch.setattr(tune, "usable_cores", lambda: 6)
    assert tune.thread_options(None) == [1, 2, 4, 6]
    monkeypatch.setattr(tune, "usable_cores", lambda: 2)
    assert tune.thread_options(None) == [1, 2]
    assert tune.thread_options(3) == [3]


def test_the_budget_decides_which_precisions_are_candidates():
    model = UNet("test_resnet").eval()
    exact = tune.plan_candidates(model, "exact", 2)
    assert {c.precision for c in exact} == {"fp32"} and exact[0].baseline
    assert {(c.kind, c.precision) for c in tune.plan_candidates(model, "int8", 2)} >= {
        ("torch-aoti", "int8"), ("onnxruntime", "int8"), ("openvino", "int8"),
        ("torch-aoti", "bf16"), ("openvino", "bf16"), ("torch-eager", "fp32"),
    }  # fmt: skip
    mobileone = UNet("mobileone_s0").eval()
    assert all("reparam" in c.flags for c in tune.plan_candidates(mobileone, "exact", 2)[1:])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--size", "64", "64", "64"], "--size takes a height and an optional width"),
        (["--size", "16"], "--size must be at least 32"),
        (["--threads", "0"], "--threads must be at least 1"),
        (["--images", "x"], "give it too"),
        (["--min-seconds", "0"], "--min-seconds must be positive"),
    ],
)
def test_bad_options_are_refused_in_one_line_before_any_work(argv, message, capsys, tmp_path):
    assert main(["tune", "--encoder", "test_resnet", "--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_bug_in_our_own_code_surfaces_instead_of_failing_a_candidate(monkeypatch, tmp_path):
    """An engine or compiler that refuses a candidate is reported and the search goes on; a
    TypeError raised in unet_decoder itself is a bug and must not read as "failed"."""
    from unet_decoder.tune import steps

    model = UNet("test_resnet").eval()
    subject = type("S", (), {"timing_input": torch.randn(1, 3, 64, 64), "calibration": None})
    candidate = tune.Candidate("torch", ["fuse_bn"], 1, budget={})

    def engine_failure(*args, **kwargs):  # raised outside our package: a candidate's failure
        raise RuntimeError("the compiler refused this graph")

    monkeypatch.setattr(steps, "build_artifact", engine_failure)
    assert steps.build(candidate, model, subject, tmp_path / "a", tmp_path / "onnx") is None
    assert candidate.status == "failed" and "compiler refused" in candidate.reason

    monkeypatch.undo()
    monkeypatch.setattr("unet_decoder.deploy.build.environment", None)  # our own code breaks
    with pytest.raises(TypeError):
        steps.build(tune.Candidate("torch", ["fuse_bn"], 1, budget={}), model, subject,
                    tmp_path / "b", tmp_path / "onnx")  # fmt: skip


def test_tune_never_writes_over_a_folder_that_is_not_an_artifact(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["tune", "--encoder", "test_resnet", "--out", str(tmp_path)]) == 2
    assert "not a deployed artifact" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.slow
def test_tune_on_your_checkpoint_and_images_at_any_height_and_width(tmp_path, trained_test_resnet):
    write_task_as_files(tmp_path, 8)
    out = tmp_path / "deployed"
    argv = ["tune", "--encoder", "test_resnet", "--checkpoint", str(trained_test_resnet.path),
            "--images", str(tmp_path / "images"), "--masks", str(tmp_path / "masks"),
            "--size", "96", "128", "--budget", "exact", "--threads", "1", "--no-engines",
            "--min-seconds", "0.1", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    record = json.loads((out / "deployed.json").read_text())
    assert record["input_shape"] == [1, 3, 96, 128] and record["precision"] == "fp32"
    assert "6 held-out image(s)" in record["measured"]["weights"]  # 2 of 8 calibrate
    assert record["measured"]["miou"] >= 0.6  # against the masks, at 96x128
    report = json.loads((out / "tune.json").read_text())
    # --budget exact searched fp32 only, --threads 1 one thread count
    assert {c["precision"] for c in report["candidates"]} == {"fp32"}
    assert {c["threads"] for c in report["candidates"]} == {1}
    engines = [c for c in report["candidates"] if c["backend"] != "torch"]
    assert engines and all(c["status"] == "skipped" and "--no-engines" in c["reason"]
                           for c in engines)  # fmt: skip
    run = load_deployed(out)
    assert run(torch.randn(1, 3, 96, 128)).shape == (1, 4, 96, 128)
