"""`unet-decoder noise`: A/A gate trials find the spread, and an injected slowdown is caught."""

import json
import re
import subprocess
import sys

import pytest
from asv.util import load_json

from unet_decoder.cli import main
from unet_decoder.tracking import noise
from unet_decoder.tracking.noise_report import CANDIDATE_FACTORS, NoiseReport, format_report

from .scratch import ROOT

ENTRY = r"time_forward\('test_resnet', 'none'\)"


def test_the_recommended_factor_is_the_smallest_without_false_positives():
    report = NoiseReport(runs=3, factor=1.10)
    report.false_positives = {1.05: 2, 1.10: 1, 1.15: 0, 1.20: 0, 1.30: 0, 1.50: 0}
    assert report.recommended_factor == 1.15
    report.false_positives = dict.fromkeys(CANDIDATE_FACTORS, 1)
    assert report.recommended_factor is None


def test_each_trial_interleaves_its_sides_in_rounds_as_asv_continuous_does(monkeypatch, tmp_path):
    """A slow minute must hit base and head alike: rounds alternate the sides' order, and a
    head that really is 20% slower is a false positive only if the A/A side shows it."""
    from asv_runner.statistics import compute_stats

    order, caches = [], set()

    def fake_round(conf, folder, regex, machine, env, head):
        order.append(folder.name)
        caches.add(env["UNET_BENCH_ARTIFACT_CACHE"])

    monkeypatch.delenv("UNET_BENCH_ARTIFACT_CACHE", raising=False)
    monkeypatch.setattr(noise, "_asv_round", fake_round)

    def fake_load(results, machine):
        side = results.parent.name.split("-")[1]
        samples = [0.100 + 0.001 * i for i in range(10)]
        if side == "slowed":
            samples = [v * 1.2 for v in samples]
        value, stats = compute_stats(samples, 1)
        return {"forward.Forward.time_forward('x', 'none')": (value, stats, samples)}

    monkeypatch.setattr(noise, "_load", fake_load)
    config = tmp_path / "asv.conf.json"
    config.write_text("{}")
    report = noise.measure_noise("x", runs=2, rounds=2, inject=0.2, confirm_rounds=0,
                                 machine="m", config=config)  # fmt: skip
    # base and head in the gate's order; the slowed side takes a new position every round
    assert order == ["0-slowed", "0-base", "0-head", "0-head", "0-slowed", "0-base",
                     "1-slowed", "1-base", "1-head", "1-head", "1-slowed", "1-base"]  # fmt: skip
    # every side of the measurement loads one build of the compiled entries, not its own
    assert len(caches) == 1 and next(iter(caches)).endswith("artifacts")
    assert report.pairs == 2 and report.false_positives[1.10] == 0
    assert report.injected_pairs == 2 and report.caught == 2


@pytest.mark.slow
def test_noise_measures_a_gate_trial_and_catches_a_slowdown(tmp_path, monkeypatch, capsys):
    conf = load_json(str(ROOT / "asv.conf.json"), js_comments=True)
    conf.update(repo=str(ROOT), benchmark_dir=str(ROOT / "benchmarks"),
                env_dir=str(tmp_path / "env"))  # fmt: skip
    config = tmp_path / "asv.conf.json"
    config.write_text(json.dumps(conf))
    monkeypatch.setenv("HOME", str(tmp_path))
    subprocess.run([sys.executable, "-m", "asv", "--config", str(config), "machine", "--yes",
                    "--machine", "ci"], check=True, capture_output=True)  # fmt: skip
    out = tmp_path / "noise.json"
    # one round: the order of rounds is checked above; here asv must really measure each side.
    # No confirming round (two more asv runs, ~40 s of CI): which entries it measures again and
    # how it judges them is checked above, and real asv measuring an entry by its exact-name
    # regex, as the second look does, runs in the gate's slow test.
    argv = ["noise", "-b", ENTRY, "--runs", "1", "--rounds", "1", "--inject", "1.0",
            "--confirm-rounds", "0",
            "--machine", "ci", "--config", str(config), "--json", str(out)]  # fmt: skip
    assert main(argv) == 0
    report = json.loads(out.read_text())
    name = "forward.Forward.time_forward('test_resnet', 'none')"
    assert list(report["entries"]) == [name] and len(report["entries"][name]) == 2
    assert report["pairs"] == 1 and report["rounds"] == 1
    assert report["provenance"]["command"].startswith("unet-decoder noise -b ")
    assert set(report["false_positives"]) >= {"1.1", "1.5"}
    # every forward twice as slow: asv's comparison at 1.10 must flag the injected side
    assert report["injected_pairs"] == 1 and report["caught"] == 1, report
    printed = capsys.readouterr().out
    assert "false positives at factor 1.10" in printed and "injected 100% slowdown" in printed


def test_a_trial_flagged_at_first_look_is_judged_again_as_the_gate_does(monkeypatch, tmp_path):
    """The head side of one trial had a slow minute: the gate's confirming rounds measure only
    that entry again, on base and head, and the joined samples clear it; the slowed side's
    real 30% stays caught (decided: far above the factor, no extra rounds)."""
    from asv_runner.statistics import compute_stats

    calls = []

    def fake_round(conf, folder, regex, machine, env, head):
        calls.append((folder.name, regex))

    def fake_load(results, machine):
        folder = results.parent.name
        samples = []
        for name, _ in calls:
            if name == folder:  # each round adds 10 samples; trial 0's first head round is slow
                slow = 1.3 if folder == "0-head" and not samples else 1.0
                slow *= 1.3 if folder.endswith("slowed") else 1.0
                samples += [slow * (0.100 + 0.001 * i) for i in range(10)]
        value, stats = compute_stats(samples, 1)
        return {"forward.Forward.time_forward('x', 'none')": (value, stats, samples)}

    monkeypatch.setattr(noise, "_asv_round", fake_round)
    monkeypatch.setattr(noise, "_load", fake_load)
    config = tmp_path / "asv.conf.json"
    config.write_text("{}")
    report = noise.measure_noise("x", runs=2, rounds=1, inject=0.2, confirm_rounds=2,
                                 machine="m", config=config)  # fmt: skip
    assert report.false_positives[1.10] == 1 and report.confirmed_false_positives == 0
    assert report.caught == 2 and report.confirmed_caught == 2
    confirming = [(f, r) for f, r in calls if r != "x"]
    assert {r for _, r in confirming} == {
        "^" + re.escape("forward.Forward.time_forward('x', 'none')") + "$"
    }
    # trial 0: base, head and slowed flagged; trial 1: base and slowed only; two rounds each
    assert sorted(f for f, _ in confirming) == sorted(["0-base", "0-head", "0-slowed"] * 2
                                                      + ["1-base", "1-slowed"] * 2)  # fmt: skip
    assert "after the gate's 2 confirming rounds (6 where undecided): 0/2" in format_report(report)
    # per trial: the gate's verdict, and the evidence behind it
    assert report.failed_trials == 0 and report.caught_trials == 2
    assert "the A/A head failed 0 of 2 trials; the slowed side failed 2 of 2" in (
        format_report(report)
    )
    entry = "forward.Forward.time_forward('x', 'none')"
    first = report.trials[0]
    assert first["first_look"]["head"][entry] == pytest.approx(1.3, rel=0.01)
    assert first["confirmed"] == {"head": [], "slowed": [entry]}
    assert [len(first["processes"][side][entry]) for side in ("base", "head", "slowed")] == [2] * 3


def test_an_entry_slower_than_half_the_factor_is_measured_again_as_the_gate_does():
    """x1.08 is below the factor, so asv's rule passes it; the gate's nomination bar (1.05 at
    1.10) sends it to the confirming rounds, and only when there are any."""
    from asv_runner.statistics import compute_stats

    def result(scale):
        samples = [scale * (0.100 + 0.001 * i) for i in range(20)]
        return (*compute_stats(samples, 1), samples)

    trial = {"base": {"time_x": result(1.0)}, "head": {"time_x": result(1.08)}}
    assert noise._flagged(trial, 1.10, nominate=True) == {"base": {"time_x"}, "head": {"time_x"}}
    assert noise._flagged(trial, 1.10, nominate=False) == {"base": set(), "head": set()}
    trial["head"]["time_x"] = result(1.04)
    assert noise._flagged(trial, 1.10, nominate=True)["head"] == set()


def test_a_trial_close_to_the_factor_gets_the_gates_extra_rounds():
    """As in the gate: after the confirming rounds, an entry between the nomination bar and
    twice the factor's margin (x1.05-1.20 at 1.10) is measured again, per side against base,
    for up to four more rounds; base measures what any side still needs."""
    from unet_decoder.tracking.rounds import next_round

    ratios = {"head": {"a": 1.12, "b": 1.0}, "slowed": {"a": 1.3, "b": 1.1}}
    everything = {"base": {"a", "b"}, "head": {"a", "b"}, "slowed": {"a", "b"}}
    assert next_round(ratios, 2, 3, 1.10) == everything
    assert next_round(ratios, 3, 3, 1.10) == {
        "base": {"a", "b"}, "head": {"a"}, "slowed": {"b"}}  # fmt: skip
    assert next_round(ratios, 7, 3, 1.10)["base"] == set()


def test_the_slowed_side_runs_before_after_and_between_the_gate_pair():
    orders = [noise.round_order(r, with_slowed=True) for r in range(6)]
    assert {o.index("slowed") for o in orders} == {0, 1, 2}
    assert [o.index("base") < o.index("head") for o in orders] == [True, False] * 3
    assert noise.round_order(1, with_slowed=False) == ["head", "base"]  # asv continuous's
