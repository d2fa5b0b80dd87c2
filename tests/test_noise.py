"""`unet-decoder noise`: A/A runs find the spread, and an injected slowdown is caught."""

import json
import subprocess
import sys

import pytest
from asv.util import load_json

from unet_decoder.cli import main
from unet_decoder.tracking.noise import CANDIDATE_FACTORS, NoiseReport

from .scratch import ROOT

ENTRY = r"time_forward\('test_resnet', 'none'\)"


def test_the_recommended_factor_is_the_smallest_without_false_positives():
    report = NoiseReport(runs=3, factor=1.10)
    report.false_positives = {1.05: 2, 1.10: 1, 1.15: 0, 1.20: 0, 1.30: 0, 1.50: 0}
    assert report.recommended_factor == 1.15
    report.false_positives = dict.fromkeys(CANDIDATE_FACTORS, 1)
    assert report.recommended_factor is None


@pytest.mark.slow
def test_noise_measures_a_b_runs_and_catches_an_injected_slowdown(tmp_path, monkeypatch, capsys):
    conf = load_json(str(ROOT / "asv.conf.json"), js_comments=True)
    conf.update(repo=str(ROOT), benchmark_dir=str(ROOT / "benchmarks"),
                env_dir=str(tmp_path / "env"))  # fmt: skip
    config = tmp_path / "asv.conf.json"
    config.write_text(json.dumps(conf))
    monkeypatch.setenv("HOME", str(tmp_path))
    subprocess.run([sys.executable, "-m", "asv", "--config", str(config), "machine", "--yes",
                    "--machine", "ci"], check=True, capture_output=True)  # fmt: skip
    out = tmp_path / "noise.json"
    argv = ["noise", "-b", ENTRY, "--runs", "2", "--inject", "1.0", "--machine", "ci",
            "--config", str(config), "--json", str(out)]  # fmt: skip
    assert main(argv) == 0
    report = json.loads(out.read_text())
    name = "forward.Forward.time_forward('test_resnet', 'none')"
    assert list(report["entries"]) == [name] and len(report["entries"][name]) == 2
    assert report["pairs"] == 1 and set(report["false_positives"]) >= {"1.1", "1.5"}
    # every forward twice as slow: asv's comparison at 1.10 must flag every injected run
    assert report["injected_pairs"] == 2 and report["caught"] == 2, report
    printed = capsys.readouterr().out
    assert "false positives at factor 1.10" in printed and "injected 100% slowdown" in printed
