"""The pull-request performance gate: `asv continuous` of HEAD against BASE, in one job.

The same function runs on a laptop, a self-hosted runner and in GitHub Actions. It exists
because asv's own exit codes need interpreting: `asv compare` always exits 0, and `asv
continuous` exits 1 on "PERFORMANCE DECREASED" but also when it measured nothing, and 2 when
a benchmark failed (then printing no comparison at all). `verdict.read_asv_output` tells these
apart; none of them passes a pull request.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .verdict import Verdict, read_asv_output


@dataclass(frozen=True)
class GateResult:
    verdict: Verdict
    returncode: int  # asv's own
    output: str

    @property
    def passed(self) -> bool:
        return self.verdict.passed

    @property
    def exit_code(self) -> int:
        """0 pass, 1 regression, 2 failed benchmark, 3 measured nothing."""
        return self.verdict.exit_code

    def summary(self, base: str, head: str, factor: float) -> str:
        """Markdown for the job summary: the verdict, then asv's own comparison table."""
        table = [line for line in self.output.splitlines() if line.startswith(("|", " ", "+", "-"))]
        body = "\n".join(table[-200:]) if table else self.output[-4000:]
        title = "passed" if self.passed else f"FAILED ({self.verdict.kind})"
        return (
            f"## Performance gate: {title}\n\n"
            f"`{head}` against `{base}`, factor {factor}: {self.verdict.message}\n\n"
            f"```\n{body}\n```\n"
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
    return GateResult(read_asv_output(done.returncode, output), done.returncode, output)


def write_step_summary(text: str) -> None:
    """Append to GitHub's job summary when running in Actions; a no-op elsewhere."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a") as f:
            f.write(text)
