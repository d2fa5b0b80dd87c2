"""A scratch clone of this repo whose asv builds one real virtualenv, for asv/gate tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from asv.util import load_json

ROOT = Path(__file__).resolve().parents[1]
#: The grid is fixed; tests pick its cheapest entries (timm's tiny test_resnet) by regex.
SMOKE = r"\('test_resnet'(, '(none|fuse_bn|reparam)')?\)"


def uv_cache_dir() -> str:
    """The cache `uv sync` filled (it holds torch 2.14.1's wheels): uv's own answer."""
    found = subprocess.run(["uv", "cache", "dir"], capture_output=True, text=True, check=True)
    return found.stdout.strip()


class ScratchRepo:
    def __init__(self, tmp_path: Path, env_dir: Path, *, whole_matrix: bool = False) -> None:
        self.tmp = tmp_path
        self.path = tmp_path / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(self.path)], check=True)
        conf = load_json(str(self.path / "asv.conf.json"), js_comments=True)
        if not whole_matrix:
            # one real environment (torch 2.14.1, in uv's cache after `uv sync`), not the matrix
            conf["matrix"]["req"].update(torch=["2.14.1"], torchvision=["0.29.1"])
            conf["exclude"] = []
        # environments are shared by the session's scratch repos: built once, reused
        conf.update(repo=str(self.path), results_dir=str(tmp_path / "results"),
                    env_dir=str(env_dir), html_dir=str(tmp_path / "html"))  # fmt: skip
        self.config = self.path / "asv.conf.json"
        self.config.write_text(json.dumps(conf))
        self.commit("test config")
        # asv's machine file lives in HOME; uv's cache must not move with it, or every session
        # downloads each environment's ~3 GB of wheels again (28 s here for torch 2.14.1's)
        self.env = {**os.environ, "HOME": str(tmp_path), "UV_CACHE_DIR": uv_cache_dir()}
        self.asv("machine", "--yes", "--machine", "ci", check=True)

    def git(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        base = ["git", "-C", str(self.path), "-c", "user.name=t", "-c", "user.email=t@example.com"]
        return subprocess.run([*base, *args], capture_output=True, text=True, **kwargs)

    def commit(self, message: str) -> str:
        self.git("commit", "-qam", message, check=True)
        return self.git("rev-parse", "HEAD", check=True).stdout.strip()

    def edit(self, relative: str, old: str, new: str) -> None:
        path = self.path / relative
        text = path.read_text()
        assert old in text, f"{old!r} not in {relative}"
        path.write_text(text.replace(old, new, 1))

    def asv(self, *args: str, check: bool = False, timeout: int = 1800):
        command = [sys.executable, "-m", "asv", "--config", str(self.config), *args]
        return subprocess.run(command, cwd=self.path, env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=check)  # fmt: skip
