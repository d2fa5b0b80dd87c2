"""What asv has stored for a commit, read with asv's own results reader.

The second look, the gate's nominations and `unet-decoder noise` all judge the samples asv
wrote; reading them through `asv.results.Results` (not the JSON by hand) keeps them right when
asv's file format moves (result columns, parameter products, n/a and failed entries).
"""

from __future__ import annotations

import functools
import itertools
import subprocess
from collections.abc import Callable
from pathlib import Path

#: name(params) -> (value, stats, samples) of one asv results file: samples None where asv
#: recorded none (track_ benchmarks, runs without --record-samples).
Entries = dict[str, tuple[float, dict | None, list[float] | None]]

#: What asv has stored for a commit: `name(params) [machine/environment]` -> its samples, or
#: its value alone for a benchmark that records none (track_*).
Stored = Callable[[str], dict[str, list[float]]]


def result_entries(result) -> Entries:
    """Every measured entry of an `asv.results.Results`; failed and n/a ones left out."""
    out = {}
    for key in result.get_all_result_keys():
        params = result.get_result_params(key)
        combos = list(itertools.product(*params)) if params else [()]
        rows = zip(combos, result.get_result_value(key, params),
                   result.get_result_stats(key, params), result.get_result_samples(key, params),
                   strict=True)  # fmt: skip
        for combo, value, stats, samples in rows:
            if value is None or value != value:  # failed, or n/a (NaN)
                continue
            name = f"{key}({', '.join(combo)})" if combo else key
            out[name] = (value, stats, samples)
    return out


def commit_of(repo: str | Path, ref: str) -> str | None:
    """The full hash of a commit or ref (`main`, `HEAD`) in `repo`; None if git knows none."""
    found = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", f"{ref}^{{commit}}"],
                           capture_output=True, text=True)  # fmt: skip
    return found.stdout.strip() if found.returncode == 0 else None


def stored_results(config: str | Path, cwd: str | Path | None = None) -> Stored:
    """A reader of the results that `asv --config CONFIG` writes, for a commit or a ref (the
    gate takes `main`, `HEAD`): resolved with git in the config's repository."""
    from asv.results import Results
    from asv.util import UserError, load_json

    config = Path(config).resolve()
    try:
        conf = load_json(str(config), js_comments=True)
    except (OSError, ValueError, UserError):  # asv says what is wrong with it: nothing stored
        return lambda commit: {}
    folder = config.parent / conf.get("results_dir", "results")
    repo = config.parent / conf.get("repo", ".") if cwd is None else Path(cwd)

    resolve = functools.cache(functools.partial(commit_of, repo))

    def read(commit: str) -> dict[str, list[float]]:
        full = resolve(commit)
        stored = {}
        for path in folder.glob(f"*/{full[:8]}-*.json") if full else []:
            try:
                result = Results.load(str(path), machine_name=path.parent.name)
            except (OSError, ValueError, UserError):  # unread: its entries stay flagged
                continue
            if result.commit_hash != full:
                continue
            where = f"{path.parent.name}/{result.env_name}"
            for name, (value, _, samples) in result_entries(result).items():
                stored[f"{name} [{where}]"] = list(samples) if samples else [value]
        return stored

    return read
