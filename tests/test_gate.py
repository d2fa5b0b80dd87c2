"""The pull-request gate fires on a real slowdown and lets an unchanged commit through."""

import pytest

from unet_decoder.tracking.gate import run_gate

from .scratch import ScratchRepo

# asv continuous also requires the difference to be statistically significant; a factor of
# 1.25 keeps a 2-core shared machine's noise from failing the unchanged commit.
FACTOR = 1.25


@pytest.mark.slow
def test_gate_fails_a_slower_commit_and_passes_a_docs_only_one(tmp_path):
    repo = ScratchRepo(tmp_path)
    base = repo.git("rev-parse", "HEAD").stdout.strip()
    repo.edit(
        "unet_decoder/model/unet.py",
        "        y = self.decoder(features)\n",
        "        for _ in range(4):  # the decoder 4 times: clearly slower than FACTOR\n"
        "            y = self.decoder(features)\n",
    )
    slow = repo.commit("run the decoder four times")
    repo.edit("README.md", "# unet-decoder", "# unet-decoder (docs change)")
    docs = repo.commit("docs only")
    env = {"UNET_BENCH_FLAGS": "none"}
    common = dict(factor=FACTOR, config=repo.config, machine="ci", cwd=repo.path,
                  extra_args=["-b", "time_forward"], env={**repo.env, **env})  # fmt: skip

    fired = run_gate(base, slow, **common)
    assert not fired.passed and fired.returncode == 1, fired.output[-3000:]
    assert "PERFORMANCE DECREASED" in fired.verdict
    report = fired.summary(base[:8], slow[:8], FACTOR)
    assert "FAILED" in report and "time_forward" in report

    quiet = run_gate(slow, docs, **common)
    assert quiet.passed, quiet.output[-3000:]
    assert "passed" in quiet.summary(slow[:8], docs[:8], FACTOR)


def test_gate_never_passes_when_asv_cannot_run(tmp_path):
    # Any non-zero asv exit (1 regression, 2 failed benchmark, or a broken setup) fails.
    result = run_gate("main", "HEAD", config=tmp_path / "missing.json")
    assert not result.passed and result.returncode != 0
