"""`unet-decoder pair A B`: two artifacts timed side by side in one process, judged on the
per-process ratios, so that a process's own speed level cancels."""

import json
import math
import re
import shutil

import pytest
import torch

from unet_decoder import UNet, build_artifact
from unet_decoder.bench.paired import PairedResult, block_order
from unet_decoder.cli import main


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pair") / "a"
    torch.manual_seed(0)
    build_artifact(UNet("test_resnet").eval(), ["fuse_bn"], torch.randn(1, 3, 64, 64), folder,
                   threads=1)  # fmt: skip
    return folder


def test_blocks_alternate_so_neither_side_always_runs_first():
    assert block_order(3) == ["A", "B", "B", "A", "A", "B"]


def test_the_verdict_is_on_the_processes_ratios_with_an_interval():
    same = PairedResult("a", "b", processes=[{"ratio": r} for r in (0.99, 1.01, 1.0, 1.0)])
    assert same.ratio == pytest.approx(1.0, abs=1e-3)
    low, high = same.interval
    assert low < 1 < high and "no difference" in same.verdict()
    slower = PairedResult("a", "b", processes=[{"ratio": r} for r in (1.05, 1.06, 1.04, 1.05)])
    assert slower.interval[0] > 1 and slower.verdict().startswith("B is slower: x1.050")
    # two processes 10% apart: a wide interval, not a verdict (t with 1 degree of freedom)
    wide = PairedResult("a", "b", processes=[{"ratio": 1.0}, {"ratio": 1.1}])
    assert wide.interval[0] < 1 and math.isfinite(wide.interval[1])


def test_a_slowed_artifact_is_seen_and_a_copy_is_not(artifact, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(artifact, copy)
    out = tmp_path / "pair.json"
    argv = ["pair", str(artifact), str(copy), "--processes", "4", "--blocks", "4", "--calls",
            "4", "--inject-b", "1.0", "--json", str(out)]  # fmt: skip
    assert main(argv) == 0
    record = json.loads(out.read_text())
    assert 1.6 < record["ratio"] < 2.4 and record["verdict"].startswith("B is slower")
    assert record["inject_b"] == 1.0 and record["provenance"]["command"].startswith(
        "unet-decoder pair"
    )
    assert [p["a_first"] for p in record["processes"]] == [True, False] * 2  # load order balanced
    assert main(argv[:-4] + ["--inject-b", "0"]) == 0  # the same file twice
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    ratio = float(re.search(r"x(\d+\.\d+)", printed).group(1))
    assert 0.85 < ratio < 1.15, printed  # the same file twice: within 15% of 1 either way


def test_a_folder_that_is_not_an_artifact_is_one_line(tmp_path, artifact, capsys):
    assert main(["pair", str(artifact), str(tmp_path)]) == 2
    assert "not a deployed artifact" in capsys.readouterr().err
