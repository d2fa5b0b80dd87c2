"""The pull-request performance gate: `asv continuous` of HEAD against BASE, in one job.

The same function runs on a laptop, a self-hosted runner and in GitHub Actions. It exists
because asv's own exit codes need interpreting: `asv compare` always exits 0, and `asv
continuous` exits 1 on "PERFORMANCE DECREASED" and 2 when a benchmark failed (then printing
no comparison at all); both must fail a pull request.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GateResult:
    passed: bool
    verdict: str
    returncode: int
    output: str

    def summary(self, base: str, head: str, factor: float) -> str:
        """Markdown for the job summary: the verdict, then asv's own comparison table."""
        table = [line for line in self.output.splitlines() if line.startswith(("|", " ", "+", "-"))]
        body = "\n".join(table[-200:]) if table else self.output[-4000:]
        return (
            f"## Performance gate: {'passed' if self.passed else 'FAILED'}\n\n"
            f"`{head}` against `{base}`, factor {factor}: {self.verdict}\n\n```\n{body}\n```\n"
        )


def run_gate(
    base: str,
    head: str,
    *,
    factor: float = 1.10,
    config: str | Path = "asv.conf.json",
    machine: str | None = None,
    extra_args: list[str] | None = None,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
) -> GateResult:
    command = [sys.executable, "-m", "asv", "--config", str(config), "continuous",
               "--factor", str(factor), "--split", "--show-stderr"]  # fmt: skip
    if machine:
        command += ["--machine", machine]
    command += [*(extra_args or []), base, head]
    done = subprocess.run(
        command, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True
    )
    output = done.stdout + done.stderr
    if done.returncode == 0:
        verdict = "no benchmark slower than the factor"
    elif "PERFORMANCE DECREASED" in output or done.returncode == 1:
        verdict = "PERFORMANCE DECREASED: at least one benchmark is slower than the factor"
    elif done.returncode == 2:
        verdict = "a benchmark FAILED on one side (asv prints no comparison then)"
    else:
        verdict = f"asv exited with code {done.returncode}"
    return GateResult(done.returncode == 0, verdict, done.returncode, output)


def write_step_summary(text: str) -> None:
    """Append to GitHub's job summary when running in Actions; a no-op elsewhere."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a") as f:
            f.write(text)
