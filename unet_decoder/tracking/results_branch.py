"""The results branch: every night's asv results, kept apart from the source.

History lives on its own branch (default `asv-results`) so that it survives CI runners and
never mixes with source. It is append-only: result files are added or updated, never
deleted, so a rerun neither loses nor duplicates a result (asv names files by machine,
commit and environment). A file that does not parse (corrupted, half-written by a killed
job) stops the run with its name instead of silently vanishing from the dashboard.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from ..errors import UNetDecoderError


class CorruptResultsError(UNetDecoderError):
    """A results file on the results branch does not parse."""


def git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=check)  # fmt: skip


def check_results(folder: Path) -> list[Path]:
    """Every JSON file under folder must parse; raise naming the ones that do not."""
    bad = []
    files = sorted(folder.rglob("*.json")) if folder.is_dir() else []
    for path in files:
        try:
            json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError):
            bad.append(str(path.relative_to(folder)))
    if bad:
        raise CorruptResultsError(
            f"{len(bad)} results file(s) do not parse: {', '.join(bad[:5])}; restore them from "
            "the results branch history (git log -- <file>) or delete them, then rerun."
        )
    return files


def results_worktree(repo: Path, branch: str, path: Path) -> None:
    """A worktree of the results branch at path; an empty orphan branch if it is new."""
    if path.exists():
        git(repo, "worktree", "remove", "--force", str(path), check=False)
        shutil.rmtree(path, ignore_errors=True)
    git(repo, "worktree", "prune")
    exists = git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False)
    if exists.returncode == 0:
        git(repo, "worktree", "add", "--force", str(path), branch)
        return
    git(repo, "worktree", "add", "--detach", str(path))
    git(path, "checkout", "-q", "--orphan", branch)
    git(path, "rm", "-rqf", "--cached", ".")
    for child in path.iterdir():
        if child.name != ".git":
            shutil.rmtree(child) if child.is_dir() else child.unlink()


def sync(source: Path, target: Path) -> tuple[list[str], list[str]]:
    """Copy every file of source into target (never deleting); return (added, updated)."""
    added, updated = [], []
    for path in sorted(source.rglob("*")):
        if not path.is_file():
            continue
        relative = path.relative_to(source)
        destination = target / relative
        if destination.exists():
            if destination.read_bytes() == path.read_bytes():
                continue
            updated.append(str(relative))
        else:
            added.append(str(relative))
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)
    return added, updated


def store(results_dir: Path, stored: Path, worktree: Path, message: str):
    """Copy the run's results onto the results branch and commit them; (added, updated)."""
    added, updated = sync(results_dir, stored)
    if added or updated:
        git(worktree, "add", "results")
        git(worktree, "-c", "user.name=unet-decoder nightly", "-c",
             "user.email=nightly@localhost", "commit", "-qm",
             f"{message} (+{len(added)} new, {len(updated)} updated files)")  # fmt: skip
    return added, updated
