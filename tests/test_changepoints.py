"""The nightly judges each series against its own stored nights: a step and a slow drift are
reported with the night they began; a flat noisy series is not."""

import math
import random

import pytest

from unet_decoder.tracking.changepoints import change_points, find_change

#: On this 2-core VM one night's value moves by 2-5% between processes (docs/gate.md).
NOISE = 0.03


def _series(level, nights: int = 20, noise: float = NOISE, seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    return [level(t) * math.exp(rng.gauss(0, noise)) for t in range(nights)]


@pytest.mark.parametrize("seed", range(5))
def test_a_flat_noisy_series_has_no_change_point(seed):
    assert find_change(_series(lambda t: 0.020, nights=30, noise=0.05, seed=seed)) is None


def test_a_step_is_found_at_the_night_it_happened():
    change = find_change(_series(lambda t: 0.020 * (1.10 if t >= 12 else 1.0)))
    assert change is not None and change.shape == "step" and change.start == 12
    assert change.ratio == pytest.approx(1.10, abs=0.03)


def test_a_drift_of_two_percent_a_night_is_found_near_the_night_it_began():
    """No two successive nights differ by more than the noise, and none by the gate's 1.10."""
    change = find_change(_series(lambda t: 0.020 * 1.02 ** max(0, t - 9), nights=17, noise=0.01))
    assert change is not None and change.shape == "drift" and abs(change.start - 10) <= 1
    assert change.ratio == pytest.approx(1.02**7, abs=0.04)


def test_a_change_smaller_than_the_floor_is_not_reported():
    values = [0.020] * 10 + [0.0201] * 6  # +0.5% with no noise at all: real, but below 2%
    assert find_change(values) is None
    assert find_change([0.020] * 10 + [0.021] * 6).start == 10  # +5%, no noise: found


def _write_nights(results, machine, series: dict[str, list[float]]) -> list[str]:
    from asv.results import Results
    from asv.runner import BenchmarkResult

    nights = len(next(iter(series.values())))
    commits = [f"{n:02d}" + "ab" * 19 for n in range(nights)]
    for night, commit in enumerate(commits):
        result = Results({"machine": machine}, {}, commit, 1_700_000_000_000 + night * 86_400_000,
                         "3.11", "env", {})  # fmt: skip
        for name, values in series.items():
            benchmark = {"name": name, "params": [["'resnet34'"]], "version": "v"}
            value = values[night]
            measured = BenchmarkResult(result=[value], samples=[[value]], number=[1], errcode=0,
                                       stderr="", profile=None)  # fmt: skip
            result.add_result(benchmark, measured)
        result.save(str(results))
    # asv reads a machine's results only beside its machine.json, as `asv run` writes it
    (results / machine / "machine.json").write_text(f'{{"machine": "{machine}", "version": 1}}')
    return commits


def test_the_nightly_names_each_series_that_changed_and_the_commit_it_began_at(tmp_path):
    series = {
        "forward.Forward.time_forward": _series(
            lambda t: 0.02 * (1.08 if t >= 11 else 1.0), nights=16, noise=0.01
        ),
        "forward.Scaling.time_forward": _series(lambda t: 0.05, nights=16, seed=1),
        # faster is not a regression; a census total is the gate's to compare
        "forward.Forward.peakmem_forward": [1e9] * 8 + [0.9e9] * 8,
        "census.Census.track_census": [300.0] * 8 + [400.0] * 8,
    }
    commits = _write_nights(tmp_path / "results", "m", series)
    (found,) = change_points(tmp_path / "results", "m")
    assert found.entry == "forward.Forward.time_forward('resnet34') [m/env]"
    assert found.commit == commits[11] and found.change.shape == "step"
    assert f"since {commits[11][:8]}" in found.line() and "16 nights" in found.line()
    assert change_points(tmp_path / "results", "another-machine") == []


def test_the_nightly_report_lists_the_change_points_for_its_issue(tmp_path):
    from unet_decoder.cli.nightly import _changes

    steps = [0.02] * 12 + [0.025] * 4
    commits = _write_nights(tmp_path / "results", "m", {"forward.Forward.time_forward": steps})
    text = _changes(tmp_path / "results", "m")
    assert text.startswith("Series whose level changed") and f"since {commits[12][:8]}" in text
    assert _changes(tmp_path / "nothing", "m") == "" and _changes(None, "m") == ""
