"""The pull-request performance gate: `asv continuous` of HEAD against BASE, in one job.

The same function runs on a laptop, a self-hosted runner and in GitHub Actions. It exists
because asv's own exit codes need interpreting: `asv compare` always exits 0, and `asv
continuous` exits 1 on "PERFORMANCE DECREASED" but also when it measured nothing, and 2 when
a benchmark failed (then printing no comparison at all). `verdict.read_asv_output` tells these
apart; none of them passes a pull request.

A slowdown is confirmed before it fails the gate (`second_look`): only the entries flagged
at first look, or slower there than `nomination_bar` (half the factor's margin), are measured
again, in more interleaved rounds, and the gate fails on those whose head processes' median is
slower than the base processes' median by the factor.

Every entry that can be paired is judged side by side instead (`side_by_side`): the base's
and the head's artifact (compiled and engine entries), or both commits' own code imported
under two names (eager entries), in one process, timed in alternating blocks, in several
processes, so that a process's own speed level cancels; asv's rows for them are left out.

A gate that passes says what it could see: where the floors record of this machine
(`floors`) gives a paired entry a floor above the factor, the pass is "insufficient" instead,
naming the entry and its floor.

Then the census (`structure`): each entry's counted operators, kernels or engine primitives,
compared exactly. A head whose timing passes but whose program changed fails as "structure
changed" until the change is acknowledged; a regression lists what changed beside it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .floors import default_path, floor_lines, for_this_machine, with_floors
from .noise import refuse_injected
from .rounds import CONFIRM_ROUNDS
from .second_look import CONFIRM_HEADER, asv_caller, measured_between, second_look, to_look_again
from .side_by_side import (
    PairedVerdict,
    artifact_pairs,
    eager_pairs,
    explain,
    judge,
    unpaired,
    with_pairs,
)
from .stored import stored_results
from .structure import StructureReport, census_pairs, structure_report, with_structure
from .verdict import PASS, REGRESSION, Verdict, read_asv_output, slower_than_factor

#: What a benchmark process logs when it trained an encoder's weights itself
#: (benchmarks/common.py): a head that changes the architecture trains its own.
RETRAINED = "unet-decoder: NOTE trained"


@dataclass(frozen=True)
class GateResult:
    verdict: Verdict
    returncode: int  # asv's own
    output: str
    structure: StructureReport = field(default_factory=StructureReport)
    accepted_census: bool = False
    paired: list[PairedVerdict] = field(default_factory=list)
    #: Which floors record judged the pairs (or why none), then each pair's floor here.
    floors: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.verdict.passed

    @property
    def exit_code(self) -> int:
        """0 pass, 1 regression, 2 failed benchmark, 3 measured nothing, 4 structure changed,
        5 suspicious, 6 insufficient."""
        return self.verdict.exit_code

    #: Checkpoints that appeared in the weights cache while the gate ran (`new_weights`).
    trained: list[str] = field(default_factory=list)

    @property
    def retrained(self) -> list[str]:
        """The encoders whose weights a benchmark process trained during this gate (no
        cached weights for that build's architecture): each new checkpoint in the weights
        cache, and each line benchmarks/common.py logged, once per checkpoint. The cache is
        the one that counts: asv shows the stderr of one process per benchmark, and the one
        that trained may not be it."""
        told = {}
        for line in self.output.splitlines():
            if RETRAINED in line:
                said = line.split(RETRAINED, 1)[1].strip()
                told.setdefault(said.split("(", 1)[-1].split(")", 1)[0], said)
        for name in self.trained:
            encoder = name.split("-arch", 1)[0]
            told.setdefault(name, f"{encoder} ({name}): no cached weights for this build's "
                                  "architecture")  # fmt: skip
        return list(told.values())

    def summary(self, base: str, head: str, factor: float) -> str:
        """Markdown for the job summary: the verdict, the weights trained for it, then asv's
        own comparison table(s)."""
        keep = ("|", " ", "+", "-", CONFIRM_HEADER)
        table = [line for line in self.output.splitlines() if line.startswith(keep)
                 and RETRAINED not in line]  # fmt: skip
        body = "\n".join(table[-200:]) if table else self.output[-4000:]
        title = "passed" if self.passed else f"FAILED ({self.verdict.kind})"
        trained = "".join(f"- weights trained for this gate: {line}\n" for line in self.retrained)
        return (
            f"## Performance gate: {title}\n\n"
            f"`{head}` against `{base}`, factor {factor}: {self.verdict.message}\n\n"
            + (f"{trained}\n" if trained else "")
            + self.structure.markdown(accepted=self.accepted_census)
            + "".join(
                f"- side by side: {v.line()}\n" + "".join(f"  - {line}\n" for line in v.profile)
                for v in self.paired
            )
            + "".join(f"- {line}\n" for line in self.floors)
            + f"```\n{body}\n```\n"
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
    accept_census: bool = False,
    paired: bool = True,
    floors: str | Path | None = None,
) -> GateResult:
    """`extra_args` go to every asv call; its -b selection to the first look only.
    `accept_census`: a changed census is meant (the report still lists it). `paired`: judge
    compiled and engine entries side by side (`side_by_side`) instead of by asv's processes.
    `floors`: the floors record (default `.asv/floors.json` beside the config), used where it
    is this machine's."""
    environment = {**os.environ, **(env or {})}
    refuse_injected(environment)
    config_path = Path(config if cwd is None else Path(cwd) / config).resolve()
    record, floors_said = for_this_machine(Path(floors or default_path(config_path.parent)))
    asv = asv_caller(config, machine, cwd, environment)
    stored = stored_results(config, cwd)
    before = {commit: stored(commit) for commit in (base, head)}

    # samples recorded: asv's statistical test then works on them (Mann-Whitney U), as in
    # `unet-decoder noise`, and the confirming rounds can add to them
    weights = checkpoints()
    continuous, output = asv("continuous", "--factor", str(factor), "--split", "--show-stderr",
                             "--record-samples", *(extra_args or []), base, head)  # fmt: skip
    verdict = read_asv_output(continuous, output)
    repo = cwd or config_path.parent
    # compiled and engine entries: their two artifacts, timed side by side, not two processes
    censuses = census_pairs(config_path.parent, repo, base, head)
    pairs = [*artifact_pairs(censuses), *eager_pairs(censuses, repo, base, head)] if paired else []
    if verdict.kind == REGRESSION and pairs:  # asv's rows for the pairs are not the verdict
        outside = unpaired(verdict.regressions, pairs)
        quiet = Verdict(PASS, "no benchmark slower than the factor outside the pairs")
        verdict = slower_than_factor(outside) if outside else quiet
    log: list[str] = []
    if verdict.kind in (REGRESSION, PASS) and confirm_rounds >= 1:
        after = {commit: stored(commit) for commit in (base, head)}
        first_look = [unpaired(measured_between(before[commit], after[commit]), pairs)
                      for commit in (base, head)]  # fmt: skip
        flagged = to_look_again(verdict.regressions, *first_look, factor)
        if flagged:
            verdict, log, _ = second_look(asv, stored, base, head, flagged,
                                          rounds=confirm_rounds, factor=factor,
                                          extra_args=extra_args or [], read=after)  # fmt: skip
    judged = [explain(judge(pair)) for pair in pairs]
    verdict = with_pairs(verdict, judged)
    structure = structure_report(censuses)
    verdict = with_structure(verdict, structure, accepted=accept_census)
    verdict = with_floors(verdict, judged, record, factor)  # a pass says what it could not see
    said = [floors_said, *floor_lines(judged, record)] if judged else []
    return GateResult(verdict, continuous, "\n".join([output, *log]), structure, accept_census,
                      judged, said, sorted(checkpoints() - weights))  # fmt: skip


def checkpoints() -> set[str]:
    """The trained checkpoints in the weights cache the benchmark processes share."""
    from ..training.train import cache_dir

    return {p.name for p in cache_dir().glob("*.safetensors")}


def write_step_summary(text: str) -> None:
    """Append to GitHub's job summary when running in Actions; a no-op elsewhere."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a") as f:
            f.write(text)
