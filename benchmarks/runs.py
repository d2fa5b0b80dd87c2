"""Folders shared by the processes of one `asv run`: what one entry measured once, and the
exports its processes reuse."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

#: Run folders older than this are removed when a benchmark process starts (exports are
#: ~100 MB each and only the run that wrote them reads them).
STALE_RUN_SECONDS = 6 * 3600


def _remove_stale_runs(root: Path) -> None:
    if not root.is_dir():
        return
    for run in root.iterdir():
        try:
            if time.time() - run.stat().st_mtime > STALE_RUN_SECONDS:
                shutil.rmtree(run, ignore_errors=True)
        except OSError:
            pass


def run_scoped_cache(name: str) -> Path:
    """A folder shared by the processes of one `asv run` (one environment, one commit).

    asv runs every (benchmark, parameters) in its own process, children of one forkserver
    (or of asv itself) per run: that parent's pid and start time identify the run, so the
    six track_ metrics of an entry are measured once, and a rerun measures again.
    """
    parent = os.getppid()
    try:
        started = Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        started = "0"
    run = f"{parent}-{started}-{os.environ.get('ASV_COMMIT', 'x')[:12]}"
    root = Path(tempfile.gettempdir()) / "unet-decoder-asv"
    if not (root / run).exists():
        _remove_stale_runs(root)
    folder = root / run / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def cached_entry(name: str, key: str, compute) -> dict:
    """compute() once per run for this key; later processes of the run read the file."""
    path = run_scoped_cache(name) / f"{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    values = compute()
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(values))
    os.replace(tmp, path)
    return values


def engine_options(backend: str) -> dict:
    """optimize()/measure_row() keywords for an engine entry: one ONNX export per encoder
    and weights per asv run, shared by its processes, instead of one per process."""
    if backend == "torch":
        return {}
    return {"backend": backend, "onnx_cache": run_scoped_cache("onnx")}
