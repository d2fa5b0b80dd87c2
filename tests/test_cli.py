"""`unet-decoder bench` as a user runs it: files that parse, a table, and clear refusals."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from unet_decoder.cli import main

from .task_files import write_task_as_files

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
    machine = result["machine"]
    assert {"torch", "threads", "cpu", "cpu_flags", "cores", "load_before"} <= machine.keys()
    # a record says what wrote it: the command, and the commit of this checkout
    made = result["provenance"]
    assert made["command"].startswith("unet-decoder bench ") and "--json" in made["command"]
    assert len(made["commit"]) == 40 and isinstance(made["dirty"], bool)
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


def test_smp_peers_use_smps_own_encoder_where_it_has_one_else_timms():
    """bench --peers's smp rows (measured in test_engines) on the encoder the user named."""
    import torch

    from unet_decoder.bench.peers import smp_unet

    own, timms = smp_unet("resnet18", num_classes=4), smp_unet("test_resnet", num_classes=4)
    assert own.encoder_name == "smp:resnet18" and timms.encoder_name == "smp:tu-test_resnet"
    with torch.no_grad():
        assert own(torch.randn(1, 3, 64, 64)).shape == (1, 4, 64, 64)


def test_help_and_usage_errors_do_not_import_torch():
    """`--help` and a mistyped option answer at once: torch, timm and asv are not imported."""
    code = (
        "import sys\n"
        "from unet_decoder.cli import main\n"
        "for argv in (['--help'], ['bench', '--nope'], ['gate', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = sorted({'torch', 'timm', 'torchvision', 'asv'} & set(sys.modules))\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "HEAVY []" in done.stderr, done.stderr[-2000:]
    assert "usage: unet-decoder" in done.stdout


def _result(encoders, flags):
    machine = {"threads": 2, "torch": "2.14.1", "cores": 2, "cpu": "x", "load_before": 0.1,
               "others_cpu_pct": 1.0}  # fmt: skip
    rows = [
        dict(encoder=e, model="unet_decoder", flags=f, median_ms=111.7, iqr_ms=3.3, samples=10,
             speedup=1.0, gflops=123, peak_pct=60, peak_mb=91, max_rel_error=4.1e-7,
             pixel_agreement=1.0, setup_s=9.1, within_budget=True, budget=1e-4)
        for e in encoders for f in flags
    ]  # fmt: skip
    weights = {e: "trained on shapes-v1 (mIoU 0.93)" for e in encoders}
    return {"machine": machine, "input": {"batch": 1, "channels": 3, "size": 256},
            "weights": weights, "conv_peak_gflops": 207.0, "rows": rows}  # fmt: skip


@pytest.mark.parametrize(
    "encoders", [["resnet18"], ["resnet34", "efficientnet_b0", "mobileone_s0", "convnext_atto"]]
)
def test_the_table_fits_80_columns_and_cuts_no_cell(encoders):
    longest = "reparam+fuse_bn+concat_free+channels_last+bf16+compile+inference_mode"
    text = _printed(_result(encoders, ["none", longest]), width=80)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    for flag in longest.split("+"):  # wrapped after a '+', never cut inside a name
        assert flag in text
    for encoder in encoders:
        assert encoder in text


def test_a_peer_comparison_says_who_is_ahead_not_a_ratio_under_one_called_faster():
    result = _result(["resnet18"], ["none"])  # ours: 111.7 ms
    smp = {**result["rows"][0], "model": "smp.Unet", "flags": "compile", "median_ms": 55.85}
    result["rows"].append(smp)
    text = _printed(result, width=200)
    assert "smp.Unet at its best (compile) 55.9 ms: 0.50x (NOT ahead" in text
    assert "x faster" not in text
    smp["median_ms"] = 223.4
    assert "223.4 ms: 2.00x (ahead; ahead means >= 1.05x)" in _printed(result, width=200)


def _printed(result: dict, *, width: int) -> str:
    """What bench prints under its table, on a terminal this wide."""
    from rich.console import Console

    from unet_decoder.bench.report import print_table

    with open(os.devnull, "w") as sink:
        console = Console(width=width, record=True, file=sink)
        print_table(result, console)
    return console.export_text()


def test_busy_machine_and_wide_spread_are_warned_under_the_table():
    from unet_decoder.bench.report import warnings_for

    quiet = _result(["resnet18"], ["none"])
    assert warnings_for(quiet) == []
    busy = _result(["resnet18"], ["none"])
    busy["machine"].update(load_before=1.9, others_cpu_pct=40.0)
    busy["rows"][0]["iqr_ms"] = 30.0
    notes = " ".join(warnings_for(busy))
    assert "load average 1.90" in notes and "40%" in notes and "spread over 10%" in notes


def test_bf16_rows_on_a_cpu_without_native_bf16_are_called_emulated():
    from unet_decoder.bench.report import warnings_for

    result = _result(["resnet18"], ["none", "bf16+compile"])
    result["rows"][1].update(precision="bf16", backend="torch")
    result["machine"]["cpu_flags"] = ["avx2", "fma"]
    assert any("no native bf16" in note for note in warnings_for(result))
    result["machine"]["cpu_flags"] = ["avx2", "fma", "avx512f", "avx512_bf16"]
    assert warnings_for(result) == []


@pytest.mark.parametrize("native", [True, False], ids=["native-bf16", "emulated-bf16"])
def test_the_default_rows_leave_bf16_out_only_where_torch_would_emulate_it(monkeypatch, native):
    """Emulated bf16 rows took 8 minutes of the default bench's setup on an AVX2 machine and
    measure nothing a bf16 CPU would see; asked for with --flags, they still run."""
    from unet_decoder.bench import rows as bench
    from unet_decoder.model import UNet

    monkeypatch.setattr(bench, "torch_has_native_bf16", lambda: native)
    models = {"test_resnet": UNet("test_resnet").eval()}
    skipped: list[str] = []
    default = [flags for _, flags in bench.row_plans(models, None, skipped)]
    with_bf16 = [flags for flags in default if "bf16" in flags]
    assert [f for f in default if "bf16" not in f] == [
        f for f in bench.default_flag_sets(models["test_resnet"]) if "bf16" not in f
    ]
    if native:
        assert with_bf16 == [
            ["bf16"],
            ["fuse_bn", "concat_free", "channels_last", "bf16", "compile", "inference_mode"],
        ]
        assert skipped == []
    else:
        assert with_bf16 == [] and skipped == [bench.EMULATED_BF16_NOTE]
        assert "--flags" in skipped[0] and "no native bf16" in skipped[0]
    asked: list[str] = []
    assert bench.row_plans(models, [["none"], ["bf16"]], asked) == [
        ("test_resnet", []),
        ("test_resnet", ["bf16"]),
    ]
    assert asked == []


def test_bench_on_a_pipe_logs_progress_lines(tmp_path):
    argv = [sys.executable, "-m", "unet_decoder.cli", "bench", *TINY, "--flags", "none"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    # training notes (first run on a machine) come between, unnumbered
    assert "[1/3] conv peak" in done.stderr and "[2/3] test_resnet none" in done.stderr
    assert "[3/3] test_resnet: timing 1 rows in interleaved rounds" in done.stderr
    assert "test_resnet" in done.stdout and "median ms" in done.stdout


def test_unknown_encoder_suggests_the_family_first(capsys):
    assert main(["bench", "--encoders", "resnet_nope"]) == 2
    err = capsys.readouterr().err
    assert "resnet18" in err and "resnet34" in err and "tresnet" not in err


def test_cpu_taken_by_neighbours_is_measured_and_our_children_are_not():
    """The busy-machine guard: a neighbour's busy loop shows; our own subprocesses do not."""
    import time

    from unet_decoder.bench.neighbours import OtherProcessesCPU

    burn = "import time\nt = time.time()\nwhile time.time() - t < 2: pass"
    watch = OtherProcessesCPU().start()
    subprocess.run([sys.executable, "-c", burn], check=True)  # our child, like compile workers
    ours = watch.stop()
    # sh exits at once, so the burner is re-parented: a neighbour, not our descendant
    subprocess.run(["sh", "-c", f"{sys.executable} -c '{burn}' >/dev/null 2>&1 &"], check=True)
    watch = OtherProcessesCPU().start()
    time.sleep(1.5)
    neighbours = watch.stop()
    assert ours is not None and neighbours is not None
    assert ours < 15 < 25 < neighbours  # one of 2 cores busy is ~50%


def test_bench_on_your_checkpoint_and_images_reports_agreement_and_miou(
    tmp_path, trained_test_resnet
):
    write_task_as_files(tmp_path, 8)
    out = tmp_path / "r.json"
    argv = ["bench", "--encoders", "test_resnet", "--size", "128", "--min-seconds", "0.05",
            "--flags", "none", "bf16", "--checkpoint", str(trained_test_resnet.path),
            "--images", str(tmp_path / "images"), "--masks", str(tmp_path / "masks"),
            "--json", str(out)]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert "6 held-out image(s)" in result["weights"]["test_resnet"]  # 2 of 8 calibrate
    plain, bf16 = result["rows"]
    assert plain["miou"] >= 0.75 and plain["pixel_agreement"] == 1.0  # test_resnet, 128 px
    assert bf16["within_budget"] and bf16["miou"] >= 0.75


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--images", "{tmp}/nope"], "is not a folder"),
        (["--images", "{tmp}/empty"], "holds no image files"),
        (["--images", "{tmp}/images", "--masks", "{tmp}/empty"], "holds no image files"),
        (["--images", "{tmp}/images", "--masks", "{tmp}/short"], "no mask for"),
        (["--masks", "{tmp}/masks"], "--masks needs --images"),
        (["--encoders", "test_resnet,test_efficientnet"], "one --encoders"),
    ],
    ids=["no-folder", "empty", "empty-masks", "missing-mask", "masks-alone", "two-encoders"],
)
def test_bad_user_data_is_one_line_and_exit_code_2(tmp_path, capsys, extra, message):
    from safetensors.torch import save_file

    from unet_decoder import UNet

    write_task_as_files(tmp_path, 4)
    (tmp_path / "empty").mkdir()
    (tmp_path / "short").mkdir()  # masks for some images only
    (tmp_path / "short" / "03.png").write_bytes((tmp_path / "masks" / "03.png").read_bytes())
    checkpoint = tmp_path / "w.safetensors"
    save_file(UNet("test_resnet", num_classes=4).state_dict(), str(checkpoint))
    argv = ["bench", "--encoders", "test_resnet", "--size", "64", "--flags", "none",
            "--checkpoint", str(checkpoint)]  # fmt: skip
    assert main(argv + [a.format(tmp=tmp_path) for a in extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0, err
