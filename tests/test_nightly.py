"""Nightly history is append-only, never duplicated, and a broken file is reported, not dropped."""

import json
import subprocess
import sys

import pytest

from unet_decoder.tracking.nightly import (
    CorruptResultsError,
    check_results,
    compare_newest,
    comparison_verdict,
    run_nightly,
)
from unet_decoder.tracking.verdict import NOTHING, PASS, REGRESSION, compared_rows

from .scratch import ScratchRepo

FAST = ["-b", "track_params", "--quick"]


def _branch_files(repo: ScratchRepo, branch: str = "asv-results") -> dict[str, str]:
    listing = repo.git("ls-tree", "-r", branch).stdout.splitlines()
    return {line.split("\t")[1]: line.split()[2] for line in listing}  # path -> blob hash


def _result_files(files: dict[str, str]) -> set[str]:
    names = ("machine.json", "benchmarks.json")
    return {p for p in files if p.startswith("results/ci/") and not p.endswith(names)}


@pytest.mark.slow
def test_nightlies_append_only_name_a_regression_and_report_a_corrupt_file(tmp_path, asv_env_dir):
    repo = ScratchRepo(tmp_path, asv_env_dir)
    first = run_nightly(repo.path, config=repo.config, machine="ci", commits="HEAD^!",
                        extra_args=FAST, env=repo.env)  # fmt: skip
    assert first.committed and first.asv_returncode == 0
    assert first.verdict.kind == PASS and first.comparison.previous is None  # nothing to compare
    before = _branch_files(repo)
    assert len(_result_files(before)) == 1

    # A commit that doubles the decoder's widths: track_params grows far beyond x1.10.
    repo.edit("unet_decoder/model/unet.py", "DEFAULT_DECODER_CHANNELS = (256, 128, 64, 32)",
              "DEFAULT_DECODER_CHANNELS = (512, 256, 128, 64)")  # fmt: skip
    repo.commit("a wider decoder")
    second = run_nightly(repo.path, config=repo.config, machine="ci", extra_args=FAST,
                         env=repo.env)  # fmt: skip
    assert second.verdict.kind == REGRESSION and second.verdict.exit_code == 1, second.verdict
    assert second.comparison.compared >= 1
    assert any("track_params('test_resnet')" in line for line in second.regressions)
    assert "track_params('test_resnet')" in second.verdict.message
    after = _branch_files(repo)
    new = _result_files(after) - _result_files(before)
    assert len(new) == 1, second  # only the new commit was measured
    assert all(after[p] == blob for p, blob in before.items() if p in _result_files(before))

    again = run_nightly(repo.path, config=repo.config, machine="ci", extra_args=FAST,
                        env=repo.env)  # fmt: skip
    assert not again.added and _branch_files(repo).keys() == after.keys()  # no duplicates
    assert again.verdict.kind == PASS and again.comparison is None  # not reported every night
    assert len(repo.git("log", "--oneline", "asv-results").stdout.splitlines()) == 2

    # A killed job left a half-written file on the results branch.
    worktree = repo.path / ".asv" / "nightly-results"
    victim = worktree / sorted(new)[0]
    victim.write_text(victim.read_text()[:100])
    subprocess.run(["git", "-C", str(worktree), "-c", "user.name=t", "-c", "user.email=t@x",
                    "commit", "-qam", "truncated"], check=True)  # fmt: skip
    with pytest.raises(CorruptResultsError, match=victim.name):
        run_nightly(repo.path, config=repo.config, machine="ci", extra_args=FAST, env=repo.env)

    # asv pairs results by environment name: after a switch of environment type (virtualenv
    # to uv-pip) the two newest commits share no benchmark, and the night says so.
    results = tmp_path / "results" / "ci"
    newest = next(results.glob(f"{second.comparison.newest[:8]}-*.json"))
    stored = json.loads(newest.read_text())
    stored["env_name"] = "virtualenv-py3.11-renamed"
    newest.unlink()
    (results / f"{second.comparison.newest[:8]}-virtualenv-py3.11-renamed.json").write_text(
        json.dumps(stored)
    )
    asv = [sys.executable, "-m", "asv", "--config", str(repo.config)]
    unpaired = compare_newest(
        repo.path, asv, repo.env, "ci", 1.10, results_dir=tmp_path / "results"
    )
    assert unpaired.previous == second.comparison.previous and unpaired.compared == 0
    verdict = comparison_verdict(unpaired, 1.10, "ci")
    assert verdict.kind == NOTHING and verdict.exit_code == 3
    assert "compared nothing" in verdict.message and "asv run" in verdict.message


def test_an_asv_comparison_counts_only_rows_with_both_sides():
    """asv compare's table (tabulate's github format): n/a rows and rows of another
    benchmark version (x) compared nothing."""
    table = """
| Change | Before [aaaa1111] | After [bbbb2222] | Ratio | Benchmark (Parameter) |
|--------|-------------------|------------------|-------|-----------------------|
| +      | 24.5M             | 31.2M            | 1.27  | model.Model.track_params('test_resnet') |
|        | 1.00±0.01ms       | 1.02±0.01ms      | ~1.02 | forward.Forward.time_forward('a') |
| -      | 2.00ms            | 1.00ms           | 0.50  | forward.Forward.time_forward('b') |
|        | n/a               | 1.00ms           | n/a   | forward.Forward.time_forward('c') |
| x      | 1.00ms            | 3.00ms           | 3.00  | forward.Forward.time_forward('d') |
"""
    rows = compared_rows(table)
    assert [(mark, name.split(".")[-1]) for mark, _, name in rows] == [
        ("+", "track_params('test_resnet')"),
        ("", "time_forward('a')"),
        ("-", "time_forward('b')"),
    ]
    assert rows[1][1] == pytest.approx(1.02)
    assert compared_rows("| Change | Before | After | Ratio | Benchmark |\n") == []


def test_check_results_names_every_broken_file(tmp_path):
    (tmp_path / "ci").mkdir()
    (tmp_path / "ci" / "good.json").write_text(json.dumps({"results": {}}))
    (tmp_path / "ci" / "half.json").write_text('{"results": {"a": [1,')
    (tmp_path / "ci" / "binary.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(CorruptResultsError) as err:
        check_results(tmp_path)
    assert "half.json" in str(err.value) and "binary.json" in str(err.value)
    assert "good.json" not in str(err.value)
