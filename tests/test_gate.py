"""The pull-request gate: a slowdown, a failure and "measured nothing" are three verdicts.

A gate that is red for a reason other than speed teaches people to ignore it, and one that
is green when it measured nothing lets slowdowns through.
"""

import json
import subprocess
import sys

import pytest
from asv.util import load_json

from unet_decoder.cli import main
from unet_decoder.tracking.gate import run_gate
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
        "        for _ in range(4):  # the decoder 4 times: clearly slower than FACTOR\n"
        "            y = self.head(self.decoder(features))\n",
    )
    slow = repo.commit("run the decoder four times")
    repo.edit("README.md", "# unet-decoder", "# unet-decoder (docs change)")
    docs = repo.commit("docs only")
    selection = r"time_forward\('test_resnet', 'none'\)"
    # one round a side (the gate's own default is Forward's two): the verdicts are the
    # subject here, and a 4x slower decoder is plain in one round
    common = dict(factor=FACTOR, config=repo.config, machine="ci", cwd=repo.path,
                  extra_args=["-b", selection, "-a", "rounds=1"], env=repo.env)  # fmt: skip

    fired = run_gate(base, slow, **common)
    assert fired.verdict.kind == REGRESSION and fired.exit_code == 1, fired.output[-3000:]
    assert "PERFORMANCE DECREASED" in fired.verdict.message
    name, ratio = fired.verdict.regressions[0]
    assert "time_forward" in name and float(ratio) > FACTOR
    report = fired.summary(base[:8], slow[:8], FACTOR)
    assert "FAILED" in report and "time_forward" in report

    quiet = run_gate(slow, docs, **common)
    assert quiet.passed and quiet.exit_code == 0, quiet.output[-3000:]
    assert "passed" in quiet.summary(slow[:8], docs[:8], FACTOR)

    # environments built: a selection that matches no benchmark measured nothing
    none = run_gate(slow, docs, **{**common, "extra_args": ["-b", "no_such_benchmark"]})
    assert none.verdict.kind == NOTHING and none.exit_code == 3, none.output[-3000:]
    assert "no benchmark matched" in none.verdict.message


def test_gate_never_passes_when_asv_cannot_run(tmp_path):
    result = run_gate("main", "HEAD", config=tmp_path / "missing.json")
    assert not result.passed and result.verdict.kind == NOTHING and result.exit_code == 3


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
