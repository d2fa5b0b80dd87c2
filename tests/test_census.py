"""The census: what one forward runs, counted. It has no noise, so it is compared exactly, and
its delta names what changed ("-23 op aten.native_batch_norm"), whatever the time says."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from unet_decoder import UNet, build_artifact, load_deployed, optimize
from unet_decoder.census import Census, census_delta, census_path
from unet_decoder.census.take import take_census
from unet_decoder.cli import main
from unet_decoder.errors import UNetDecoderError
from unet_decoder.tracking.second_look import nominees
from unet_decoder.tracking.structure import census_pairs, structure_report, with_structure
from unet_decoder.tracking.verdict import PASS, REGRESSION, STRUCTURE, Verdict, read_asv_output

X = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return UNet("test_resnet").eval()


def _count(module: nn.Module, *kinds: type) -> int:
    return sum(isinstance(m, kinds) for m in module.modules())


#: What each kind calls a convolution: ONNX Runtime node types (any domain), OpenVINO layer
#: types, AOTInductor's oneDNN externs.
CONVOLUTIONS = {"Conv", "FusedConv", "QLinearConv", "ConvTranspose", "Convolution",
                "Deconvolution", "GroupConvolution"}  # fmt: skip


def _convolutions(census: Census) -> int:
    def named(key: str) -> str:
        category, name = key.split(" ", 2)[:2]
        return name.rsplit(".", 1)[-1] if category == "node" else name

    externs = sum(n for key, n in census.counts.items() if key.startswith("extern mkldnn._conv"))
    return externs + sum(n for key, n in census.counts.items() if named(key) in CONVOLUTIONS)


def test_an_eager_census_is_the_same_every_time_and_names_what_a_pass_removed(model):
    plain = take_census(optimize(model, [], X, threads=1), X)
    assert plain == take_census(optimize(model, [], X, threads=1), X)
    assert plain.counts["op aten.convolution"] == _count(model, nn.Conv2d, nn.ConvTranspose2d)
    assert plain.flop > 0 and plain.bytes > 0

    folded = take_census(optimize(model, ["fuse_bn"], X, threads=1), X)
    batch_norms = _count(model, nn.BatchNorm2d)
    assert "op aten.native_batch_norm" not in folded.counts
    delta = census_delta(plain, folded)
    assert f"-{batch_norms} op aten.native_batch_norm" in delta
    assert any(line.endswith("bytes") and line.startswith("-") for line in delta)
    assert census_delta(folded, folded) == []


def test_a_narrower_decoder_moves_the_flops_even_when_no_operator_count_does():
    torch.manual_seed(0)
    wide = UNet("test_resnet", decoder_channels=(256, 128, 64, 32)).eval()
    narrow = UNet("test_resnet", decoder_channels=(256, 128, 64, 16)).eval()
    a, b = (take_census(optimize(m, [], X, threads=1), X) for m in (wide, narrow))
    assert a.counts == b.counts
    (line,) = census_delta(a, b)[:1]
    assert line.endswith("FLOPs") and line.startswith("-")


@pytest.mark.parametrize(
    ("backend", "flags"),
    [("onnxruntime", []), ("onnxruntime", ["int8"]), ("openvino", []), ("openvino", ["int8"])],
)
def test_an_engine_census_counts_every_convolution_it_runs(model, tmp_path, backend, flags):
    folder = tmp_path / "artifact"
    build_artifact(model, flags, X, folder, backend=backend, threads=1)
    census = take_census(load_deployed(folder), X, model=model)
    assert census.kind == backend and census.flop == take_census(
        optimize(model, [], X, threads=1), X).flop  # fmt: skip
    assert _convolutions(census) == _count(model, nn.Conv2d, nn.ConvTranspose2d), census.counts
    if backend == "onnxruntime":  # int8 runs its convolutions as QLinearConv
        assert ("node com.microsoft.QLinearConv" in census.counts) == ("int8" in flags)
    if backend == "openvino":  # the precision each primitive really ran at is in its name
        assert all(
            key.endswith(":i8") or key.endswith(":u8") or "I8" in key
            for key in census.counts
            if "Convolution" in key
        ) == ("int8" in flags)


@pytest.mark.slow
def test_an_aoti_census_reads_the_kernels_and_the_fused_convolutions(model, tmp_path):
    folder = tmp_path / "compiled"
    build_artifact(model, ["fuse_bn", "channels_last", "compile"], X, folder, threads=1)
    census = take_census(load_deployed(folder), X, model=model)
    assert census.kind == "torch-aoti"
    assert _convolutions(census) == _count(model, nn.Conv2d, nn.ConvTranspose2d), census.counts
    # ReLU ran inside its conv: a post-op, not a kernel of its own
    assert census.counts["extern mkldnn._convolution_pointwise[relu]"] > 0
    assert any(key.startswith("kernel cpp_fused_cat") for key in census.counts)
    assert main(["census", str(folder), str(folder)]) == 0
    # no per-operator times below AOTInductor's wrapper: one line that says what to use
    assert main(["census", str(folder), str(folder), "--profile"]) == 2


def test_the_census_cli_prints_the_delta_and_refuses_a_missing_folder(model, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    build_artifact(model, [], X, a, threads=1)
    build_artifact(model, ["fuse_bn"], X, b, threads=1)
    assert main(["census", str(a), str(b), "--json", str(tmp_path / "b.json")]) == 0
    said = capsys.readouterr().out
    assert "op aten.native_batch_norm" in said and said.startswith("-")
    assert Census.read(tmp_path / "b.json").kind == "torch-eager"
    assert main(["census", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nowhere" in err[0]


@pytest.mark.parametrize(("backend", "grown"), [
    ("torch", "op aten.native_batch_norm"),
    ("onnxruntime", "node QLinearConv"),
    ("openvino", "primitive Convolution"),
])  # fmt: skip
def test_a_profile_of_two_artifacts_names_the_operators_whose_time_moved(
    model, tmp_path, backend, grown
):
    """In one process, alternating rounds: torch eager folded against unfolded (batch norms
    come back), engines fp32 against int8 (their int8 convolutions)."""
    from unet_decoder.census.profile import profile_delta, profile_pair

    a, b = tmp_path / "a", tmp_path / "b"
    if backend == "torch":
        build_artifact(model, ["fuse_bn"], X, a, threads=1)
        build_artifact(model, [], X, b, threads=1)
    else:
        build_artifact(model, [], X, a, backend=backend, threads=1)
        build_artifact(model, ["int8"], X, b, backend=backend, threads=1)
    times_a, times_b = profile_pair(load_deployed(a), load_deployed(b), X, calls=3, rounds=2)
    assert all(ms >= 0 for ms in [*times_a.values(), *times_b.values()])
    assert sum(times_a.values()) > 0 and sum(times_b.values()) > 0
    assert any(key.startswith(grown) for key in times_b), sorted(times_b)
    lines = profile_delta(times_a, times_b)
    assert lines[-1].startswith("total ") and any(grown in line for line in lines[:-1]), lines


def test_a_file_that_is_not_a_census_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UNetDecoderError, match="is not a census"):
        Census.read(bad)


def _git(repo, *args):
    base = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    return subprocess.run([*base, *args], capture_output=True, text=True, check=True).stdout.strip()


def _two_commits(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    commits = []
    for text in ("a", "b"):
        (repo / "f").write_text(text)
        _git(repo, "add", "f")
        _git(repo, "commit", "-qm", text)
        commits.append(_git(repo, "rev-parse", "HEAD"))
    return repo, commits


def test_the_gate_names_each_entry_whose_census_changed_and_fails_unless_acknowledged(tmp_path):
    repo, (base, head) = _two_commits(tmp_path)
    same = Census("torch-aoti", {"kernel cpp_fused_cat": 4}, flop=100)
    slower = Census("torch-aoti", {"kernel cpp_fused_cat": 4, "kernel cpp_fused_add": 2},
                    flop=108)  # fmt: skip
    env = "virtualenv-py3.11-torch2.14.1"
    for commit, census in ((base, same), (head, slower)):
        census.write(census_path(repo, env, commit, "resnet34", "best_compiled"))
        same.write(census_path(repo, env, commit, "resnet34", "none"))
    Census("torch-eager", {"op aten.add": 1}).write(census_path(repo, env, head, "mobileone_s0",
                                                                "none"))  # fmt: skip

    report = structure_report(census_pairs(repo, repo, "HEAD~1", "HEAD"))
    (change,) = report.changed
    assert (change.entry, change.environment) == ("resnet34 best_compiled", env)
    assert change.delta == ["+2 kernel cpp_fused_add", "+8.0% FLOPs"]
    assert report.same == 1 and report.head_only == [f"mobileone_s0 none [{env}]"]

    failed = with_structure(Verdict(PASS, "no benchmark slower"), report, accepted=False)
    assert failed.kind == STRUCTURE and failed.exit_code == 4
    assert "resnet34 best_compiled" in failed.message
    assert "+2 kernel cpp_fused_add" in failed.message
    told = with_structure(Verdict(PASS, "no benchmark slower"), report, accepted=True)
    assert told.passed and "acknowledged" in told.message
    slow = with_structure(Verdict(REGRESSION, "slower", [("x", "1.2")]), report, accepted=True)
    assert slow.kind == REGRESSION and "+2 kernel cpp_fused_add" in slow.message
    summary = report.markdown(accepted=False)
    assert "1 entry changed, 1 unchanged" in summary and "no census of the base" in summary
    # nothing changed: the verdict is the timing's alone
    quiet = structure_report(census_pairs(repo, repo, "HEAD~1", "HEAD~1"))
    assert not quiet.changed and with_structure(Verdict(PASS, "ok"), quiet, accepted=False).passed


CENSUS_ROW = (
    "| +        | 120                        | 250                       |    2.08 | "
    "census.Census.track_census('test_resnet', 'none') |"
)


def test_a_census_total_that_asv_calls_slower_is_not_a_timing_regression():
    """asv judges a track_ value by the factor; a count that grew is the census's to report."""
    table = f"| Change | Before | After | Ratio | Benchmark (Parameter) |\n{CENSUS_ROW}\n"
    verdict = read_asv_output(1, table + "PERFORMANCE DECREASED.\n")
    assert verdict.kind == PASS, verdict.message
    name = "census.Census.track_census(test_resnet, none) [ci/env]"
    assert nominees({name: [120.0]}, {name: [250.0]}, 1.05) == []


_ASV_CENSUS = """\
import json, os, sys
from pathlib import Path
from benchmarks.census import Census, census_file, file_census
entry = ("test_resnet", "none")
path = census_file(*entry)
file_census(*entry)  # time_forward's setup, in the process that times the entry
filed = json.loads(path.read_text())
# track_census reads what was filed: a count changed in the file is what it returns
filed["counts"]["op aten.convolution"] += 1000
path.write_text(json.dumps(filed))
read = Census().track_census(*entry)
# a file of another commit is not used: the census is taken again, and filed
filed["about"]["commit"] = "another"
path.write_text(json.dumps(filed))
taken = Census().track_census(*entry)
again = json.loads(path.read_text())
print(json.dumps({"seconds": filed["about"]["seconds"], "read": read, "taken": taken,
                  "filed_total": sum(filed["counts"].values()),
                  "again_commit": again["about"]["commit"]}))
"""


def test_the_timing_process_files_the_census_and_track_census_reads_it(
    tmp_path, trained_test_resnet
):
    """The census costs no process of its own in asv: time_forward's setup files it, and
    track_census returns what was filed for this commit, or takes it again."""
    asv = {"ASV_ENV_NAME": "ci-env", "ASV_COMMIT": "abc123", "ASV_CONF_DIR": str(tmp_path)}
    env = {**os.environ, **asv, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "ind")}
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", _ASV_CENSUS], cwd=root, env=env,
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    found = json.loads(out.strip().splitlines()[-1])
    assert found["seconds"] > 0  # what counting cost, recorded beside the counts
    assert found["read"] == found["filed_total"]  # read from the file, not counted again
    assert found["taken"] == found["filed_total"] - 1000  # another commit's file: counted
    assert found["again_commit"] == "abc123"
    assert (tmp_path / ".asv" / "census" / "ci-env" / "abc123" / "test_resnet-none.json").is_file()
