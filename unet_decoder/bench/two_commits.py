"""Two commits' eager code, timed side by side in one process.

An eager entry is the package's own Python, so there is no file to load and the pairing of
compiled entries (`bench.paired`) needs another way in. Each commit's package is taken from
git (`git archive`) under a name of its own (`unet_decoder_a`, `unet_decoder_b`). The package
imports itself only relatively, so the two import side by side, each with its own modules,
classes and passes, and share the environment's one torch and timm. Each builds the entry
through its own facade (`benchmarking`: the trained weights of its own architecture, its own
flags, its own `optimize`), as its asv benchmark does. The two are then timed in the
alternating blocks of `bench.paired`, in several processes, and a process's own level cancels
in their ratio.

`python -m unet_decoder.bench.two_commits FOLDER --encoder E --flags F` is one such process;
`compare_commits` runs several.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import functools
import hashlib
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import UNetDecoderError
from .paired import PairedResult, check_counts, run_processes, time_loaded

PACKAGE = "unet_decoder"
#: The names the two commits' packages import under, in the folder `extract` fills.
NAMES = {"A": f"{PACKAGE}_a", "B": f"{PACKAGE}_b"}


def package_tree(repo: str | Path, commit: str) -> str:
    """The git tree hash of the package at `commit`: equal trees run the same eager code."""
    found = subprocess.run(["git", "-C", str(repo), "rev-parse", f"{commit}:{PACKAGE}"],
                           capture_output=True, text=True)  # fmt: skip
    if found.returncode != 0:
        raise UNetDecoderError(f"{commit!r} has no {PACKAGE}/ in {repo}: name a commit of "
                               "this repository.")  # fmt: skip
    return found.stdout.strip()


def _without_docstrings(source: bytes) -> str | None:
    """The module's syntax tree with every docstring removed, as text: equal for two sources
    that differ only in docstrings, comments or layout. None where it does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        scopes = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
        first = node.body[0] if isinstance(node, scopes) and node.body else None
        if isinstance(first, ast.Expr) and isinstance(getattr(first.value, "value", None), str):
            node.body = node.body[1:]
    return ast.dump(tree, include_attributes=False)


@functools.lru_cache(maxsize=32)
def _code_digest(repo: str, tree: str) -> str:
    listed = subprocess.run(["git", "-C", repo, "ls-tree", "-r", tree], capture_output=True,
                            text=True, check=True).stdout.splitlines()  # fmt: skip
    blobs = [(line.split("\t", 1)[1], line.split()[2]) for line in listed if " blob " in line]
    batch = subprocess.run(["git", "-C", repo, "cat-file", "--batch"], capture_output=True,
                           input="".join(f"{sha}\n" for _, sha in blobs).encode(),
                           check=True).stdout  # fmt: skip
    digest = hashlib.sha256()
    for path, sha in blobs:
        header, batch = batch.split(b"\n", 1)
        size = int(header.split()[2])
        content, batch = batch[:size], batch[size + 1 :]
        code = _without_docstrings(content) if path.endswith(".py") else None
        digest.update(f"{path}\0{code if code is not None else sha}\0".encode())
    return digest.hexdigest()


def same_code(repo: str | Path, a: str, b: str) -> bool:
    """Whether two commits' packages run the same eager code: the same tree, or trees whose
    Python differs only in docstrings, comments and layout (their syntax trees, docstrings
    removed, are equal; every other file byte for byte). Only `__doc__` can tell such two
    apart, and no entry reads it: a docstring-only head has nothing for an eager pair to
    time."""
    trees = [package_tree(repo, commit) for commit in (a, b)]
    if trees[0] == trees[1]:
        return True
    return _code_digest(str(repo), trees[0]) == _code_digest(str(repo), trees[1])


def has_facade(repo: str | Path, commit: str) -> bool:
    """Whether `commit` has the facade an entry is built through (`benchmarking.py`)."""
    facade = f"{commit}:{PACKAGE}/benchmarking.py"
    shown = subprocess.run(["git", "-C", str(repo), "cat-file", "-e", facade],
                           capture_output=True)  # fmt: skip
    return shown.returncode == 0


def extract(repo: str | Path, commits: dict[str, str], folder: Path) -> Path:
    """Each side's package (`commits`: side -> commit) under its `NAMES` name in `folder`."""
    for side, commit in commits.items():
        if not has_facade(repo, commit):
            raise UNetDecoderError(
                f"{commit} predates {PACKAGE}/benchmarking.py (the facade this pairing builds "
                "an entry through): compare it with asv's processes (unet-decoder gate)."
            )
        archive = subprocess.run(["git", "-C", str(repo), "archive", commit, PACKAGE],
                                 capture_output=True, check=True)  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
        (folder / PACKAGE).rename(folder / NAMES[side])
    return folder


def eager_entry(name: str, encoder: str, flags: str, threads: int, shape: tuple[int, ...]):
    """The entry (encoder, flag set) built by package `name`'s own facade."""
    import torch

    api = importlib.import_module(f"{name}.benchmarking")
    model = api.trained_unet(encoder).model.eval()
    names = api.best_flags(model, flags) if flags in api.BEST else api.parse_flags(flags)
    if "compile" in names or flags in api.ENGINE_SETS:
        raise UNetDecoderError(f"{flags!r} is a compiled or engine entry: compare its two "
                               "artifacts instead (unet-decoder pair A B).")  # fmt: skip
    api.check_applicable(model, names)
    example = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    return api.optimize(model, names, example, threads=threads)


@contextlib.contextmanager
def side_by_side(repo: str | Path, a: str, b: str) -> Iterator[tuple[Path, dict[str, str]]]:
    """Both commits' packages extracted into a temporary folder, and the environment a child
    imports them with: this package first (it runs the child, even in an environment that
    holds another commit), then the folder."""
    with tempfile.TemporaryDirectory(prefix="unet-decoder-two-commits-") as tmp:
        folder = extract(repo, {"A": a, "B": b}, Path(tmp))
        ours = str(Path(__file__).resolve().parents[2])
        yield folder, {**os.environ, "PYTHONPATH": os.pathsep.join([ours, str(folder)])}


def compare_commits(repo: str | Path, a: str, b: str, encoder: str, flags: str, *,
                    processes: int = 4, blocks: int = 12, calls: int = 8, threads: int = 2,
                    size: int = 256, inject_b: float = 0.0, progress=lambda label: None,
                    python: str | Path | None = None) -> PairedResult:  # fmt: skip
    """`processes` fresh processes, each timing commit a's and commit b's eager entry side by
    side. `python`: the interpreter (default this one; the gate gives an asv environment's)."""
    check_counts(processes, blocks, calls)
    shape = (1, 3, size, size)
    result = PairedResult(f"{a} ({encoder} {flags})", f"{b} ({encoder} {flags})", blocks=blocks,
                          calls=calls, inject_b=inject_b)  # fmt: skip
    with side_by_side(repo, a, b) as (folder, env):

        def command(a_first: bool) -> list[str]:
            return [str(python or sys.executable), "-m", "unet_decoder.bench.two_commits",
                    str(folder), "--encoder", encoder, "--flags", flags, "--threads",
                    str(threads), "--size", str(size), "--blocks", str(blocks), "--calls",
                    str(calls), "--first", "A" if a_first else "B", "--inject-b",
                    str(inject_b)]  # fmt: skip

        run_processes(result, command, processes, threads, progress, env=env)
    result.machine["shape"] = list(shape)
    return result


def profile_commits(
    repo: str | Path,
    a: str,
    b: str,
    encoder: str,
    flags: str,
    *,
    python: str | Path | None = None,
    timeout: float = 600,
) -> list[str]:
    """The operators whose time moved most from commit a's eager entry to b's, profiled in
    alternating rounds in one process (`census.profile`); one line saying why where it
    could not."""
    with side_by_side(repo, a, b) as (folder, env):
        command = [str(python or sys.executable), "-m", "unet_decoder.bench.two_commits",
                   str(folder), "--encoder", encoder, "--flags", flags, "--profile"]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, text=True, env=env,
                                  timeout=timeout)  # fmt: skip
        except subprocess.TimeoutExpired:
            return [f"profiling timed out after {timeout:.0f} s"]
    try:
        return list(json.loads(done.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return [f"profiling failed: {last}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one process of compare_commits")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--encoder", required=True)
    parser.add_argument("--flags", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--blocks", type=int, default=12)
    parser.add_argument("--calls", type=int, default=8)
    parser.add_argument("--first", choices=("A", "B"), default="A")
    parser.add_argument("--inject-b", type=float, default=0.0)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="print the per-operator profile delta (JSON lines), not times",
    )
    args = parser.parse_args(argv)
    began = time.perf_counter()
    import torch

    sys.path.insert(0, str(args.folder))
    shape = (1, 3, args.size, args.size)
    loaded = {}
    try:
        for side in ("A", "B") if args.first == "A" else ("B", "A"):
            loaded[side] = eager_entry(NAMES[side], args.encoder, args.flags, args.threads,
                                       shape)  # fmt: skip
    except Exception as e:  # the parent reports the last line: make it the one that says why
        # each commit's package has its own error classes: known by name, not by identity
        if not any(c.__name__ == "UNetDecoderError" for c in type(e).__mro__):
            raise
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    if args.profile:
        from ..census.profile import profile_delta, profile_pair

        x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
        print(json.dumps(profile_delta(*profile_pair(loaded["A"], loaded["B"], x))))
        return 0
    built = time.perf_counter() - began  # torch, both packages, both entries built
    found = time_loaded(loaded, shape, blocks=args.blocks, calls=args.calls,
                        a_first=args.first == "A", inject_b=args.inject_b)  # fmt: skip
    print(json.dumps({**found, "load_s": round(built, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
