"""Where a record came from: the command that wrote it, the commit it ran, and when.

A number without its settings is not a number: the `--json` files `bench` and `noise` write
carry this block beside their machine block, so a record kept under docs/measurements/ says
what produced it.
"""

from __future__ import annotations

import datetime
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path


def _git(*args: str) -> str | None:
    folder = Path(__file__).resolve().parent
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True,
                              text=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def provenance(argv: Sequence[str]) -> dict[str, object]:
    """{command, commit, dirty, date}: the commit is the checkout this package runs from
    (None for an installed wheel); dirty means tracked files differed from it."""
    commit = _git("rev-parse", "HEAD")
    changes = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {
        "command": shlex.join(["unet-decoder", *argv]),
        "commit": commit,
        "dirty": bool(changes) if commit else None,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
