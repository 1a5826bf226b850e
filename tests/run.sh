#!/usr/bin/env bash
# The test command (README, .ci/run): ruff, then pytest. The real-SLURM modules run beside the rest:
# they mostly wait on SLURM's scheduler and time limits, so on CI's two cores the wall time is about
# the longer of the two runs, not their sum. Fails if either fails; arguments go to the main run.
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check . || exit 1
slurm=(tests/test_slurm.py tests/test_slurm_accounting.py)
log=$(mktemp)
.venv/bin/python -m pytest -p no:cacheprovider --basetemp="$(mktemp -d)/slurm" "${slurm[@]}" > "$log" 2>&1 &
pid=$!
.venv/bin/python -m pytest "${slurm[@]/#/--ignore=}" "$@"
rc=$?
wait "$pid"
src=$?
echo "== ${slurm[*]} (run beside the rest) =="
cat "$log"
rm -f "$log"
exit $((rc != 0 ? rc : src))
