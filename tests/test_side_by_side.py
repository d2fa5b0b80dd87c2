"""The gate times a compiled or engine entry's base and head artifacts side by side in one
process: the verdict is on the per-process ratios, so a process's own speed level cancels."""

import json
import shutil
import subprocess
import sys

import pytest
import torch

from unet_decoder import UNet, build_artifact
from unet_decoder.bench.paired import PairedResult
from unet_decoder.census import Census, census_path
from unet_decoder.tracking.side_by_side import (
    CLEARED,
    SAME,
    SLOWER,
    ArtifactPair,
    EagerPair,
    artifact_pairs,
    eager_pairs,
    judge,
    unpaired,
    with_pairs,
)
from unet_decoder.tracking.structure import census_pairs
from unet_decoder.tracking.verdict import PASS, REGRESSION, SUSPICIOUS, Verdict

ENV = "uv-pip-py3.11-torch2.14.1"


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """Two artifacts with different files (folded and not) and a copy of the first."""
    root = tmp_path_factory.mktemp("pairs")
    torch.manual_seed(0)
    model, x = UNet("test_resnet").eval(), torch.randn(1, 3, 64, 64)
    build_artifact(model, ["fuse_bn"], x, root / "folded", threads=1)
    build_artifact(model, [], x, root / "plain", threads=1)
    shutil.copytree(root / "folded", root / "copy")
    return root


def _git(repo, *args):
    base = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    return subprocess.run([*base, *args], capture_output=True, text=True, check=True).stdout.strip()


def test_each_artifact_entry_is_paired_with_the_base_artifact_of_its_environment(
    tmp_path, artifacts
):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    commits = []
    for message in ("base", "head"):
        _git(repo, "commit", "-q", "--allow-empty", "-m", message)
        commits.append(_git(repo, "rev-parse", "HEAD"))
    for commit, folder in zip(commits, ("folded", "plain"), strict=True):
        about = {"artifact": str(artifacts / folder), "python": sys.executable}
        Census("torch-eager", {"op aten.add": 1}, about=about).write(
            census_path(repo, ENV, commit, "test_resnet", "best_compiled"))  # fmt: skip
        # an eager entry names no artifact: asv's processes judge it
        Census("torch-eager", {"op aten.add": 1}).write(
            census_path(repo, ENV, commit, "test_resnet", "none"))  # fmt: skip
    (pair,) = artifact_pairs(census_pairs(repo, repo, "HEAD~1", "HEAD"))
    assert (pair.entry, pair.environment) == ("test_resnet best_compiled", ENV)
    assert (pair.base, pair.head) == (artifacts / "folded", artifacts / "plain")
    assert pair.python == sys.executable  # the interpreter that loaded them: the environment's
    assert pair.benchmark == "forward.Forward.time_forward('test_resnet', 'best_compiled')"
    rows = [(f"{pair.benchmark} [m/{ENV}]", "1.3"), (f"{pair.benchmark} [m/other-env]", "1.2"),
            ("forward.Forward.time_forward('test_resnet', 'none')", "1.2")]  # fmt: skip
    assert unpaired(rows, [pair]) == rows[1:]


def _fake_compare(*ratio_sets):
    """compare_artifacts answering each call with the next set of per-process ratios."""
    answers = list(ratio_sets)

    def compare(a, b, *, processes, blocks, calls, python):
        ratios = answers.pop(0)
        assert len(ratios) == processes
        return PairedResult(str(a), str(b), processes=[{"ratio": r} for r in ratios])

    return compare


def test_a_pair_is_slower_only_when_its_interval_says_so(artifacts):
    pair = ArtifactPair("test_resnet best_compiled", ENV, artifacts / "folded",
                        artifacts / "plain")  # fmt: skip
    slower = judge(pair, compare=_fake_compare([1.07, 1.08, 1.06, 1.07]))
    assert slower.kind == SLOWER and slower.interval[0] > 1 and slower.processes == 4
    same_level = judge(pair, compare=_fake_compare([1.0, 1.01, 0.99, 1.0]))
    assert same_level.kind == CLEARED and same_level.interval[1] < 1.05
    # undecided at 4 processes: 4 more, and still undecided is suspicious, never a pass
    undecided = _fake_compare([0.97, 1.10, 1.0, 1.06], [0.96, 1.09, 1.01, 1.07])
    unsure = judge(pair, compare=undecided)
    assert unsure.kind == SUSPICIOUS and unsure.processes == 8
    copy = ArtifactPair(pair.entry, ENV, artifacts / "folded", artifacts / "copy")
    assert judge(copy, compare=_fake_compare()).kind == SAME


def test_the_real_comparison_runs_in_the_environments_python(artifacts):
    """Nothing faked: the two artifacts' processes, in the interpreter the gate names."""
    pair = ArtifactPair("test_resnet best_compiled", ENV, artifacts / "folded",
                        artifacts / "plain")  # fmt: skip
    found = judge(pair, processes=2, extra=2, blocks=2, calls=2)
    assert found.processes in (2, 4) and found.ratio > 0 and found.kind != SAME


def test_the_gate_verdict_takes_the_pairs_in(artifacts):
    pair = ArtifactPair("test_resnet best_compiled", ENV, artifacts / "folded",
                        artifacts / "plain")  # fmt: skip
    judged = judge(pair, compare=_fake_compare([1.07, 1.08, 1.06, 1.07]))
    failed = with_pairs(Verdict(PASS, "no benchmark slower"), [judged])
    assert failed.kind == REGRESSION and failed.exit_code == 1
    assert "side by side" in failed.message and "test_resnet best_compiled" in failed.message
    assert failed.regressions == [(f"{pair.benchmark} [{ENV}]", "1.070")]
    undecided = _fake_compare([0.97, 1.10, 1.0, 1.06], [0.96, 1.09, 1.01, 1.07])
    unsure = judge(pair, compare=undecided)
    told = with_pairs(Verdict(PASS, "no benchmark slower"), [unsure])
    assert told.kind == SUSPICIOUS and told.exit_code == 5 and "unet-decoder pair" in told.message
    quiet = judge(pair, compare=_fake_compare([1.0, 1.01, 0.99, 1.0]))
    assert with_pairs(Verdict(PASS, "ok"), [quiet]).passed


def test_a_slower_pair_is_explained_by_the_operators_whose_time_grew(artifacts, tmp_path):
    """The gate profiles a slower pair in the environment's Python (a real child here): the
    unfolded head's batch norms are named; an AOTInductor head says what it cannot say."""
    from unet_decoder.tracking.side_by_side import PairedVerdict, explain

    pair = ArtifactPair("test_resnet best_eager", ENV, artifacts / "folded", artifacts / "plain")
    found = explain(PairedVerdict(pair, SLOWER, 1.2, (1.1, 1.3), 4))
    assert any("op aten.native_batch_norm" in line for line in found.profile), found.profile
    assert found.profile[-1].startswith("total ")
    assert explain(PairedVerdict(pair, CLEARED)).profile == ()
    aoti = tmp_path / "aoti"
    shutil.copytree(artifacts / "plain", aoti)
    record = json.loads((aoti / "deployed.json").read_text())
    (aoti / "deployed.json").write_text(json.dumps({**record, "kind": "torch-aoti"}))
    told = explain(PairedVerdict(ArtifactPair(pair.entry, ENV, pair.base, aoti), SLOWER))
    assert "no per-operator times" in told.profile[0]


def test_eager_entries_pair_both_commits_code_where_both_have_the_facade():
    """An eager census names its interpreter alone: its pair is the two commits' code."""
    from unet_decoder.tracking.structure import CensusPair

    from .scratch import ROOT

    eager = Census("torch-eager", {"op aten.convolution": 13}, about={"python": sys.executable})
    aoti = Census("torch-aoti", {"kernel": 1}, about={"python": sys.executable})
    censuses = [CensusPair(ENV, "test_resnet none", eager, eager),
                CensusPair(ENV, "test_resnet best_compiled", aoti, aoti),
                CensusPair(ENV, "resnet34 none", eager, None)]  # fmt: skip
    commits = [
        subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", ref], capture_output=True, text=True, check=True
        ).stdout.strip()
        for ref in ("HEAD~1", "HEAD")
    ]
    (pair,) = eager_pairs(censuses, ROOT, "HEAD~1", "HEAD")
    assert (pair.entry, pair.base, pair.head) == ("test_resnet none", *commits)
    assert pair.benchmark == "forward.Forward.time_forward('test_resnet', 'none')"
    # a base that predates the facade cannot build the entry: asv's processes judge it
    root = subprocess.run(["git", "-C", str(ROOT), "rev-list", "--max-parents=0", "HEAD"],
                          capture_output=True, text=True).stdout.split()[0]  # fmt: skip
    assert eager_pairs(censuses, ROOT, root, "HEAD") == []
    # the same package code on both sides: nothing to time
    same = EagerPair("test_resnet none", ENV, ROOT, commits[1], commits[1])
    found = judge(same, compare=lambda *a, **k: pytest.fail("timed the same code"))
    assert found.kind == SAME and "same code as the base" in found.line()
