"""The pull-request performance gate: `asv continuous` of HEAD against BASE, in one job.

The same function runs on a laptop, a self-hosted runner and in GitHub Actions. It exists
because asv's own exit codes need interpreting: `asv compare` always exits 0, and `asv
continuous` exits 1 on "PERFORMANCE DECREASED" but also when it measured nothing, and 2 when
a benchmark failed (then printing no comparison at all). `verdict.read_asv_output` tells these
apart; none of them passes a pull request.

A slowdown is confirmed before it fails the gate. On a shared machine one slow minute can push
one side of one entry past the factor; the gate then measures only the flagged entries again,
in more interleaved rounds whose samples join the first ones (`asv run --append-samples`),
and fails on those still slower by asv's own rule. A real slowdown stays slower with more
samples; a noisy minute is outvoted. `unet-decoder noise` measures both looks the same way.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .selections import exact_entries
from .verdict import PASS, REGRESSION, Verdict, compared_rows, read_asv_output

#: Extra interleaved rounds (head, base | base, head) for the entries flagged at first look.
CONFIRM_ROUNDS = 2
CONFIRM_HEADER = "== unet-decoder gate: measuring the flagged benchmarks again =="


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
        """Markdown for the job summary: the verdict, then asv's own comparison table(s)."""
        keep = ("|", " ", "+", "-", CONFIRM_HEADER)
        table = [line for line in self.output.splitlines() if line.startswith(keep)]
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
    confirm_rounds: int = CONFIRM_ROUNDS,
) -> GateResult:
    """`extra_args` go to every asv call; its -b selection to the first look only."""

    def asv(*args: str) -> tuple[int, str]:
        command = [sys.executable, "-m", "asv", "--config", str(config), *args]
        if machine:
            command += ["--machine", machine]
        done = subprocess.run(
            command, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True
        )
        return done.returncode, done.stdout + done.stderr

    # samples recorded: asv's statistical test then works on them (Mann-Whitney U), as in
    # `unet-decoder noise`, and the confirming rounds can add to them
    continuous, output = asv("continuous", "--factor", str(factor), "--split", "--show-stderr",
                             "--record-samples", *(extra_args or []), base, head)  # fmt: skip
    verdict = read_asv_output(continuous, output)
    if verdict.kind != REGRESSION or confirm_rounds < 1:
        return GateResult(verdict, continuous, output)

    flagged = dict(verdict.regressions)
    selection = exact_entries(_split(name)[0] for name in flagged)
    others = _without_selection(extra_args or [])
    log = [output, CONFIRM_HEADER]
    for r in range(confirm_rounds):
        for commit in (head, base) if r % 2 == 0 else (base, head):
            code, said = asv("run", "--append-samples", "--show-stderr", "-a", "rounds=1",
                             *others, "-b", selection, f"{commit}^!")  # fmt: skip
            log.append(said)
            measured = read_asv_output(code, said)
            if not measured.passed:  # a failure or nothing measured stays what it is
                return GateResult(measured, code, "\n".join(log))
    code, compared = asv("compare", "--factor", str(factor), "--split", base, head)
    log.append(compared)
    still = [(name, f"{ratio:.2f}") for mark, ratio, name in compared_rows(compared)
             if mark == "+" and _matches(name, flagged)]  # fmt: skip
    at_first = "; ".join(f"{name} x{ratio}" for name, ratio in flagged.items())
    rounds = f"{confirm_rounds} more interleaved round(s)"
    if still:
        listed = "; ".join(f"{name} x{ratio}" for name, ratio in still[:8])
        message = (f"PERFORMANCE DECREASED: {len(still)} benchmark(s) slower than the factor, "
                   f"confirmed by {rounds}: {listed}")  # fmt: skip
        verdict = Verdict(REGRESSION, message, regressions=still)
        return GateResult(verdict, continuous, "\n".join(log))
    message = (f"no benchmark slower than the factor after {rounds} (slower at first look, "
               f"not confirmed: {at_first})")  # fmt: skip
    return GateResult(Verdict(PASS, message), continuous, "\n".join(log))


_ENV_SUFFIX = re.compile(r"^(.*\))\s+\[([^\]]+)\]$")


def _split(name: str) -> tuple[str, str | None]:
    """(benchmark, machine/environment): asv adds ` [machine/env]` to a name when a comparison
    spans several environments."""
    match = _ENV_SUFFIX.match(name)
    return (match.group(1), match.group(2)) if match else (name, None)


def _matches(name: str, flagged: dict[str, str]) -> bool:
    """Whether a row of the later comparison is a flagged entry: same benchmark, and same
    environment where both rows name one (the later `asv compare` may name environments the
    first table did not)."""
    bare, env = _split(name)
    return any(bare == b and (env == e or None in (env, e)) for b, e in map(_split, flagged))


def _without_selection(args: list[str]) -> list[str]:
    """`args` less its -b selections and rounds attribute: each confirming call sets its own."""
    kept, i = [], 0
    while i < len(args):
        value = args[i + 1] if i + 1 < len(args) else ""
        if args[i] in ("-b", "--bench") or (
            args[i] in ("-a", "--attribute") and value.startswith("rounds=")
        ):
            i += 2
            continue
        if not args[i].startswith(("--bench=", "--attribute=rounds=")):
            kept.append(args[i])
        i += 1
    return kept


def write_step_summary(text: str) -> None:
    """Append to GitHub's job summary when running in Actions; a no-op elsewhere."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a") as f:
            f.write(text)
