"""The pull-request gate: a slowdown, a failure and "measured nothing" are three verdicts.

A gate that is red for a reason other than speed teaches people to ignore it, and one that
is green when it measured nothing lets slowdowns through.
"""

import json
import re
import subprocess
import sys

import pytest
from asv.util import load_json
from torch import nn

from unet_decoder import UNet
from unet_decoder.cli import main
from unet_decoder.tracking.gate import run_gate
from unet_decoder.tracking.rounds import added_by_process, ratio_of_processes
from unet_decoder.tracking.stored import stored_results
from unet_decoder.tracking.verdict import FAILED, NOTHING, PASS, REGRESSION, read_asv_output

from .scratch import ROOT, ScratchRepo

# asv continuous also requires the difference to be statistically significant; a factor of
# 1.25 keeps a 2-core shared machine's noise from failing the unchanged commit.
FACTOR = 1.25


@pytest.mark.slow
def test_gate_fails_a_slower_commit_and_passes_a_docs_only_one(tmp_path, asv_env_dir):
    repo = ScratchRepo(tmp_path, asv_env_dir)
    base = repo.git("rev-parse", "HEAD").stdout.strip()
    repo.edit(
        "unet_decoder/model/unet.py",
        "        y = self.head(self.decoder(features))\n",
        "        y = self.head(self.decoder(features))\n"
        "        for i in range(3):  # the decoder 3 more times, on shifted features, summed: a\n"
        "            # compiler can neither share nor drop them, so clearly slower than FACTOR\n"
        "            y = y + self.head(self.decoder([f + (i + 1) for f in features]))\n",
    )
    slow = repo.commit("run the decoder four times")
    repo.edit("README.md", "# unet-decoder", "# unet-decoder (docs change)")
    docs = repo.commit("docs only")
    # an eager entry (both commits' code imported side by side), a compiled one and an engine
    # one (their two artifacts): each timed side by side in one process, and profiled
    selection = r"(time_forward|track_census)\('test_resnet', '(none|best_compiled|onnxruntime)'\)"
    # one round a side and one confirming round (the gate's own defaults are two and two):
    # the verdicts are the subject here, and a 4x slower decoder is plain in one round
    common = dict(factor=FACTOR, config=repo.config, machine="ci", cwd=repo.path,
                  extra_args=["-b", selection, "-a", "rounds=1"], env=repo.env,
                  confirm_rounds=1)  # fmt: skip

    fired = run_gate(base, slow, **common)
    assert fired.verdict.kind == REGRESSION and fired.exit_code == 1, fired.output[-3000:]
    assert "PERFORMANCE DECREASED" in fired.verdict.message
    # every entry was paired: asv's rows for them left the verdict, the pairs decided it
    assert "side by side" in fired.verdict.message
    name, ratio = fired.verdict.regressions[0]
    assert "time_forward" in name and float(ratio) > FACTOR
    report = fired.summary(base[:8], slow[:8], FACTOR)
    assert "FAILED" in report and "time_forward" in report
    # the census says why, and it is true of the diff: the decoder's and the head's
    # convolutions run 3 more times
    changed = {change.entry: change for change in fired.structure.changed}
    assert set(changed) == {"test_resnet none", "test_resnet best_compiled",
                            "test_resnet onnxruntime"}  # fmt: skip
    change = changed["test_resnet none"]
    unet = UNet("test_resnet")
    convs = sum(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
                for part in (unet.decoder, unet.head) for m in part.modules())  # fmt: skip
    assert f"+{3 * convs} op aten.convolution" in change.delta, change.delta
    assert any(line.endswith("FLOPs") for line in change.delta)
    assert "op aten.convolution" in report and "structure changed" in fired.verdict.message
    compiled = changed["test_resnet best_compiled"].delta
    assert any(line.startswith("+") and "_convolution" in line for line in compiled), compiled
    paired = {v.pair.entry: v for v in fired.paired}
    assert set(paired) == {"test_resnet none", "test_resnet best_compiled",
                           "test_resnet onnxruntime"}  # fmt: skip
    for verdict in paired.values():
        assert verdict.kind == "slower" and verdict.interval[0] > FACTOR, verdict.line()
    assert "side by side" in report
    # why it is slower, measured: ONNX Runtime's own per-node times, in one process, name
    # the convolutions the diff added as the time that grew most
    grown = paired["test_resnet onnxruntime"].profile
    assert grown[0].startswith("+") and "node Conv " in grown[0], grown
    assert grown[-1].startswith("total ") and "node Conv" in report
    assert "AOTInductor" in paired["test_resnet best_compiled"].profile[0]
    # the eager entry's two commits profiled in one process by torch.profiler: convolutions
    # are among the operators whose time grew most
    eager = paired["test_resnet none"].profile
    assert any(line.startswith("+") and "convolution" in line for line in eager[:3]), eager

    quiet = run_gate(slow, docs, **common)
    assert quiet.passed and quiet.exit_code == 0, quiet.output[-3000:]
    assert not quiet.structure.changed and quiet.structure.same == 3
    # the builds were reused, and the package's code is the base's
    assert [v.kind for v in quiet.paired] == ["same artifact"] * 3
    assert any("same code as the base" in v.line() for v in quiet.paired)
    assert "passed" in quiet.summary(slow[:8], docs[:8], FACTOR)

    # environments built: a selection that matches no benchmark measured nothing
    none = run_gate(slow, docs, **{**common, "extra_args": ["-b", "no_such_benchmark"]})
    assert none.verdict.kind == NOTHING and none.exit_code == 3, none.output[-3000:]
    assert "no benchmark matched" in none.verdict.message


def test_gate_never_passes_when_asv_cannot_run(tmp_path):
    result = run_gate("main", "HEAD", config=tmp_path / "missing.json")
    assert not result.passed and result.verdict.kind == NOTHING and result.exit_code == 3


@pytest.mark.parametrize("command", [["gate", "main", "HEAD"], ["nightly", "--machine", "m"]])
def test_gate_and_nightly_refuse_to_record_an_injected_slowdown(command, monkeypatch, capsys):
    """The slowdown knob of `noise --inject`, left exported in a shell, would slow every
    time_forward of a kept series with no mark: one line, before asv runs at all."""
    monkeypatch.setenv("UNET_BENCH_INJECT_SLOWDOWN", "0.2")
    monkeypatch.setattr("unet_decoder.tracking.second_look.subprocess.run", None)  # never runs
    assert main(command) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "UNET_BENCH_INJECT_SLOWDOWN is set" in err and "unset" in err


def test_a_config_with_no_usable_python_is_measured_nothing_not_a_slowdown(
    tmp_path, capsys, monkeypatch
):
    conf = load_json(str(ROOT / "asv.conf.json"), js_comments=True)
    conf.update(repo=str(ROOT), pythons=["1.9"], env_dir=str(tmp_path / "env"),
                results_dir=str(tmp_path / "results"), html_dir=str(tmp_path / "html"),
                benchmark_dir=str(ROOT / "benchmarks"))  # fmt: skip
    config = tmp_path / "asv.conf.json"
    config.write_text(json.dumps(conf))
    monkeypatch.setenv("HOME", str(tmp_path))  # asv's machine file lives there
    made = subprocess.run([sys.executable, "-m", "asv", "--config", str(config), "machine",
                           "--yes", "--machine", "ci"], capture_output=True)  # fmt: skip
    assert made.returncode == 0
    code = main(["gate", "HEAD~1", "HEAD", "--config", str(config), "--machine", "ci"])
    captured = capsys.readouterr()
    assert code == 3, captured.out[-2000:]
    assert "measured nothing: no asv environment matched" in captured.err
    assert "PERFORMANCE DECREASED" not in captured.err
    assert "FAILED (nothing measured)" in captured.out


# asv 0.6's own output formats, as `asv continuous --split` prints them
TABLE = """
| Change   | Before [aaaa1111] <main>   | After [bbbb2222] <HEAD>   |   Ratio | Benchmark (Parameter)   |
|----------|----------------------------|---------------------------|---------|-------------------------|
| +        | 10.0±0.1ms                 | 40.0±1ms                  |    4.00 | forward.Forward.time_forward('test_resnet', 'none') |
| !        | 12.0±0.1ms                 | failed                    |     n/a | forward.Forward.time_forward('test_resnet', 'reparam') |
"""  # noqa: E501


def test_the_gate_says_which_weights_were_trained_for_the_head(monkeypatch):
    """A head that changes the architecture is measured on weights trained for it; the
    summary says so, once per encoder, from the line the benchmark process logs."""
    from benchmarks import common
    from unet_decoder.tracking.gate import RETRAINED, GateResult
    from unet_decoder.tracking.verdict import Verdict

    assert common.RETRAINED == RETRAINED  # the suite writes what the gate reads
    line = f"{RETRAINED} resnet34 (resnet34-archabc.safetensors): no cached weights"
    result = GateResult(Verdict(PASS, "no benchmark slower"), 0, f"{line}\n| x |\n{line}\n")
    assert result.retrained == ["resnet34 (resnet34-archabc.safetensors): no cached weights"]
    summary = result.summary("main", "HEAD", 1.10)
    assert summary.count("weights trained for this gate: resnet34") == 1
    quiet = GateResult(Verdict(PASS, "no benchmark slower"), 0, "| x |\n")
    assert "weights trained" not in quiet.summary("main", "HEAD", 1.10)


def test_weights_trained_in_a_process_whose_stderr_asv_did_not_show_are_named(
    monkeypatch, tmp_path
):
    """asv shows one process's stderr per benchmark, and a real gate on a decoder change
    trained 4 checkpoints without one logged line reaching it: the gate also names every
    checkpoint that appeared in the weights cache while it ran."""
    from unet_decoder.tracking.gate import RETRAINED, GateResult, checkpoints
    from unet_decoder.tracking.verdict import Verdict

    monkeypatch.setenv("UNET_DECODER_CACHE", str(tmp_path))
    before = checkpoints()
    for name in (
        "resnet34-arch1cb9-shapes.safetensors",
        "efficientnet_b0-arch77-shapes.safetensors",
    ):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "resnet34-arch1cb9-shapes.json").write_text("{}")  # its info: not a checkpoint
    new = sorted(checkpoints() - before)
    assert new == [
        "efficientnet_b0-arch77-shapes.safetensors",
        "resnet34-arch1cb9-shapes.safetensors",
    ]
    logged = f"{RETRAINED} resnet34 (resnet34-arch1cb9-shapes.safetensors): no cached weights\n"
    result = GateResult(Verdict(PASS, "no benchmark slower"), 0, logged, trained=new)
    summary = result.summary("main", "HEAD", 1.10)
    assert summary.count("weights trained for this gate: ") == 2  # one per checkpoint
    assert "weights trained for this gate: efficientnet_b0 (efficientnet_b0-arch77" in summary


def test_verdicts_name_each_slower_and_each_failed_benchmark():
    slower = TABLE.replace("| !  ", "|    ").replace("failed   ", "12.0±0.1ms")
    regression = read_asv_output(1, slower + "\nPERFORMANCE DECREASED.\n")
    assert regression.kind == REGRESSION and regression.exit_code == 1
    assert regression.regressions == [("forward.Forward.time_forward('test_resnet', 'none')",
                                       "4.00")]  # fmt: skip
    assert "x4.00" in regression.message

    broke = read_asv_output(1, TABLE + "\nPERFORMANCE DECREASED.\n")
    assert broke.kind == FAILED and broke.exit_code == 2
    assert broke.failed == ["forward.Forward.time_forward('test_resnet', 'reparam')"]

    run_log = "[ 50.00%] ··· metrics.Metrics.track_miou                       1/3 failed\n"
    failed = read_asv_output(2, run_log)
    assert failed.kind == FAILED and failed.failed == ["metrics.Metrics.track_miou"]

    assert read_asv_output(0, "BENCHMARKS NOT SIGNIFICANTLY CHANGED.").kind == PASS
    for said in (
        "· No environments selected",
        "· No benchmarks selected",
        "· Skipping uv-pip-py3.11-torch2.12.1",
        "Traceback: something else",
    ):
        verdict = read_asv_output(1, said)
        assert verdict.kind == NOTHING and verdict.exit_code == 3, said


ENTRY_NAME = "forward.Forward.time_forward('test_resnet', 'none')"
SLOWER = TABLE.replace("| !  ", "|    ").replace("failed   ", "12.0±0.1ms")
UNCHANGED = SLOWER.replace("| +        |", "|          |").replace("40.0±1ms", "10.5±1ms ")


ENV_ENTRY = f"{ENTRY_NAME} [m/uv-pip-py3.11-torch2.14.1]"


def _fake_asv(monkeypatch, answers: dict[str, list[tuple[int, str]]],
              processes: dict[str, list[float]] | None = None,
              first_look: tuple[float, float] = (0.0160, 0.0190)):  # fmt: skip
    """asv as the gate calls it, answering each subcommand from `answers` in turn; `asv
    continuous` stores 40 samples a side (`first_look`: base, head; x1.19 by default), each
    `asv run` of a commit one more process's samples (its value in `processes`), as
    `--append-samples` does."""
    import subprocess as real

    calls, runs = [], {"main": 0, "HEAD": 0}
    original = real.run

    def run(command, **kwargs):
        if "--config" not in command:  # git (the census reads commits): the real thing
            return original(command, **kwargs)
        sub = command[command.index("--config") + 2]
        calls.append(command[command.index("--config") + 2 :])
        if sub == "run":
            runs[next(a for a in command if a.endswith("^!")).removesuffix("^!")] += 1
        code, out = answers[sub].pop(0)
        return real.CompletedProcess(command, code, out, "")

    def stored(commit):
        other = {"other.entry [m/uv-pip-py3.11-torch2.14.1]": [1.0]}  # stored by an older run
        if not any(c[0] == "continuous" for c in calls):
            return other
        measured = [first_look[commit == "HEAD"]] * 40
        added = [v * f for v in (processes or {}).get(commit, [])[: runs[commit]]
                 for f in (0.99, 1.0, 1.0, 1.01)]  # fmt: skip
        return {ENV_ENTRY: measured + added, **other}

    monkeypatch.setattr("unet_decoder.tracking.second_look.subprocess.run", run)
    monkeypatch.setattr("unet_decoder.tracking.gate.stored_results", lambda config, cwd: stored)
    return calls


def test_a_slowdown_seen_once_is_measured_again_and_fails_only_if_it_stays(monkeypatch):
    """One slow minute on a shared machine must not fail a pull request: the flagged entry is
    measured again in interleaved rounds, each process one value, and it fails only if the
    median of the head's processes is slower than the base's by the factor."""
    measured = (0, "· Running 2 total benchmarks (2 commits * 1 environments * 1 benchmarks)")
    first_look = (1, SLOWER + "\nPERFORMANCE DECREASED.\n")
    # what a real gate saw on one package linked into both sides (seconds per forward): one
    # head process ran all its samples at 26 ms; pooled with the first look's samples, the
    # head was "x1.16 slower, confirmed"
    odd_process = {"main": [0.0162, 0.0156, 0.0165], "HEAD": [0.0170, 0.0266, 0.0171]}
    # x1.06 after three rounds is close to the factor: two more rounds of agreeing processes
    # bring it below the nomination bar
    odd_process["main"] += [0.0160, 0.0163]
    odd_process["HEAD"] += [0.0161, 0.0159]
    answers = {"continuous": [first_look], "run": [measured] * 10}
    calls = _fake_asv(monkeypatch, answers, odd_process)
    passed = run_gate("main", "HEAD", machine="m", extra_args=["-b", "pr", "-E", "uv"])
    assert passed.passed and passed.exit_code == 0, passed.verdict.message
    assert "not confirmed" in passed.verdict.message and ENTRY_NAME in passed.verdict.message
    assert "| 1.05 | 0.0162, 0.0156, 0.0165, 0.016, 0.0163 | 0.017, 0.0266, 0.0171, 0.0161, " in (
        passed.output
    )
    assert "--record-samples" in calls[0]  # the samples asv's test and the second look use
    runs = [c for c in calls if c[0] == "run"]
    # only the flagged entry, one round a call, head and base interleaved as asv does
    commits = [a for c in runs for a in c if a.endswith("^!")]
    assert commits == ["HEAD^!", "main^!", "main^!", "HEAD^!"] * 2 + ["HEAD^!", "main^!"]
    for c in runs:
        assert c[c.index("-b") + 1] == f"^{re.escape(ENTRY_NAME)}$"
        assert "--append-samples" in c and "rounds=1" in c and "-E" in c and "pr" not in c
        assert c[c.index("--machine") + 1] == "m"

    slower = {"main": [0.0160, 0.0158, 0.0162], "HEAD": [0.0200, 0.0204, 0.0199]}
    _fake_asv(monkeypatch, {"continuous": [first_look], "run": [measured] * 6}, slower)
    failed = run_gate("main", "HEAD")
    assert failed.verdict.kind == REGRESSION and failed.exit_code == 1
    assert failed.verdict.regressions == [(ENV_ENTRY, "1.25")]
    assert "confirmed by 3 more interleaved round(s)" in failed.verdict.message

    # a failure while confirming is a failure, never a pass
    broke = (2, "[ 50.00%] ··· forward.Forward.time_forward              1/1 failed\n")
    _fake_asv(monkeypatch, {"continuous": [first_look], "run": [broke]})
    assert run_gate("main", "HEAD").verdict.kind == FAILED

    _fake_asv(monkeypatch, {"continuous": [first_look]})  # --confirm-rounds 0: first look only
    assert run_gate("main", "HEAD", confirm_rounds=0).verdict.kind == REGRESSION


def test_a_slowdown_asv_let_through_at_first_look_is_measured_again(monkeypatch):
    """Two processes a side can hide a real slowdown: an entry x1.08 slower at first look,
    which asv passed (below the factor), is nominated (above half the factor's margin) and
    fails once the head's processes stay slower by the factor; one at x1.03 is not measured
    again at all."""
    measured = (0, "· Running 2 total benchmarks (2 commits * 1 environments * 1 benchmarks)")
    passed_by_asv = (0, UNCHANGED + "\nBENCHMARKS NOT SIGNIFICANTLY CHANGED.\n")
    slower = {"main": [0.0160, 0.0158, 0.0162], "HEAD": [0.0200, 0.0204, 0.0199]}
    calls = _fake_asv(monkeypatch, {"continuous": [passed_by_asv], "run": [measured] * 6},
                      slower, first_look=(0.0160, 0.0173))  # fmt: skip
    caught = run_gate("main", "HEAD", machine="m")
    assert caught.verdict.kind == REGRESSION and caught.exit_code == 1
    assert caught.verdict.regressions == [(ENV_ENTRY, "1.25")]
    runs = [c for c in calls if c[0] == "run"]
    assert len(runs) == 6 and all(c[c.index("-b") + 1] == f"^{re.escape(ENTRY_NAME)}$"
                                  for c in runs)  # fmt: skip

    same = {"main": [0.0160, 0.0158, 0.0162], "HEAD": [0.0161, 0.0157, 0.0163]}
    _fake_asv(monkeypatch, {"continuous": [passed_by_asv], "run": [measured] * 6}, same,
              first_look=(0.0160, 0.0173))  # fmt: skip
    cleared = run_gate("main", "HEAD", machine="m")
    assert cleared.passed and "slower than x1.05 at first look, not confirmed" in (
        cleared.verdict.message
    )

    calls = _fake_asv(monkeypatch, {"continuous": [passed_by_asv]}, first_look=(0.0160, 0.0165))
    quiet = run_gate("main", "HEAD", machine="m")
    assert quiet.passed and [c[0] for c in calls] == ["continuous"]


def test_a_confirming_verdict_close_to_the_factor_is_measured_until_it_is_not(monkeypatch):
    """Three processes a side once put an unchanged entry at x1.12 on a 2-core VM (a real
    cold A/A gate, resnet34 int8, below): so an entry still between the nomination bar and
    twice the factor's margin after the confirming rounds gets up to four more, stops once it
    leaves that band, and is judged on all its processes."""
    measured = (0, "· Running 2 total benchmarks (2 commits * 1 environments * 1 benchmarks)")
    first_look = (1, SLOWER + "\nPERFORMANCE DECREASED.\n")
    real_gate = {"main": [0.02128, 0.02110, 0.02109], "HEAD": [0.02354, 0.02413, 0.02142]}
    agree = {side: [*v, 0.0212, 0.0209, 0.0213, 0.0210] for side, v in real_gate.items()}
    calls = _fake_asv(monkeypatch, {"continuous": [first_look], "run": [measured] * 14}, agree)
    passed = run_gate("main", "HEAD", machine="m")
    assert passed.passed, passed.verdict.message
    # x1.06 after a fourth round, x1.02 after a fifth: cleared, no sixth
    assert len([c for c in calls if c[0] == "run"]) == 10
    assert "| 1.02 | 0.02128, 0.0211, 0.02109, 0.0212, 0.0209 |" in passed.output
    assert "3 more interleaved round(s) (7 where x1.05-1.20 after them)" in passed.verdict.message

    stays = {side: v * 3 for side, v in real_gate.items()}  # the offset holds: slower it is
    _fake_asv(monkeypatch, {"continuous": [first_look], "run": [measured] * 14}, stays)
    failed = run_gate("main", "HEAD", machine="m")
    assert failed.verdict.kind == REGRESSION and failed.verdict.regressions == [(ENV_ENTRY, "1.12")]


def test_the_second_look_reads_each_process_from_asvs_stored_results(tmp_path):
    """The stored samples of a commit, by entry and environment, read from a file asv's own
    writer made; a process's value is the median of what it appended (track_ benchmarks store
    no samples: their value); a failed entry and a half-written file are left out."""
    from asv.results import Results
    from asv.runner import BenchmarkResult

    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@x",
                    "commit", "-q", "--allow-empty", "-m", "one"], check=True)  # fmt: skip
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()  # fmt: skip
    (repo / "asv.conf.json").write_text(json.dumps({"repo": ".", "results_dir": "out"}))
    result = Results({"machine": "m"}, {}, commit, 0, "3.11", "env", {})
    timed = {"name": "forward.Forward.time_forward", "params": [["'a'", "'b'", "'c'"]],
             "version": "v"}  # fmt: skip
    measured = BenchmarkResult(result=[0.011, None, float("nan")],
                               samples=[[0.011, 0.009, 0.012], None, None], number=[1, 1, 1],
                               errcode=0, stderr="", profile=None)  # fmt: skip
    result.add_result(timed, measured, record_samples=True)
    tracked = {"name": "model.Model.track_params", "params": [], "version": "v"}
    result.add_result(tracked, BenchmarkResult(result=[3.0], samples=[None], number=[None],
                                               errcode=0, stderr="", profile=None))  # fmt: skip
    result.save(str(repo / "out"))
    (repo / "out" / "m" / f"{commit[:8]}-killed.json").write_text('{"commit_hash": "')
    stored = stored_results(repo / "asv.conf.json")("HEAD")
    assert stored == {"forward.Forward.time_forward('a') [m/env]": [0.011, 0.009, 0.012],
                      "model.Model.track_params [m/env]": [3.0]}  # fmt: skip
    assert stored_results(repo / "asv.conf.json")("no-such-ref") == {}
    assert added_by_process([0.011, 0.009], [0.011, 0.009, 0.020, 0.030, 0.025]) == 0.025
    assert added_by_process([3.0], [4.0]) == 4.0 and added_by_process(None, [1.0, 3.0]) == 2.0
    assert ratio_of_processes([1.0, 9.0, 1.2], [1.1, 1.3, 30.0]) == pytest.approx(1.3 / 1.2)
    assert ratio_of_processes([0.0], [2.0]) == float("inf")
