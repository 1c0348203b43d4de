#!/usr/bin/env bash
# The GPU checks no CI machine can run, in one pass for a short lease on a CUDA machine.
#
# Expects, in the repository root: .whl/ (wheels of sqlite-utils, sqlite-fts4, click-default-group,
# platformdirs for the machine's Python) and .omniglot/ (the three Omniglot zips). Writes its log
# and a tarball of run records under $OUT (or a temporary folder it names). Each stage has its own
# time limit, so one slow stage cannot take the others' evidence with it. RUNS replaces the default
# quick runs.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$(mktemp -d)}"  # the device tool sets OUT; elsewhere a fresh temporary folder
mkdir -p "$OUT/records"
LOG="$OUT/log.txt"
exec > >(tee -a "$LOG") 2>&1
echo "output in $OUT"

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
export METABENCH_HOME=/tmp/metabench-home METABENCH_DATA="$PWD/.omniglot" METABENCH_RESULTS="$OUT/records"
MB=(python3 -m metabench)
stage() {  # stage SECONDS NAME COMMAND...: run with a limit, log its time and exit status
    local limit=$1 name=$2; shift 2
    echo "== $name"
    local start=$SECONDS
    timeout "$limit" "$@"
    echo "== $name: rc $? in $((SECONDS - start)) s"
}

stage 15 machine sh -c 'nvidia-smi -L; nproc; python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"'
stage 30 import "${MB[@]}" data import .omniglot
# Every test but the TUI's (textual is not on such a machine) and the import-linter one (nor is
# lint-imports); CI runs those. The runs the tests start resolve `--device auto` to CUDA here.
stage 200 tests python3 -m pytest -q -p no:cacheprovider --ignore-glob='tests/test_tui_*' \
    --deselect tests/test_import_hygiene.py::test_import_linter_contracts_hold
stage 30 bench-sampler "${MB[@]}" bench sampler
stage 120 bench-methods "${MB[@]}" bench methods --device cuda --rounds 3
# The runs to make on the GPU, one a line: a time limit in seconds, then `metabench run`'s arguments.
RUNS="${RUNS:-80 protonet --preset quick
90 maml --preset quick
60 fomaml --preset quick}"
while read -r limit args; do
    # shellcheck disable=SC2086  # the arguments are meant to split
    stage "$limit" "run $args" "${MB[@]}" run $args --device cuda --events none </dev/null
done <<<"$RUNS"
stage 20 leaderboard "${MB[@]}" leaderboard --all
tar -czf "$OUT/records.tar.gz" -C "$OUT" records && rm -rf "$OUT/records"
