"""Two commits' eager entries, each built by its own commit's code, timed in one process."""

import subprocess

import pytest

from unet_decoder.bench.two_commits import compare_commits, package_tree, same_code
from unet_decoder.errors import UNetDecoderError

from .scratch import ROOT

#: Small, so that a test run is seconds: the comparison is the subject, not the model.
TIMING = dict(processes=2, blocks=4, calls=3, size=64)


@pytest.fixture
def clone(tmp_path):
    """A clone of this repository whose newest commit runs the decoder 3 more times."""
    path = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(path)], check=True)

    def git(*args):
        base = ["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@example.com"]
        return subprocess.run([*base, *args], capture_output=True, text=True,
                              check=True).stdout.strip()  # fmt: skip

    base = git("rev-parse", "HEAD")
    unet = path / "unet_decoder" / "model" / "unet.py"
    line = "        y = self.head(self.decoder(features))\n"
    assert line in unet.read_text()
    unet.write_text(
        unet.read_text().replace(
            line,
            line
            + (
                "        for i in range(3):\n"
                "            y = y + self.head(self.decoder([f + (i + 1) for f in features]))\n"
            ),
        )
    )
    git("commit", "-qam", "the decoder four times")
    return path, base, git("rev-parse", "HEAD")


@pytest.mark.slow  # it trains test_resnet's weights where none are cached
def test_the_head_commits_own_eager_code_is_what_runs_beside_the_base(clone):
    path, base, slow = clone
    found = compare_commits(path, base, slow, "test_resnet", "none", **TIMING)
    # the head's four decoders against the base's one (x2.9 and x3.1 in a quiet run on a
    # 2-core AMD EPYC): far slower, in every process. Not the interval's low end: with two
    # processes it is the mean less 12.7 standard errors (Student's t, one degree of freedom),
    # and a 20% spread between them puts it near 1.
    assert all(p["ratio"] > 1.5 for p in found.processes), found.to_dict()
    assert found.a.startswith(base) and "test_resnet none" in found.b
    assert [p["a_first"] for p in found.processes] == [True, False]  # load order alternates


@pytest.mark.slow
def test_a_commit_against_itself_reads_about_one(clone):
    path, base, _ = clone
    found = compare_commits(path, base, base, "test_resnet", "none", **TIMING)
    assert 0.8 < found.ratio < 1.25, found.to_dict()


def test_equal_code_is_known_without_timing_and_bad_input_says_what_to_do(clone):
    path, base, slow = clone
    assert package_tree(path, base) == package_tree(path, "HEAD~1")
    assert package_tree(path, base) != package_tree(path, slow)
    with pytest.raises(UNetDecoderError, match="has no unet_decoder/"):
        package_tree(path, "no-such-commit")
    first = subprocess.run(["git", "-C", str(path), "rev-list", "--max-parents=0", "HEAD"],
                           capture_output=True, text=True).stdout.split()[0]  # fmt: skip
    with pytest.raises(UNetDecoderError, match=r"predates unet_decoder/benchmarking\.py"):
        compare_commits(path, first, slow, "test_resnet", "none", **TIMING)
    with pytest.raises(UNetDecoderError, match="compare its two artifacts instead"):
        compare_commits(path, base, slow, "test_resnet", "best_compiled", **TIMING)


def test_a_head_that_changes_only_docstrings_and_comments_runs_the_same_code(clone):
    path, base, slow = clone
    blocks = path / "unet_decoder" / "model" / "blocks.py"
    text = blocks.read_text()
    assert '"""The classic UNet double convolution' in text
    text = text.replace('"""The classic UNet double convolution', '"""The UNet double convolution')
    blocks.write_text(text.replace("super().__init__(\n", "super().__init__(  # a comment\n", 1))
    git = ["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "commit", "-qam", "docs only"], check=True)
    # a different tree, the same code: the gate has nothing to time for it
    assert package_tree(path, "HEAD") != package_tree(path, slow)
    assert same_code(path, slow, "HEAD") and same_code(path, base, base)
    # a real change is not the same code, whatever else it shares
    assert not same_code(path, base, slow) and not same_code(path, base, "HEAD")
    blocks.write_text(
        blocks.read_text().replace("padding=1, bias=False),", "padding=1, bias=True),", 1)
    )
    subprocess.run([*git, "commit", "-qam", "a bias"], check=True)
    assert not same_code(path, "HEAD~1", "HEAD")
