"""Nightly history is append-only, never duplicated, and a broken file is reported, not dropped."""

import json
import subprocess

import pytest

from unet_decoder.tracking.nightly import CorruptResultsError, check_results, run_nightly

from .scratch import ScratchRepo

FAST = ["-b", "track_params", "--quick"]


def _branch_files(repo: ScratchRepo, branch: str = "asv-results") -> dict[str, str]:
    listing = repo.git("ls-tree", "-r", branch).stdout.splitlines()
    return {line.split("\t")[1]: line.split()[2] for line in listing}  # path -> blob hash


def _result_files(files: dict[str, str]) -> set[str]:
    names = ("machine.json", "benchmarks.json")
    return {p for p in files if p.startswith("results/ci/") and not p.endswith(names)}


@pytest.mark.slow
def test_two_nightlies_append_only_and_a_corrupt_file_is_reported(tmp_path, asv_env_dir):
    repo = ScratchRepo(tmp_path, asv_env_dir)
    first = run_nightly(repo.path, config=repo.config, machine="ci", commits="HEAD^!",
                        extra_args=FAST, env=repo.env)  # fmt: skip
    assert first.committed and first.asv_returncode == 0
    before = _branch_files(repo)
    assert len(_result_files(before)) == 1

    repo.edit("README.md", "# unet-decoder", "# unet-decoder (new commit)")
    repo.commit("a new commit")
    second = run_nightly(repo.path, config=repo.config, machine="ci", extra_args=FAST,
                         env=repo.env)  # fmt: skip
    after = _branch_files(repo)
    new = _result_files(after) - _result_files(before)
    assert len(new) == 1, second  # only the new commit was measured
    assert all(after[p] == blob for p, blob in before.items() if p in _result_files(before))

    again = run_nightly(repo.path, config=repo.config, machine="ci", extra_args=FAST,
                        env=repo.env)  # fmt: skip
    assert not again.added and _branch_files(repo).keys() == after.keys()  # no duplicates
    assert len(repo.git("log", "--oneline", "asv-results").stdout.splitlines()) == 2

    # A killed job left a half-written file on the results branch.
    worktree = repo.path / ".asv" / "nightly-results"
    victim = worktree / sorted(new)[0]
    victim.write_text(victim.read_text()[:100])
    subprocess.run(["git", "-C", str(worktree), "-c", "user.name=t", "-c", "user.email=t@x",
                    "commit", "-qam", "truncated"], check=True)  # fmt: skip
    with pytest.raises(CorruptResultsError, match=victim.name):
        run_nightly(repo.path, config=repo.config, machine="ci", extra_args=FAST, env=repo.env)


def test_check_results_names_every_broken_file(tmp_path):
    (tmp_path / "ci").mkdir()
    (tmp_path / "ci" / "good.json").write_text(json.dumps({"results": {}}))
    (tmp_path / "ci" / "half.json").write_text('{"results": {"a": [1,')
    (tmp_path / "ci" / "binary.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(CorruptResultsError) as err:
        check_results(tmp_path)
    assert "half.json" in str(err.value) and "binary.json" in str(err.value)
    assert "good.json" not in str(err.value)
