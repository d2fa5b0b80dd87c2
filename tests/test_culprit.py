"""A night over several commits names the first slow one, and says so when it cannot."""

import subprocess

import pytest

from unet_decoder.tracking.culprit import bisect, find_culprits, first_parent_span

NAME = "forward.Forward.time_forward('test_resnet', 'none')"
STORED = f"{NAME} [ci/uv-pip]"


@pytest.fixture
def history(tmp_path):
    """A git repo: the last nightly's commit, then five new ones (oldest first)."""
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args):
        base = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
        return subprocess.run([*base, *args], capture_output=True, text=True, check=True).stdout

    git("init", "-q")
    hashes = []
    for i in range(6):
        git("commit", "-q", "--allow-empty", "-m", f"change {i}")
        hashes.append(git("rev-parse", "HEAD").strip())
    return repo, hashes[0], hashes[1:]


class FakeAsv:
    """asv and its stored results: `level[commit]` is what one process of that commit
    measures; commits in `stored_first` have a first look stored (a `NEW` night measured
    them), the others are measured only when asked."""

    def __init__(self, level: dict[str, float], stored_first: set[str]) -> None:
        self.level = level
        self.samples = {c: [level[c]] * 3 for c in stored_first}
        self.runs: list[tuple[str, ...]] = []

    def __call__(self, *args: str) -> tuple[int, str]:
        self.runs.append(args)
        commit = args[-1].removesuffix("^!")
        if "--append-samples" in args:
            self.samples[commit] = [*self.samples.get(commit, []), *[self.level[commit]] * 3]
        else:
            self.samples[commit] = [self.level[commit]] * 3
        return 0, "· Running 1 total benchmarks"

    def stored(self, commit: str) -> dict[str, list[float]]:
        return {STORED: list(self.samples[commit])} if commit in self.samples else {}


def test_a_span_is_the_first_parent_commits_after_the_base_oldest_first(history):
    repo, base, new = history
    assert first_parent_span(repo, base, new[-1]) == new
    assert first_parent_span(repo, new[-1], new[-1]) == []


def test_bisection_judges_each_midpoint_halfway_on_the_log_scale():
    span = ["c1", "c2", "c3", "c4", "c5"]
    values = {"c1": 10.0, "c2": 10.4, "c3": 12.0, "c4": 12.1, "c5": 12.1}
    index, steps = bisect(span, 10.0, 12.1, values.get)
    assert span[index] == "c3" and [s.commit for s in steps] == ["c2", "c3"]
    # halfway between 10 and 12.1 is their geometric mean, 11.0: 10.9 is still fast
    values["c3"] = 10.9
    index, _ = bisect(span, 10.0, 12.1, values.get)
    assert span[index] == "c4"
    # a midpoint that measured nothing stops the bisection, naming it
    index, steps = bisect(span, 10.0, 12.1, {**values, "c3": None}.get)
    assert index is None and steps[-1].commit == "c3"


def test_a_night_names_the_commit_that_slowed_it_measured_against_its_parent(history):
    repo, base, new = history
    level = {base: 0.010, new[0]: 0.010, new[1]: 0.0101, new[2]: 0.013, new[3]: 0.013,
             new[4]: 0.0131}  # fmt: skip
    asv = FakeAsv(level, {base, *new})
    found = find_culprits(asv, asv.stored, repo, base, new[-1], [(STORED, "1.31")], rounds=2,
                          factor=1.10, extra_args=["-E", "uv", "--quick"])  # fmt: skip
    assert [c.commit for c in found] == [new[2]]
    assert found[0].subject == "change 3" and "over its parent" in found[0].why
    assert f"first slow commit {new[2][:8]} 'change 3'" in found[0].line()
    # every commit was stored by the night: bisection read them, and only the candidate and
    # its parent were measured again, head first, the entry alone
    assert [r[-1] for r in asv.runs] == [f"{new[2]}^!", f"{new[1]}^!", f"{new[1]}^!",
                                         f"{new[2]}^!"]  # fmt: skip
    assert all("--append-samples" in r and "-E" in r for r in asv.runs)


def test_commits_the_night_did_not_measure_are_measured_at_the_midpoints_only(history):
    repo, base, new = history
    level = {base: 0.010, **{c: 0.010 for c in new[:3]}, new[3]: 0.012, new[4]: 0.012}
    asv = FakeAsv(level, {base, new[-1]})  # a `--commits HEAD^!` night stored the ends alone
    found = find_culprits(asv, asv.stored, repo, base, new[-1], [(STORED, "1.20")], rounds=1,
                          factor=1.10, extra_args=[])  # fmt: skip
    assert [c.commit for c in found] == [new[3]]
    first_looks = [r[-1] for r in asv.runs if "--record-samples" in r]
    # the midpoints, ceil(log2(5)) of them: never the commit below the first fast midpoint
    assert first_looks == [f"{new[1]}^!", f"{new[2]}^!", f"{new[3]}^!"]


def test_a_slowdown_that_does_not_hold_against_its_parent_is_not_pinned(history):
    """One process's level moved the candidate, or the slowdown crept in over several commits:
    no commit is named, and the report shows what was judged."""
    repo, base, new = history
    creep = {base: 0.0100, new[0]: 0.0103, new[1]: 0.0106, new[2]: 0.0109, new[3]: 0.0112,
             new[4]: 0.0115}  # fmt: skip
    asv = FakeAsv(creep, {base, *new})
    found = find_culprits(asv, asv.stored, repo, base, new[-1], [(STORED, "1.15")], rounds=1,
                          factor=1.10, extra_args=[])  # fmt: skip
    assert len(found) == 1 and found[0].commit is None
    assert "was not slower than its parent" in found[0].why
    assert "not pinned on one commit" in found[0].line() and "judged:" in found[0].line()


def test_one_commit_nights_need_no_bisection(history):
    repo, base, new = history
    asv = FakeAsv({base: 0.01, new[0]: 0.02}, {base, new[0]})
    assert find_culprits(asv, asv.stored, repo, base, new[0], [(STORED, "2.00")], rounds=1,
                         factor=1.10, extra_args=[]) == []  # fmt: skip
    assert asv.runs == []
