"""The GitHub workflows are valid (schema checked offline) and call entry points that exist."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from unet_decoder.cli import build_parser
from unet_decoder.training.train import cache_dir

WORKFLOWS = sorted((Path(__file__).resolve().parents[1] / ".github" / "workflows").glob("*.yml"))


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_matches_githubs_schema(workflow):
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema",
         "vendor.github-workflows", str(workflow)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_gate_workflow_runs_the_local_gate_command():
    text = (WORKFLOWS[0].parent / "pr-gate.yml").read_text()
    assert "unet-decoder gate" in text and "fetch-depth: 0" in text
    args = build_parser().parse_args(["gate", "main", "HEAD", "--factor", "1.10"])
    assert (args.base, args.head, args.factor) == ("main", "HEAD", 1.10)


def test_nightly_workflow_runs_the_local_nightly_command():
    text = (WORKFLOWS[0].parent / "nightly.yml").read_text()
    assert "unet-decoder nightly" in text and "cron:" in text and "workflow_dispatch" in text
    args = build_parser().parse_args(["nightly", "--machine", "gha-x", "--commits", "NEW"])
    assert (args.machine, args.branch, args.commits) == ("gha-x", "asv-results", "NEW")


@pytest.mark.parametrize(("name", "job"), [("pr-gate.yml", "gate"), ("nightly.yml", "nightly")])
def test_gate_and_nightly_keep_the_trained_weights_between_runs(name, job, monkeypatch):
    """Restored, not retrained: the cached folder is the one the project reads on a runner."""
    for variable in ("UNET_DECODER_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", "/home/runner")
    weights = "~/" + str(cache_dir().relative_to("/home/runner"))
    steps = yaml.safe_load((WORKFLOWS[0].parent / name).read_text())["jobs"][job]["steps"]
    cached = [step["with"]["path"] for step in steps
              if step.get("uses", "").startswith("actions/cache@")]  # fmt: skip
    assert weights in cached


def test_the_gate_keeps_its_compiled_artifacts_between_pushes(tmp_path, monkeypatch):
    """A second push to a pull request restores what the first one built (the base's
    artifacts at least): the cached folder is the one the benchmarks build into."""
    from benchmarks import artifacts

    monkeypatch.delenv("UNET_BENCH_ARTIFACT_CACHE", raising=False)
    monkeypatch.setenv("ASV_CONF_DIR", str(tmp_path))
    monkeypatch.setenv("ASV_ENV_NAME", "uv-pip-py3.11-torch2.14.1")
    built_into = artifacts.artifact_cache().parent.relative_to(tmp_path).as_posix()
    steps = yaml.safe_load((WORKFLOWS[0].parent / "pr-gate.yml").read_text())["jobs"]["gate"]
    cached = [step["with"] for step in steps["steps"]
              if step.get("uses", "").startswith("actions/cache@")]  # fmt: skip
    (artifacts,) = [c for c in cached if c["path"] == built_into]
    # saved per base and head; any earlier one is restored, and a build is reused only where
    # its sources (or its program) match
    assert "pull_request.base.sha" in artifacts["key"] and artifacts["restore-keys"]
