"""The GitHub workflows are valid (schema checked offline) and call entry points that exist."""

import subprocess
import sys
from pathlib import Path

import pytest

from unet_decoder.cli import build_parser

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
