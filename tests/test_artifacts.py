"""Deployable artifacts: a flag set written as a folder that another process loads and runs
with the tuned model's answers, and that refuses a machine it was not made for."""

import copy
import json
from pathlib import Path

import pytest
import torch

from unet_decoder import (
    ArtifactError,
    ArtifactMismatchError,
    InputError,
    UNet,
    build_artifact,
    load_deployed,
)
from unet_decoder.passes import pixel_agreement, relative_error
from unet_decoder.training import held_out, make_batch
from unet_decoder.training.task import CALIBRATION_SEED

from .fresh_process import logits_from_fresh_process

SIZE = 128

#: (backend, flags): one of every kind and precision an artifact can have.
KINDS = [
    ("torch", ["fuse_bn", "channels_last", "inference_mode"]),
    ("torch", ["fuse_bn", "channels_last", "compile"]),
    ("torch", ["fuse_bn", "channels_last", "int8"]),
    ("torch", ["fuse_bn", "bf16", "compile"]),
    ("onnxruntime", ["fuse_bn"]),
    ("onnxruntime", ["fuse_bn", "int8"]),
    ("openvino", ["fuse_bn"]),
    ("openvino", ["fuse_bn", "int8"]),
]


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "flags"), KINDS,
                         ids=["+".join([b, *f]) for b, f in KINDS])  # fmt: skip
def test_an_artifact_reloads_in_a_fresh_process_within_its_budget(
    tmp_path, trained_test_resnet, backend, flags
):
    model = trained_test_resnet.model
    images = held_out(SIZE).images
    calibration = list(make_batch(4, SIZE, seed=CALIBRATION_SEED).images.split(1))
    record = build_artifact(model, flags, images[:1], tmp_path / "art", backend=backend,
                            threads=2, calibration=calibration)  # fmt: skip
    here = load_deployed(tmp_path / "art")
    tuned = torch.cat([here(x[None]) for x in images])
    fresh = logits_from_fresh_process(tmp_path / "art", images, tmp_path)
    # the same file gives the same answers in another process
    assert relative_error(fresh, tuned) <= 1e-5
    # which, ending as asv's benchmark processes do (os._exit), left no folder behind: an
    # unpacked AOTInductor package is 30-100 MB, one per benchmark process (ONNX Runtime's
    # one 51-byte session-id file, rewritten in place, is not a leak)
    assert not [p for p in (tmp_path / "fresh-tmp").iterdir() if p.is_dir()]
    with torch.no_grad():
        reference = torch.cat([model(x[None]) for x in images])
    error, agreement = relative_error(fresh, reference), pixel_agreement(fresh, reference)
    assert error <= record.budget["max_rel_error"], error
    assert agreement >= record.budget["min_agreement"], agreement
    if record.precision != "fp32":  # the reduced precision really is in the file
        assert error > 1e-5
    assert record.input_shape == [1, 3, SIZE, SIZE] and record.threads == 2
    expected_kind = backend if backend != "torch" else (
        "torch-eager" if flags[-1] == "inference_mode" else "torch-aoti")  # fmt: skip
    assert record.kind == expected_kind


@pytest.fixture(scope="module")
def eager_artifact(tmp_path_factory):
    folder = tmp_path_factory.mktemp("artifact") / "eager"
    model = UNet("test_resnet", num_classes=2).eval()
    build_artifact(model, ["fuse_bn"], torch.randn(1, 3, 64, 64), folder, threads=1)
    return folder


def _edit_record(folder, **changes):
    path = folder / "deployed.json"
    data = json.loads(path.read_text())
    original = json.loads(path.read_text())
    for key, value in changes.items():
        data["environment"][key] = value
    path.write_text(json.dumps(data))
    return lambda: path.write_text(json.dumps(original))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"torch": "2.0.0"}, r"torch 2\.0\.0 \(here 2\."),
        # values no x86 or Arm machine reports, so every CPU that runs the suite differs
        ({"cpu_capability": "ZVECTOR"}, r"cpu_capability ZVECTOR \(here "),
        ({"cpu_flags": ["not_a_cpu_flag"]}, r"CPU extensions \(no not_a_cpu_flag"),
    ],
)
def test_an_artifact_from_another_machine_is_refused_in_one_line(eager_artifact, changes,
                                                                 message):  # fmt: skip
    restore = _edit_record(eager_artifact, **changes)
    try:
        with pytest.raises(ArtifactMismatchError, match=message) as caught:
            load_deployed(eager_artifact)
        assert "\n" not in str(caught.value) and "unet-decoder tune" in str(caught.value)
        with pytest.warns(UserWarning, match="tuned for another machine"):
            run = load_deployed(eager_artifact, strict=False)
        assert run(torch.randn(1, 3, 64, 64)).shape == (1, 2, 64, 64)
    finally:
        restore()


def test_a_folder_that_is_not_a_whole_artifact_is_refused(tmp_path, eager_artifact):
    with pytest.raises(ArtifactError, match="does not exist"):
        load_deployed(tmp_path / "nowhere")
    with pytest.raises(ArtifactError, match="not a deployed artifact"):
        load_deployed(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "deployed.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="damaged"):
        load_deployed(broken)
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "deployed.json").write_text((eager_artifact / "deployed.json").read_text())
    with pytest.raises(ArtifactError, match=r"weights\.safetensors is missing"):
        load_deployed(partial)


@pytest.mark.parametrize("damage", ["modified", "truncated", "missing"])
def test_a_modified_truncated_or_missing_file_is_refused_naming_it(tmp_path, eager_artifact,
                                                                    damage):  # fmt: skip
    """An artifact is code that load_deployed runs: every file is checked against the sha256
    deployed.json recorded, and the one that differs is named in one line."""
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(eager_artifact, folder)
    weights = folder / "weights.safetensors"
    data = weights.read_bytes()
    if damage == "modified":
        weights.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    elif damage == "truncated":
        weights.write_bytes(data[: len(data) // 2])
    else:
        weights.unlink()
    expected = "weights.safetensors is missing" if damage == "missing" else (
        r"weights\.safetensors does not match the sha256")  # fmt: skip
    with pytest.raises(ArtifactError, match=expected) as caught:
        load_deployed(folder)
    assert "\n" not in str(caught.value)
    record = json.loads((eager_artifact / "deployed.json").read_text())
    assert set(record["files"]) == {"weights.safetensors"} and len(record["files"][
        "weights.safetensors"]) == 64  # fmt: skip


#: A build in a child process that kills itself (SIGKILL: no cleanup runs) at one point.
_KILLED_BUILD = """\
import os, signal, sys, torch
import safetensors.torch
from unet_decoder import UNet, build_artifact
from unet_decoder.deploy import record

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

if sys.argv[2] == "writing the model":
    real = safetensors.torch.save_file
    def half(state, path, *a, **k):
        real(state, path, *a, **k)
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
        die()
    safetensors.torch.save_file = half
else:  # just before the record would be in place
    record.DeployRecord.write = die
build_artifact(UNet("test_resnet", num_classes=2).eval(), ["fuse_bn"],
               torch.randn(1, 3, 64, 64), sys.argv[1], threads=1)
"""


@pytest.mark.parametrize("moment", ["writing the model", "writing the record"])
def test_a_build_killed_midway_leaves_nothing_that_loads(tmp_path, eager_artifact, moment):
    import shutil
    import subprocess
    import sys

    fresh, earlier = tmp_path / "fresh", tmp_path / "earlier"
    shutil.copytree(eager_artifact, earlier)
    for folder in (fresh, earlier):
        done = subprocess.run([sys.executable, "-c", _KILLED_BUILD, str(folder), moment],
                              capture_output=True, text=True)  # fmt: skip
        assert done.returncode == -9, done.stderr[-2000:]
    with pytest.raises(ArtifactError, match="does not exist"):
        load_deployed(fresh)  # nothing was put in place
    assert load_deployed(earlier).record.files == load_deployed(eager_artifact).record.files
    for leftover in tmp_path.glob(".*.building.*"):  # what a kill leaves: never an artifact
        with pytest.raises(ArtifactError):
            load_deployed(leftover)


def test_build_artifact_never_writes_over_a_folder_of_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ArtifactError, match="not a deployed artifact"):
        build_artifact(UNet("test_resnet").eval(), [], torch.randn(1, 3, 64, 64), tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_an_artifact_takes_only_the_shape_it_was_built_for(eager_artifact):
    run = load_deployed(eager_artifact)
    assert run.input_shape == (1, 3, 64, 64) and run.threads == 1
    with pytest.raises(InputError, match=r"built for inputs of shape \(1, 3, 64, 64\)"):
        run(torch.randn(1, 3, 96, 96))


def test_a_compiled_package_is_reused_only_for_the_same_program(tmp_path, monkeypatch):
    """A build whose exported program digests as an earlier one's links that package instead
    of compiling it (28-62 s per entry here); other weights, another memory format or another
    thread count are another program and compile. The compiler is faked: this is about what
    the key tells apart, the real reuse runs in test_asv."""
    import torch._inductor
    import torch._inductor.config

    compiled = []

    def fake_compile(program, package_path, inductor_configs):
        compiled.append(package_path)
        Path(package_path).write_bytes(f"package {len(compiled)}".encode())

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", fake_compile)
    torch.manual_seed(0)
    model, x = UNet("test_resnet").eval(), torch.randn(1, 3, 64, 64)
    flags = ["fuse_bn", "channels_last", "compile"]

    def build(name, m=model, flags=flags, threads=2, packages=None):
        folder = tmp_path / name
        return folder, build_artifact(m, flags, x, folder, threads=threads, packages=packages)

    first, record = build("first")
    assert len(compiled) == 1 and len(record.program) == 64
    packages = {record.program: first / "model.pt2"}
    again, same = build("again", m=copy.deepcopy(model), packages=packages)
    assert len(compiled) == 1 and same.program == record.program
    assert (again / "model.pt2").read_bytes() == b"package 1"
    # what a real compile leaves in inductor's config: a process that compiled before (tune,
    # these tests) digests as a fresh build child does
    # (inductor's own patch: monkeypatch's undo deletes a config key it did not see set, and
    # every later AOTInductor compile of the session then fails)
    before = dict(torch._inductor.config.aot_inductor.metadata)
    with torch._inductor.config.patch({"aot_inductor.metadata": {"AOTI_CPU_ISA": "AVX2"}}):
        assert build("after a compile", packages=packages)[1].program == record.program
    assert torch._inductor.config.aot_inductor.metadata == before

    other = copy.deepcopy(model)
    with torch.no_grad():
        other.head.weight[0, 0, 0, 0] += 1e-3
    changed = [build("weights", m=other, packages=packages)[1],
               build("layout", flags=["fuse_bn", "compile"], packages=packages)[1],
               build("threads", threads=1, packages=packages)[1]]  # fmt: skip
    assert len(compiled) == 4
    assert len({record.program, *(r.program for r in changed)}) == 4
    assert build("eager", flags=["fuse_bn"])[1].program is None
