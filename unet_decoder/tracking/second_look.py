"""A slowdown seen at first look is measured again before it fails anything.

On a shared machine one slow minute can push one side of one entry past the factor. The
flagged entries alone are then measured again, in more interleaved rounds whose samples join
the first ones (`asv run --append-samples`), and judged again by asv's own rule (`asv
compare`). A real slowdown stays slower with more samples; a noisy minute is outvoted. The
pull-request gate and the nightly job both look twice; `unet-decoder noise` measures both
looks the same way.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from .selections import exact_entries
from .verdict import PASS, REGRESSION, Verdict, compared_rows, read_asv_output

#: Extra interleaved rounds (head, base | base, head) for the entries flagged at first look.
CONFIRM_ROUNDS = 2
CONFIRM_HEADER = "== unet-decoder: measuring the flagged benchmarks again =="

#: Runs `asv <args>` (with the caller's config, machine, directory and environment) and
#: returns its exit code and output.
Asv = Callable[..., tuple[int, str]]


def asv_caller(config: str | Path, machine: str | None, cwd: str | Path | None,
               env: Mapping[str, str] | None) -> Asv:  # fmt: skip
    """`asv --config CONFIG <args> --machine MACHINE`, run in `cwd` with `env` (None: this
    process's), as the gate and the nightly call it every time."""

    def asv(*args: str) -> tuple[int, str]:
        command = [sys.executable, "-m", "asv", "--config", str(config), *args]
        if machine:
            command += ["--machine", machine]
        done = subprocess.run(command, cwd=cwd, env=None if env is None else dict(env),
                              capture_output=True, text=True)  # fmt: skip
        return done.returncode, done.stdout + done.stderr

    return asv


def second_look(
    asv: Asv,
    base: str,
    head: str,
    flagged: list[tuple[str, str]],
    *,
    rounds: int,
    factor: float,
    extra_args: list[str],
) -> tuple[Verdict, list[str]]:
    """The verdict on the (benchmark, ratio) entries flagged at first look after `rounds` more
    interleaved rounds, and what asv said. `extra_args` are the first look's; its -b selection
    and rounds are replaced (each call measures only the flagged entries, one round)."""
    at_first = dict(flagged)
    selection = exact_entries(_split(name)[0] for name in at_first)
    others = _without_selection(extra_args)
    log = [CONFIRM_HEADER]
    for r in range(rounds):
        for commit in (head, base) if r % 2 == 0 else (base, head):
            code, said = asv("run", "--append-samples", "--show-stderr", "-a", "rounds=1",
                             *others, "-b", selection, f"{commit}^!")  # fmt: skip
            log.append(said)
            measured = read_asv_output(code, said)
            if not measured.passed:  # a failure or nothing measured stays what it is
                return measured, log
    _, compared = asv("compare", "--factor", str(factor), "--split", base, head)
    log.append(compared)
    still = [(name, f"{ratio:.2f}") for mark, ratio, name in compared_rows(compared)
             if mark == "+" and _matches(name, at_first)]  # fmt: skip
    more = f"{rounds} more interleaved round(s)"
    if still:
        listed = "; ".join(f"{name} x{ratio}" for name, ratio in still[:8])
        message = (f"PERFORMANCE DECREASED: {len(still)} benchmark(s) slower than the factor, "
                   f"confirmed by {more}: {listed}")  # fmt: skip
        return Verdict(REGRESSION, message, regressions=still), log
    listed = "; ".join(f"{name} x{ratio}" for name, ratio in at_first.items())
    message = (f"no benchmark slower than the factor after {more} (slower at first look, "
               f"not confirmed: {listed})")  # fmt: skip
    return Verdict(PASS, message), log


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
