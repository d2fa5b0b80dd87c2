"""`unet-decoder bench` as a user runs it: files that parse, a table, and clear refusals."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from unet_decoder.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--encoders", "test_resnet", "--size", "64", "--min-seconds", "0.05"]
ROW_FIELDS = {"encoder", "flags", "median_ms", "speedup", "gflops", "max_rel_error", "peak_mb"}


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    paths = {"json": out / "r.json", "csv": out / "r.csv", "plot": out / "r.png"}
    argv = ["bench", *TINY, "--flags", "none", "fuse_bn+channels_last", "bf16", "--threads", "1"]
    for key, path in paths.items():
        argv += [f"--{key}", str(path)]
    return main(argv), paths


def test_bench_writes_json_with_the_documented_fields(bench_run):
    code, paths = bench_run
    assert code == 0
    result = json.loads(paths["json"].read_text())
    assert {"torch", "threads", "cpu"} <= result["machine"].keys()
    assert result["machine"]["threads"] == 1
    rows = result["rows"]
    assert [r["flags"] for r in rows] == ["none", "fuse_bn+channels_last", "bf16"]
    for row in rows:
        assert row.keys() >= ROW_FIELDS
        assert row["median_ms"] > 0 and row["gflops"] > 0
    assert rows[0]["speedup"] == pytest.approx(1.0)
    assert rows[0]["max_rel_error"] == 0.0
    assert rows[1]["max_rel_error"] <= 1e-4 and 0 < rows[2]["max_rel_error"] <= 3e-2


def test_bench_writes_csv_and_a_png_that_opens(bench_run):
    _, paths = bench_run
    rows = list(csv.DictReader(paths["csv"].open()))
    assert [r["flags"] for r in rows] == ["none", "fuse_bn+channels_last", "bf16"]
    from PIL import Image

    with Image.open(paths["plot"]) as image:
        assert image.format == "PNG" and image.width > 300 and image.height > 100


def test_bench_prints_a_table_and_names_the_fastest(capsys):
    assert main(["bench", *TINY, "--flags", "none", "inference_mode"]) == 0
    out = capsys.readouterr().out
    assert "median ms" in out and "inference_mode" in out
    assert "Fastest within the accuracy budget" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--encoders", "resnet343"], "Did you mean"),
        (["--flags", "fuse_bnn"], "Unknown optimization flag"),
        (["--flags", "reparam"], "does not apply to encoder"),
        (["--json", "/nonexistent-dir/r.json"], "does not exist"),
        (["--csv", "/proc/r.csv"], "not writable"),
        (["--size", "8"], "--size"),
    ],
    ids=[
        "unknown-encoder",
        "unknown-flag",
        "inapplicable-flag",
        "missing-dir",
        "unwritable",
        "tiny-size",
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(capsys, argv, message):
    base = ["bench", "--encoders", "test_resnet", "--size", "64", "--min-seconds", "0.05"]
    assert main(base + argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0 and "Traceback" not in err


def test_a_failed_run_leaves_no_results_file(tmp_path, capsys):
    path = tmp_path / "r.json"
    assert main(["bench", *TINY, "--flags", "reparam", "--json", str(path)]) == 2
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_seed_command_runs_from_its_folder(tmp_path):
    folder = ROOT / "benchmarks" / "unet_decoder"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    argv = [
        sys.executable,
        "benchmark.py",
        *TINY,
        "--flags",
        "none",
        "--json",
        f"{tmp_path}/r.json",
    ]
    done = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((tmp_path / "r.json").read_text())["rows"][0]["flags"] == "none"


@pytest.mark.slow
def test_peers_add_smp_rows_to_the_same_table(tmp_path):
    path = tmp_path / "r.json"
    argv = ["bench", "--encoders", "resnet18", "--size", "64", "--min-seconds", "0.05",
            "--flags", "none", "--peers", "--json", str(path)]  # fmt: skip
    assert main(argv) == 0
    rows = json.loads(path.read_text())["rows"]
    peers = [r for r in rows if r["model"] == "smp.Unet"]
    assert [r["flags"] for r in peers] == ["none", "channels_last+compile+inference_mode"]
    assert peers[1]["max_rel_error"] <= 1e-4
