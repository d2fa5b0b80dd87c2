"""Nightly history is append-only, never duplicated, and a broken file is reported, not dropped."""

import json
import re
import subprocess

import pytest

from unet_decoder.tracking.nightly import (
    compare_newest,
    compared,
    comparison_verdict,
    run_nightly,
)
from unet_decoder.tracking.results_branch import CorruptResultsError, check_results
from unet_decoder.tracking.second_look import TABLE_HEADER, asv_caller
from unet_decoder.tracking.verdict import FAILED, NOTHING, PASS, REGRESSION, compared_rows

from .scratch import ScratchRepo

FAST = ["-b", "track_params", "--quick"]


def _branch_files(repo: ScratchRepo, branch: str = "asv-results") -> dict[str, str]:
    listing = repo.git("ls-tree", "-r", branch).stdout.splitlines()
    return {line.split("\t")[1]: line.split()[2] for line in listing}  # path -> blob hash


def _commit_changes(repo: ScratchRepo, commit: str) -> dict[str, str]:
    """path -> git's status letter (A added, M modified) in one commit of the results branch."""
    shown = repo.git("show", "--name-status", "--format=", commit).stdout.splitlines()
    return {line.split("\t")[1]: line.split("\t")[0] for line in shown if line.strip()}


def _result_files(files: dict[str, str]) -> set[str]:
    names = ("machine.json", "benchmarks.json")
    return {p for p in files if p.startswith("results/ci/") and not p.endswith(names)}


@pytest.mark.slow
def test_nightlies_append_only_name_a_regression_and_report_a_corrupt_file(tmp_path, asv_env_dir):
    """Also the proof that asv builds each commit and measures its own code: the commit
    that widens the decoder is flagged from its own build's parameter count."""
    repo = ScratchRepo(tmp_path, asv_env_dir)
    first = run_nightly(repo.path, config=repo.config, machine="ci", commits="HEAD^!",
                        extra_args=FAST, env=repo.env)  # fmt: skip
    first_commit = repo.git("rev-parse", "HEAD").stdout.strip()
    assert first.committed and first.asv_returncode == 0
    assert first.verdict.kind == PASS and first.comparison.previous is None  # nothing to compare
    before = _branch_files(repo)
    assert len(_result_files(before)) == 1

    # A night of three commits, the middle one doubling the decoder's widths: track_params
    # grows far beyond x1.10 over the night, and bisection names that commit.
    notes = repo.path / "docs" / "nightly.md"
    notes.write_text(notes.read_text() + "\nA note.\n")
    repo.commit("docs: a note")
    repo.edit("unet_decoder/model/unet.py", "DEFAULT_DECODER_CHANNELS = (256, 128, 64, 32)",
              "DEFAULT_DECODER_CHANNELS = (512, 256, 128, 64)")  # fmt: skip
    wider = repo.commit("a wider decoder")
    notes.write_text(notes.read_text() + "\nAnother note.\n")
    repo.commit("docs: another note")
    second = run_nightly(repo.path, config=repo.config, machine="ci", extra_args=FAST,
                         env=repo.env, confirm_rounds=1)  # fmt: skip
    assert second.verdict.kind == REGRESSION and second.verdict.exit_code == 1, second.verdict
    # judged over the night (its last commit against the first night's), not the last commit
    # against the one before it, which changed only docs
    assert second.comparison.previous == first_commit
    # every encoder's track_params grew, each bisected to the same commit
    pinned = {c.entry.split(" [")[0]: c for c in second.culprits}
    assert {c.commit for c in second.culprits} == {wider}, [c.line() for c in second.culprits]
    assert "'a wider decoder': x" in pinned["model.Model.track_params('test_resnet')"].line()
    assert f"first slow commit: {wider[:8]} ({len(pinned)} benchmark(s))" in second.verdict.message
    # measured again on both commits (asv's -b on the entry's own name) and still larger
    assert "confirmed by 1 more interleaved round(s)" in second.verdict.message
    assert second.comparison.compared >= 1
    assert any("track_params('test_resnet')" in line for line in second.regressions)
    assert "track_params('test_resnet')" in second.verdict.message
    after = _branch_files(repo)
    new = _result_files(after) - _result_files(before)
    assert len(new) == 3, second  # only the new commits were measured
    # the night's own commit added them and left the stored result alone; the second look's
    # samples joined both ends' results in a commit of its own, and the bisection's (the
    # culprit against its parent) in one more
    night = _commit_changes(repo, "asv-results~2")
    assert {night[name] for name in new} == {"A"} and not night.keys() & _result_files(before)
    assert "second look" in repo.git("log", "-1", "--format=%s", "asv-results~1").stdout
    assert "bisection" in repo.git("log", "-1", "--format=%s", "asv-results").stdout
    assert len(_commit_changes(repo, "asv-results")) == 2

    again = run_nightly(repo.path, config=repo.config, machine="ci", extra_args=FAST,
                        env=repo.env)  # fmt: skip
    assert not again.added and _branch_files(repo).keys() == after.keys()  # no duplicates
    assert again.verdict.kind == PASS and again.comparison is None  # not reported every night
    assert len(repo.git("log", "--oneline", "asv-results").stdout.splitlines()) == 4

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
    asv = asv_caller(repo.config, "ci", repo.path, repo.env)
    unpaired = compare_newest(repo.path, asv, "ci", 1.10, results_dir=tmp_path / "results",
                              measured_before=[first_commit])  # fmt: skip
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
    # at factor 1.03 the unflagged x1.02 row is above the nomination bar (1.015)
    night = compared("a", "b", rows, 1.03)
    assert night.compared == 3 and [n for n, _ in night.regressions] == [rows[0][2]]
    assert night.nominated == [(rows[1][2], "1.02")]
    assert compared("a", "b", rows, 1.10).nominated == []


NAME = "forward.Forward.time_forward('test_resnet', 'none')"


def test_a_night_reports_only_the_slowdowns_a_second_look_confirms():
    """One slow minute must not mark a night red: the flagged benchmarks are measured again
    on both commits, interleaved, samples joined, each process judged as one value, and only
    those still slower are kept."""
    from unet_decoder.tracking.nightly import Comparison, _look_again

    previous, newest = "a" * 40, "b" * 40
    calls = []

    def fake_asv(processes: dict[str, list[float]], run=(0, "· Running 1 total benchmarks")):
        """asv, and its stored results: each run of a commit adds one process's samples."""
        answers, done = {"run": [run] * 4}, {previous: 0, newest: 0}

        def asv(*args):
            calls.append(args)
            done[args[-1].removesuffix("^!")] += 1
            return answers[args[0]].pop(0)

        def stored(commit):
            added = [v for v in processes[commit][: done[commit]] for _ in range(3)]
            return {f"{NAME} [ci/uv-pip]": [0.010] * 20 + added}

        return asv, stored

    comparison = Comparison(previous, newest, compared=3, regressions=[(NAME, "1.30")])
    first = comparison_verdict(comparison, 1.10, "ci")
    assert first.kind == REGRESSION and first.regressions == [(NAME, "1.30")]
    unchanged = {previous: [0.0100, 0.0101], newest: [0.0102, 0.0100]}
    cleared, verdict, table = _look_again(*fake_asv(unchanged), comparison, first, 1.10, 2,
                                          ["-b", "all", "-E", "uv", "--quick"])  # fmt: skip
    assert verdict.kind == PASS and cleared.regressions == []
    # the evidence a reader of the night needs: each process's value, and the ratio
    assert f"| 1.00 | 0.01, 0.0101 | 0.0102, 0.01 | {NAME} [ci/uv-pip] |" in table
    assert "not confirmed" in verdict.message and "aaaaaaaa..bbbbbbbb" in verdict.message
    runs = [c for c in calls if c[0] == "run"]
    # only the flagged entry, newest then previous, its samples joined to the stored ones
    assert [c[-1] for c in runs] == [f"{newest}^!", f"{previous}^!", f"{previous}^!",
                                     f"{newest}^!"]  # fmt: skip
    for c in runs:
        assert c[c.index("-b") + 1] == f"^{re.escape(NAME)}$" and "all" not in c
        assert "--append-samples" in c and "-E" in c and "--quick" in c

    slower = {previous: [0.0100, 0.0101], newest: [0.0131, 0.0130]}
    kept, verdict, table = _look_again(*fake_asv(slower), comparison, first, 1.10, 2, [])
    assert verdict.kind == REGRESSION and verdict.exit_code == 1
    assert "| 1.30 | 0.01, 0.0101 | 0.0131, 0.013 |" in table
    assert kept.regressions == [(f"{NAME} [ci/uv-pip]", "1.30")]
    assert "confirmed by 2 more" in verdict.message

    # x1.07 at first look: not flagged (below 1.10), but above the nomination bar (1.05), so
    # it is measured again and kept when the night's processes are slower by the factor
    near = Comparison(previous, newest, compared=3, nominated=[(NAME, "1.07")])
    passed_first = comparison_verdict(near, 1.10, "ci")
    assert passed_first.kind == PASS
    kept, verdict, _ = _look_again(*fake_asv(slower), near, passed_first, 1.10, 2, [])
    assert verdict.kind == REGRESSION and kept.regressions == [(f"{NAME} [ci/uv-pip]", "1.30")]
    cleared, verdict, _ = _look_again(*fake_asv(unchanged), near, passed_first, 1.10, 2, [])
    assert verdict.kind == PASS and cleared.regressions == []

    broke = (2, f"[ 50.00%] ··· {NAME.split('(')[0]}              1/1 failed\n")
    _, verdict, table = _look_again(*fake_asv(slower, run=broke), comparison, first, 1.10, 1, [])
    assert verdict.kind == FAILED and table == ""  # a failure while looking again never passes


def test_check_results_names_every_broken_file(tmp_path):
    (tmp_path / "ci").mkdir()
    (tmp_path / "ci" / "good.json").write_text(json.dumps({"results": {}}))
    (tmp_path / "ci" / "half.json").write_text('{"results": {"a": [1,')
    (tmp_path / "ci" / "binary.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(CorruptResultsError) as err:
        check_results(tmp_path)
    assert "half.json" in str(err.value) and "binary.json" in str(err.value)
    assert "good.json" not in str(err.value)


def test_a_red_night_prints_and_reports_the_measurements_behind_its_verdict(
    tmp_path, monkeypatch, capsys
):
    """The regression issue a night opens (from --report) names each slowdown and shows the
    second look's processes it rests on; a cleared night still prints them."""
    from unet_decoder.cli import main
    from unet_decoder.tracking.nightly import Comparison, NightlyReport
    from unet_decoder.tracking.verdict import Verdict

    table = f"{TABLE_HEADER}\n| 1.30 | 0.010, 0.011 | 0.013, 0.014 | {NAME} |"
    first_look_red = Verdict(REGRESSION, "slower", regressions=[(NAME, "1.30")])
    red_comparison = Comparison("a" * 40, "b" * 40, compared=3, regressions=[(NAME, "1.30")])
    red = NightlyReport(verdict=first_look_red, comparison=red_comparison, looked_again=table)
    monkeypatch.setattr("unet_decoder.tracking.nightly.run_nightly", lambda *a, **k: red)
    report = tmp_path / "regressions.md"
    assert main(["nightly", "--machine", "m", "--report", str(report)]) == 1
    written = report.read_text()
    assert f"{NAME} x1.30" in written and table in written
    assert table in capsys.readouterr().out

    # a night over several commits: the issue names the commit bisection pinned each on
    from unet_decoder.tracking.culprit import Culprit

    red.culprits = [Culprit(NAME, "c" * 40, "x1.28 over its parent", subject="more work")]
    assert main(["nightly", "--machine", "m", "--report", str(report)]) == 1
    assert f"{NAME}: first slow commit cccccccc 'more work': x1.28" in report.read_text()
    red.culprits = []

    red.verdict, red.comparison = Verdict(PASS, "cleared"), None
    assert main(["nightly", "--machine", "m"]) == 0
    assert table in capsys.readouterr().out

    # without a second look (--confirm-rounds 0) the report is the list alone
    red.verdict, red.comparison, red.looked_again = first_look_red, red_comparison, ""
    assert main(["nightly", "--machine", "m", "--report", str(report)]) == 1
    assert report.read_text() == f"Regressions against the previous nightly:\n\n    {NAME} x1.30\n"
