"""asv as users run it: a real config, a real run, a dashboard that renders data in a browser."""

import contextlib
import functools
import http.server
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from asv.config import Config
from asv.environment import iter_matrix
from asv.util import load_json

from .scratch import ROOT, SMOKE, ScratchRepo


def test_every_config_key_is_one_asv_reads():
    keys = set(load_json(str(ROOT / "asv.conf.json"), js_comments=True))
    known = set(vars(Config())) | {"version"}
    assert keys - known == set(), f"asv silently ignores {keys - known}"


def test_matrix_pairs_each_torch_with_its_torchvision():
    conf = Config.load(str(ROOT / "asv.conf.json"))
    envs = list(iter_matrix(conf.environment_type, conf.pythons, conf))
    pairs = sorted((e[("req", "torch")], e[("req", "torchvision")]) for e in envs)
    assert pairs == [("2.12.1", "0.27.1"), ("2.14.1", "0.29.1")]
    # the project wheel goes in with --no-deps, so every runtime dependency must be pinned
    for env in envs:
        assert {"torch", "torchvision", "timm", "torchao", "numpy", "safetensors", "rich"} <= {
            name for kind, name in env if kind == "req"
        }
    assert all("--no-deps" in c for c in conf.install_command)
    assert all(c.startswith("uv build") for c in conf.build_command)  # our wheel alone


def test_each_matrix_environment_installs_exactly_its_pins_with_uv(tmp_path):
    """asv loads the uv-pip plugin from the config, and every pin goes to uv as `==`."""
    from asv.environment import get_environments
    from asv.plugin_manager import plugin_manager

    from unet_decoder.tracking.asv_uv import UvPip, requirement_specs

    conf = Config.load(str(ROOT / "asv.conf.json"))
    conf.env_dir = str(tmp_path / "env")
    for plugin in conf.plugins:  # as asv's command line does before any command
        plugin_manager.import_plugin(plugin)
    envs = list(get_environments(conf, None))
    assert len(envs) == 2 and all(type(env) is UvPip for env in envs)
    for env in envs:
        specs = requirement_specs(env._requirements)
        assert f"torch=={env._requirements['torch']}" in specs
        assert len(specs) == len(conf.matrix["req"]) and all("==" in s for s in specs)
    assert requirement_specs({"pip+build": "", "numpy": ">=2,<3"}) == ["build", "numpy>=2,<3"]
    # the config's build and install commands run the uv on PATH, which the environments lack
    for env in envs:
        assert env.find_executable("uv") == shutil.which("uv")


def _asv_config(tmp_path: Path) -> Path:
    """The repo's config with results, html and machine file in a scratch folder."""
    conf = load_json(str(ROOT / "asv.conf.json"), js_comments=True)
    conf.update(
        repo=str(ROOT),
        benchmark_dir=str(ROOT / "benchmarks"),
        results_dir=str(tmp_path / "results"),
        html_dir=str(tmp_path / "html"),
        env_dir=str(tmp_path / "env"),
    )
    path = tmp_path / "asv.conf.json"
    path.write_text(json.dumps(conf))
    return path


def _asv(args, tmp_path, extra_env=None, timeout=900):
    env = {**os.environ, "HOME": str(tmp_path), **(extra_env or {})}
    asv = [sys.executable, "-m", "asv"]
    done = subprocess.run(
        asv + args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    return done


@contextlib.contextmanager
def _serve(folder: Path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def _head() -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def _measured(value) -> bool:
    """asv stores an unselected or skipped entry as null or NaN."""
    return value is not None and value == value


def _chromium_or_skip() -> str:
    """Debian's Chromium, or a skip that says how to get it; in CI (.ci/run) a failure."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium:
        return chromium
    reason = "Debian's chromium is not installed: `sudo apt-get install chromium` runs this check"
    if os.environ.get("UNET_DECODER_REQUIRE_BROWSER") == "1":
        pytest.fail(reason + " (UNET_DECODER_REQUIRE_BROWSER=1: CI must run it)")
    pytest.skip(reason)


@pytest.mark.slow
def test_quick_run_publishes_a_dashboard_whose_graphs_have_points(tmp_path):
    config = _asv_config(tmp_path)
    common = ["--config", str(config)]
    assert _asv(["machine", "--yes", "--machine", "ci"] + common, tmp_path).returncode == 0
    check = _asv(["check", "-E", f"existing:{sys.executable}"] + common, tmp_path)
    assert check.returncode == 0, check.stdout[-3000:]
    run = _asv(
        ["run", "--quick", "-E", f"existing:{sys.executable}", "--set-commit-hash", _head(),
         "--machine", "ci", "--show-stderr", "-b", SMOKE] + common,
        tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:]
    assert "failed" not in run.stdout
    results = [p for p in (tmp_path / "results" / "ci").glob("*.json") if p.name != "machine.json"]
    assert len(results) == 1
    saved = json.loads(results[0].read_text())["results"]
    assert {"forward.Forward.time_forward", "metrics.Metrics.track_relative_error",
            "metrics.Metrics.track_miou", "model.Model.track_params"} <= saved.keys()  # fmt: skip
    # accuracy is tracked on trained weights: the plain model really segments the task
    values, params = saved["metrics.Metrics.track_miou"][:2]
    entries = dict(zip(itertools.product(*params), values, strict=True))
    assert entries["'test_resnet'", "'none'"] >= 0.8  # 0.9 measured at 256 px
    assert not _measured(entries["'resnet34'", "'none'"])  # not selected: not measured
    publish = _asv(["publish"] + common, tmp_path)
    assert publish.returncode == 0, publish.stdout[-3000:]
    from unet_decoder.cli import main

    assert main(["asv-offline", str(tmp_path / "html")]) == 0

    chromium = _chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with _serve(tmp_path / "html") as url, sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
        page = browser.new_page()
        # Offline proof: every request that leaves this machine fails, as on a closed cluster.
        page.route(
            "**/*",
            lambda route: route.continue_() if route.request.url.startswith(url)
            else route.abort(),
        )  # fmt: skip
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/#forward.Forward.time_forward", wait_until="networkidle")
        page.wait_for_function(
            "() => window.$ && $('#main-graph').data('plot') !== undefined", timeout=30_000
        )
        points = page.evaluate(
            "() => $('#main-graph').data('plot').getData()"
            ".reduce((n, s) => n + s.data.filter(p => p[1] !== null).length, 0)"
        )
        page.screenshot(path=str(tmp_path / "dashboard.png"))
        browser.close()
    assert errors == []
    assert points == 1  # default view: flags 'none' of every encoder; test_resnet was run


@pytest.mark.slow
def test_your_checkpoint_is_tracked_in_its_own_series(tmp_path, trained_test_resnet):
    """UNET_BENCH_CHECKPOINT: your weights on your images, labelled by the file's hash."""
    import hashlib

    from .task_files import write_task_as_files

    write_task_as_files(tmp_path, 8, size=256)  # the grid's size: no resampling of textures
    config = _asv_config(tmp_path)
    common = ["--config", str(config)]
    assert _asv(["machine", "--yes", "--machine", "ci"] + common, tmp_path).returncode == 0
    user_env = {
        "UNET_BENCH_CHECKPOINT": str(trained_test_resnet.path),
        "UNET_BENCH_ENCODER": "test_resnet",
        "UNET_BENCH_IMAGES": str(tmp_path / "images"),
        "UNET_BENCH_MASKS": str(tmp_path / "masks"),
    }
    run = _asv(
        ["run", "--quick", "-E", f"existing:{sys.executable}", "--set-commit-hash", _head(),
         "--machine", "ci", "--show-stderr", "-b", r"UserModel.*'(none|fuse_bn)'\)"] + common,
        tmp_path, extra_env=user_env,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:]
    results = [p for p in (tmp_path / "results" / "ci").glob("*.json") if p.name != "machine.json"]
    saved = json.loads(results[0].read_text())["results"]
    digest = hashlib.sha256(trained_test_resnet.path.read_bytes()).hexdigest()[:12]
    values, params = saved["user.UserModel.track_miou"][:2]
    assert params[0] == [repr(f"{trained_test_resnet.path.stem}@{digest}")]
    assert params[1][0] == "'none'" and values[0] >= 0.8  # test_resnet at 256 px
    agreement = dict(zip(params[1], saved["user.UserModel.track_pixel_agreement"][0], strict=True))
    assert agreement["'none'"] == 100.0 and agreement["'fuse_bn'"] >= 99.9
    assert not _measured(agreement["'bf16'"])  # not selected


def _seed_checkpoint_for_every_matrix_torch(trained) -> None:
    """Trained weights are cached per torch release, so each matrix environment would train
    test_resnet again (~95 s here). The test below is about int8 running in every
    environment, not about training: its other environments load this session's weights,
    under the names they look for, in the session's own cache."""
    from unet_decoder.training.train import DEFAULT_STEPS, checkpoint_name

    conf = Config.load(str(ROOT / "asv.conf.json"))
    for env in iter_matrix(conf.environment_type, conf.pythons, conf):
        name = checkpoint_name("test_resnet", seed=0, steps=DEFAULT_STEPS,
                               torch_version=env[("req", "torch")])  # fmt: skip
        for suffix in (".safetensors", ".json"):
            target = trained.path.with_name(name + suffix)
            if not target.exists():
                shutil.copyfile(trained.path.with_suffix(suffix), target)


@pytest.mark.slow
def test_every_matrix_environment_runs_the_int8_entries(tmp_path, asv_env_dir, trained_test_resnet):
    """Each torch release of the matrix runs torch's int8 (the entry that failed in torch
    2.12.1: pt2e quantization and its AOTInductor build, in each torch). The engines' int8
    (ONNX Runtime, OpenVINO) quantize the ONNX export with quantizers of their own: test_artifacts
    runs them in the project's environment, and the nightly's full grid in every environment
    (50 s more here if this test ran OpenVINO's too, CI being near its 30 minutes)."""
    _seed_checkpoint_for_every_matrix_torch(trained_test_resnet)
    repo = ScratchRepo(tmp_path, asv_env_dir, whole_matrix=True)
    names = ("best_int8",)
    run = repo.asv("run", "--machine", "ci", "--show-stderr", "--quick", "-b",
                   rf"time_forward\('test_resnet', '({'|'.join(names)})'\)",
                   "HEAD^!")  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:]
    measured = {}
    for path in (tmp_path / "results" / "ci").glob("*.json"):
        if path.name in ("machine.json", "benchmarks.json"):
            continue
        data = json.loads(path.read_text())
        values, params = data["results"]["forward.Forward.time_forward"][:2]
        entries = dict(zip(itertools.product(*params), values, strict=True))
        torch_version = data["requirements"]["torch"]
        for name in names:
            measured[torch_version, name] = entries["'test_resnet'", f"'{name}'"]
    assert {torch for torch, _ in measured} == {"2.14.1", "2.12.1"}, run.stdout[-3000:]
    assert len(measured) == 2 and all(v is not None and v > 0 for v in measured.values()), measured


@pytest.mark.parametrize("native", [True, False], ids=["native-bf16", "emulated-bf16"])
def test_torch_bf16_entries_are_na_where_torch_would_emulate_bf16(monkeypatch, native):
    """As bench's default does; fp32, int8 and the engines are measured either way."""
    from benchmarks import common
    from benchmarks.compat import api

    monkeypatch.setattr(api, "torch_has_native_bf16", lambda: native)
    for flags in ("bf16", "best_bf16"):
        if native:
            assert "bf16" in common.resolve("test_resnet", flags)[1]
        else:
            with pytest.raises(NotImplementedError, match="no avx512_bf16 or amx_bf16"):
                common.resolve("test_resnet", flags)
    for flags in ("none", "best_compiled", "best_int8", "onnxruntime"):
        assert "bf16" not in common.resolve("test_resnet", flags)[1]


def test_an_artifact_is_reused_until_a_file_its_build_ran_changes(tmp_path, monkeypatch):
    """A pull request that changes the gate or the CLI loads its base's compiled artifacts
    instead of compiling them again; one that changes the model, or the benchmark's build
    script, builds anew; another torch (environment) never shares a folder."""
    import torch

    import unet_decoder
    from benchmarks import artifacts
    from unet_decoder import UNet

    package = tmp_path / "site" / "unet_decoder"
    shutil.copytree(Path(unet_decoder.__file__).parent, package,
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    monkeypatch.setattr(unet_decoder, "__file__", str(package / "__init__.py"))
    monkeypatch.delenv("UNET_BENCH_ARTIFACT_CACHE", raising=False)
    monkeypatch.setenv("ASV_CONF_DIR", str(tmp_path))
    monkeypatch.setenv("ASV_ENV_NAME", "uv-pip-py3.11-torch2.14.1")
    torch.manual_seed(0)
    model, x = UNet("test_resnet").eval(), torch.randn(1, 3, 64, 64)
    artifacts.deployed(model, "onnxruntime", ["fuse_bn"], x, 2)
    (entry,) = artifacts.artifact_cache().iterdir()
    (build,) = entry.glob("build-*")
    sources = json.loads((build / artifacts.SOURCES).read_text())
    # what the build child imported, not the whole package
    assert {"unet_decoder/model/unet.py", "unet_decoder/engines/onnxruntime.py",
            "benchmarks/artifact_child.py"} <= set(sources)  # fmt: skip
    assert "unet_decoder/tracking/gate.py" not in sources

    builds = []
    real_build = artifacts.build_in_child
    monkeypatch.setattr(artifacts, "build_in_child",
                        lambda *a: builds.append(a[1]) or real_build(*a))  # fmt: skip
    (package / "tracking" / "gate.py").write_text("# a gate change\n", encoding="utf-8")
    again = artifacts.deployed(model, "onnxruntime", ["fuse_bn"], x, 2)
    assert builds == []
    with torch.no_grad():  # the build it loaded is this model's (fp32, BN folded: 6e-8 here)
        assert torch.allclose(again(x), model(x), atol=1e-4)

    unet = package / "model" / "unet.py"
    unet.write_text(unet.read_text(encoding="utf-8") + "# a model change\n", encoding="utf-8")
    assert artifacts.built_by_this_code(entry) is None
    artifacts.deployed(model, "onnxruntime", ["fuse_bn"], x, 2)
    assert builds == ["onnxruntime"] and len(list(entry.glob("build-*"))) == 2
    assert artifacts.built_by_this_code(entry) not in (None, build)  # the changed model's

    digest = artifacts._file_digest
    child = artifacts.CHILD
    monkeypatch.setattr(artifacts, "_file_digest",
                        lambda path: "edited" if path == child else digest(path))  # fmt: skip
    assert artifacts.built_by_this_code(entry) is None  # the build program is a source too
    monkeypatch.setenv("ASV_ENV_NAME", "uv-pip-py3.11-torch2.12.1")
    assert artifacts.artifact_cache() != entry.parent


def test_a_build_whose_program_is_unchanged_links_the_earlier_package(tmp_path, monkeypatch):
    """A head that changes a file every build runs (a docstring of the model) builds anew, but
    its build child, another process, exports the same program, finds the earlier package by
    its digest and links it instead of compiling (28-62 s per entry here); the dashboard's
    setup seconds stay what building it cost. The earlier package is a stand-in written with
    the compiler faked: a child that compiled instead would not have linked it."""
    import torch
    import torch._inductor

    from benchmarks import artifacts
    from unet_decoder import UNet, build_artifact

    monkeypatch.setenv("UNET_BENCH_ARTIFACT_CACHE", str(tmp_path / "artifacts"))
    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package",
                        lambda program, package_path, inductor_configs:
                        Path(package_path).write_bytes(b"compiled earlier"))  # fmt: skip
    torch.manual_seed(0)
    model, x = UNet("test_resnet").eval(), torch.randn(1, 3, 64, 64)
    flags = ["fuse_bn", "channels_last", "compile"]
    entry = artifacts.artifact_cache() / "entry"
    earlier = entry / "build-earlier"
    record = build_artifact(model, flags, x, earlier, threads=2)
    (earlier / "build.json").write_text(json.dumps({"build_seconds": 40.0}))

    folder = artifacts.build_in_child(model, "torch", flags, x, 2, None, entry)
    assert folder != earlier and (folder / "model.pt2").samefile(earlier / "model.pt2")
    assert json.loads((folder / "deployed.json").read_text())["program"] == record.program
    built = json.loads((folder / "build.json").read_text())
    assert built["linked_from"] == "build-earlier" and built["build_seconds"] == 40.0


def test_a_cached_artifact_made_on_another_machine_is_built_again_not_refused(
    tmp_path, monkeypatch
):
    """A copied `.asv` or a CI cache restored on another CPU: the compiled entries still run,
    on an artifact built for this machine, instead of every one of them failing."""
    import torch

    from benchmarks import artifacts
    from unet_decoder import UNet

    monkeypatch.setenv("UNET_BENCH_ARTIFACT_CACHE", str(tmp_path / "artifacts"))
    torch.manual_seed(0)
    model, x = UNet("test_resnet").eval(), torch.randn(1, 3, 64, 64)
    first = artifacts.deployed(model, "onnxruntime", ["fuse_bn"], x, 2)
    (record,) = (tmp_path / "artifacts").glob("*/build-*/deployed.json")
    made = json.loads(record.read_text())
    here = made["environment"]["cpu_capability"]
    made["environment"]["cpu_capability"] = "another CPU"
    record.write_text(json.dumps(made))
    again = artifacts.deployed(model, "onnxruntime", ["fuse_bn"], x, 2)
    assert json.loads(record.read_text())["environment"]["cpu_capability"] == here  # rebuilt
    assert torch.allclose(again(x), first(x), atol=1e-5)
