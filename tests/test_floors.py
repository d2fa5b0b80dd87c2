"""Each paired entry's floor on this machine: the smallest slowdown the gate's rule caught in
8 of 10 trials. A gate that passes an entry whose floor is above its factor says so."""

import shutil
import subprocess
import sys

import pytest
import torch

from unet_decoder import UNet, build_artifact
from unet_decoder.cli import main
from unet_decoder.errors import UNetDecoderError
from unet_decoder.tracking.floors import (
    Floors,
    floor_of,
    for_this_machine,
    measure_floors,
    pairs_of,
    this_machine,
    with_floors,
)
from unet_decoder.tracking.side_by_side import (
    CLEARED,
    SAME,
    SLOWER,
    SUSPICIOUS,
    ArtifactPair,
    PairedVerdict,
)
from unet_decoder.tracking.verdict import INSUFFICIENT, PASS, REGRESSION, Verdict

from .scratch import ROOT

ENV = "uv-pip-py3.11-torch2.14.1"


def kinds(**fractions):
    """floor_of's input from counts: kinds(f000=(0, 10), f005=(7, 10)) = slower of all."""
    return {f"{int(k[1:]) / 100:.2f}": [SLOWER] * s + [CLEARED] * (n - s)
            for k, (s, n) in fractions.items()}  # fmt: skip


def test_the_floor_is_the_smallest_slowdown_caught_in_8_of_10_with_no_false_positive():
    assert floor_of(kinds(f000=(0, 10), f005=(9, 10), f010=(10, 10), f020=(10, 10))) == 0.05
    assert floor_of(kinds(f000=(0, 10), f005=(7, 10), f010=(8, 10), f020=(10, 10))) == 0.10
    # caught at 5% by luck but not at 10%: the floor is where every larger one is caught too
    assert floor_of(kinds(f000=(0, 10), f005=(8, 10), f010=(6, 10), f020=(10, 10))) == 0.20
    assert floor_of(kinds(f000=(0, 10), f005=(1, 10), f010=(3, 10), f020=(7, 10))) is None
    # one A/A trial called slower: this entry's "slower" means nothing here
    assert floor_of(kinds(f000=(1, 10), f005=(10, 10), f010=(10, 10), f020=(10, 10))) is None
    assert floor_of(kinds(f005=(10, 10))) is None  # no A/A trial at all


def _pair(tmp_path, entry="resnet34 none"):
    return ArtifactPair(entry, ENV, tmp_path / "a", tmp_path / "b")


def _record(tmp_path, floors_by_entry, machine=None):
    record = Floors(machine or this_machine())
    for entry, floor in floors_by_entry.items():
        record.entries[f"{entry} [{ENV}]"] = {"trials": {}, "floor": floor}
    path = tmp_path / "floors.json"
    record.write(path)
    return path


def test_a_pass_whose_entry_cannot_see_the_factor_here_is_insufficient(tmp_path):
    path = _record(tmp_path, {"resnet34 none": 0.20, "resnet34 best_compiled": 0.05})
    floors, said = for_this_machine(path)
    assert floors is not None and "this machine's" in said
    blind = PairedVerdict(_pair(tmp_path), CLEARED, 1.01, (0.97, 1.04), 4)
    sharp = PairedVerdict(_pair(tmp_path, "resnet34 best_compiled"), CLEARED, 1.0, (0.99, 1.01))
    told = with_floors(Verdict(PASS, "no benchmark slower"), [blind, sharp], floors, 1.10)
    assert told.kind == INSUFFICIENT and told.exit_code == 6
    assert f"resnet34 none [{ENV}] (floor 20%)" in told.message
    assert "best_compiled" not in told.message
    # a factor above the floor: the entry could have seen it
    assert with_floors(Verdict(PASS, "ok"), [blind, sharp], floors, 1.25).passed
    # the same program cannot be slower; a regression stays a regression
    same = PairedVerdict(_pair(tmp_path), SAME)
    assert with_floors(Verdict(PASS, "ok"), [same], floors, 1.10).passed
    failed = Verdict(REGRESSION, "slower")
    assert with_floors(failed, [blind], floors, 1.10) is failed
    unsure = PairedVerdict(_pair(tmp_path), SUSPICIOUS)
    assert with_floors(Verdict(PASS, "ok"), [unsure], floors, 1.10).passed  # with_pairs says it


def test_an_entry_measured_that_caught_nothing_is_insufficient_one_not_measured_is_said(tmp_path):
    path = _record(tmp_path, {"resnet34 none": None})
    floors, _ = for_this_machine(path)
    blind = PairedVerdict(_pair(tmp_path), CLEARED)
    told = with_floors(Verdict(PASS, "ok"), [blind], floors, 1.10)
    assert told.kind == INSUFFICIENT and "no floor up to 20%" in told.message
    other = PairedVerdict(_pair(tmp_path, "efficientnet_b0 none"), CLEARED)
    assert with_floors(Verdict(PASS, "ok"), [other], floors, 1.10).passed
    from unet_decoder.tracking.floors import floor_lines

    assert floor_lines([other], floors) == [f"efficientnet_b0 none [{ENV}]: floor not measured"]


def test_another_machines_record_is_not_used_and_a_broken_one_says_what_to_do(tmp_path):
    elsewhere = {**this_machine(), "cpu": "Some Other CPU"}
    floors, said = for_this_machine(_record(tmp_path, {"resnet34 none": 0.2}, elsewhere))
    assert floors is None and "Some Other CPU" in said and "not used" in said
    assert for_this_machine(tmp_path / "none.json")[0] is None
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "unet-decoder floors 1", "entr')
    with pytest.raises(UNetDecoderError, match=r"cannot be read.*unet-decoder floors"):
        for_this_machine(broken)
    broken.write_text("[1, 2]")
    with pytest.raises(UNetDecoderError, match="is not a floors record"):
        for_this_machine(broken)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    root = tmp_path_factory.mktemp("floors")
    torch.manual_seed(0)
    build_artifact(UNet("test_resnet").eval(), ["fuse_bn"], torch.randn(1, 3, 64, 64),
                   root / "folded", threads=1)  # fmt: skip
    return root / "folded"


def test_measuring_times_an_entry_against_a_copy_of_itself_and_keeps_each_trial(tmp_path, artifact):
    """The rule is faked here (its timing has tests of its own): what is measured against
    what, how often, and what the record keeps."""
    seen = []

    def timed(pair, *, inject_b):
        copied = pair.head != artifact and (pair.head / "deployed.json").is_file()
        seen.append((pair.base, copied, inject_b))
        caught = inject_b >= 0.10
        return PairedVerdict(pair, SLOWER if caught else CLEARED, 1 + inject_b, (1.0, 1.1), 4)

    pair = ArtifactPair("test_resnet best_eager", ENV, artifact, artifact)
    path = tmp_path / "floors.json"
    found = measure_floors([pair], path, trials=2, injections=(0.05, 0.10), timed=timed)
    assert [f for _, _, f in seen] == [0.0, 0.05, 0.10] * 2  # interleaved, per trial
    assert all(base == artifact and copied for base, copied, _ in seen)  # against a copy
    (entry,) = found.entries.values()
    assert entry["floor"] == 0.10 and len(entry["trials"]["0.05"]) == 2
    again = Floors.read(path)
    assert again.entries == found.entries and again.machine == this_machine()
    # a later run adds its trials to this machine's record
    measure_floors([pair], path, trials=1, injections=(0.05, 0.10), timed=timed)
    assert len(Floors.read(path).entries[f"test_resnet best_eager [{ENV}]"]["trials"]["0.00"]) == 3


def test_the_real_rule_measures_a_floor_record_the_gate_reads(tmp_path, artifact):
    """Nothing faked: two fresh processes a judgement, a 100% slowdown beside A/A."""
    pair = ArtifactPair("test_resnet best_eager", ENV, artifact, artifact, sys.executable)
    path = tmp_path / "floors.json"

    def timed(p, *, inject_b):
        from unet_decoder.tracking.side_by_side import timed_verdict

        return timed_verdict(p, processes=3, extra=0, blocks=3, calls=2, inject_b=inject_b)

    found = measure_floors([pair], path, trials=1, injections=(1.0,), timed=timed)
    trials = found.entries[f"test_resnet best_eager [{ENV}]"]["trials"]
    assert trials["1.00"][0]["ratio"] > 1.5, trials  # twice the work, seen side by side
    assert 0.8 < trials["0.00"][0]["ratio"] < 1.25, trials
    assert for_this_machine(path)[0] is not None


def _git(repo, *args):
    base = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    return subprocess.run([*base, *args], capture_output=True, text=True, check=True).stdout.strip()


def test_the_entries_measured_are_those_the_gate_would_pair_for_the_commit(tmp_path, artifact):
    from unet_decoder.census import Census, census_path

    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "one")
    commit = _git(repo, "rev-parse", "HEAD")
    for flags in ("best_eager", "best_compiled"):
        about = {"artifact": str(artifact), "python": sys.executable}
        Census("torch-eager", {"op aten.add": 1}, about=about).write(
            census_path(repo, ENV, commit, "test_resnet", flags))  # fmt: skip
    found = pairs_of(repo, repo, "HEAD")
    assert sorted(p.entry for p in found) == ["test_resnet best_compiled", "test_resnet best_eager"]
    assert [p.entry for p in pairs_of(repo, repo, "HEAD", "compiled")] == [
        "test_resnet best_compiled"
    ]
    with pytest.raises(UNetDecoderError, match="not a regular expression"):
        pairs_of(repo, repo, "HEAD", "(")
    with pytest.raises(UNetDecoderError, match="no entry to measure"):
        measure_floors([], tmp_path / "f.json")
    with pytest.raises(UNetDecoderError, match="--trials must be at least 1"):
        measure_floors(found, tmp_path / "f.json", trials=0)


def test_the_floors_command_says_what_to_do_when_nothing_was_built(tmp_path, capsys, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "one")
    shutil.copy(ROOT / "asv.conf.json", repo / "asv.conf.json")
    monkeypatch.chdir(repo)
    assert main(["floors", "HEAD", "--trials", "1"]) == 2
    err = capsys.readouterr().err
    assert "no entry to measure" in err and len(err.strip().splitlines()) == 1
    assert main(["floors", "no-such-commit"]) == 2
    assert "is not a commit" in capsys.readouterr().err
    assert not (repo / ".asv" / "floors.json").exists()  # written only once measured


def test_the_gate_reads_this_machines_record_and_names_what_it_could_not_see(monkeypatch, tmp_path):
    """The gate's own path: asv saw nothing, the pair was not slower, and the record beside
    the config says this entry's floor here is 20%: insufficient, exit 6, floor in the report."""
    from unet_decoder.tracking.gate import run_gate

    from .test_gate import _fake_asv

    shutil.copy(ROOT / "asv.conf.json", tmp_path / "asv.conf.json")
    (tmp_path / ".asv").mkdir()
    _record(tmp_path / ".asv", {"test_resnet none": 0.20})
    pair = _pair(tmp_path, "test_resnet none")
    monkeypatch.setattr("unet_decoder.tracking.gate.artifact_pairs", lambda censuses: [pair])
    monkeypatch.setattr("unet_decoder.tracking.gate.eager_pairs", lambda *args: [])
    judged = PairedVerdict(pair, CLEARED, 1.004, (0.981, 1.028), 4)
    monkeypatch.setattr("unet_decoder.tracking.gate.judge", lambda p: judged)

    def gate(**options):
        quiet = (0, "BENCHMARKS NOT SIGNIFICANTLY CHANGED.")
        _fake_asv(monkeypatch, {"continuous": [quiet]})
        return run_gate("main", "HEAD", config=tmp_path / "asv.conf.json", confirm_rounds=0,
                        **options)  # fmt: skip

    told = gate()
    assert told.verdict.kind == INSUFFICIENT and told.exit_code == 6, told.verdict.message
    summary = told.summary("main", "HEAD", 1.10)
    assert "this machine's" in summary and f"test_resnet none [{ENV}]: floor 20%" in summary
    assert gate(factor=1.25).passed  # 20% is within what a 1.25 gate asks
    missing = gate(floors=tmp_path / "elsewhere.json")
    assert missing.passed and "no floors record" in missing.summary("main", "HEAD", 1.10)
