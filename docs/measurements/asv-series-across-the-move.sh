#!/usr/bin/env bash
# One asv graph with a result from before the house move (142b452, its own suite and build)
# and one after (HEAD), published together by today's suite.
set -euo pipefail
ROOT=$(git rev-parse --show-toplevel)
T=$(mktemp -d /tmp/series.XXXX)
OLD=142b452
git -C $ROOT worktree add -f --detach $T/old $OLD >/dev/null
PY=$ROOT/.venv/bin/python
# one interpreter path for both runs (asv names the environment after it, and draws one
# series per environment): its .pth names the build, the old tree first, then this one's
python3 -m venv --without-pip $T/env
PTH=$T/env/lib/python3.11/site-packages/build.pth
build() { printf '%s\n%s\n' "$1" "$ROOT/.venv/lib/python3.11/site-packages" > $PTH
          (cd $T && $T/env/bin/python -c "import unet_decoder; print('build:', unet_decoder.__file__)"); }
build $T/old
conf() {  # $1: benchmark_dir
$PY - "$1" "$T" "$ROOT" <<'PYEOF'
import json, sys
from asv.util import load_json
bench, T, root = sys.argv[1], sys.argv[2], sys.argv[3]
c = load_json(f"{root}/asv.conf.json", js_comments=True)
c.update(repo=root, benchmark_dir=bench, results_dir=f"{T}/results", html_dir=f"{T}/html", env_dir=f"{T}/env")
c["plugins"] = []
c["environment_type"] = "virtualenv"
open(f"{T}/asv.conf.json", "w").write(json.dumps(c))
PYEOF
}
export UNET_DECODER_CACHE=${UNET_DECODER_CACHE:-$HOME/.cache/unet-decoder} HOME=$T
SEL="time_forward\('test_resnet', 'none'\)|track_params\('test_resnet'\)"
conf $T/old/benchmarks
$PY -m asv machine --yes --machine here --config $T/asv.conf.json >/dev/null
$PY -m asv run --config $T/asv.conf.json -E existing:$T/env/bin/python --set-commit-hash $(git -C $ROOT rev-parse $OLD) --machine here --quick -b "$SEL" --show-stderr 2>&1 | tail -5
conf $ROOT/benchmarks
build $ROOT
$PY -m asv run --config $T/asv.conf.json -E existing:$T/env/bin/python --set-commit-hash $(git -C $ROOT rev-parse HEAD) --machine here --quick -b "$SEL" --show-stderr 2>&1 | tail -5
$PY -m asv publish --config $T/asv.conf.json 2>&1 | tail -2
echo "T=$T"
python3 - "$T" <<'PYEOF'
import json, sys, glob
T = sys.argv[1]
(graph,) = glob.glob(f"{T}/html/graphs/branch-main/machine-here/*/forward.Forward.time_forward.json")
data = json.load(open(graph))
print(graph)
print(json.dumps(data)[:2000])
PYEOF
git -C $ROOT worktree remove --force $T/old
