#!/usr/bin/env bash
# The longer fuzzing run: every fuzz target (the file formats through tests/scripts/fuzz_target.sh,
# the packet parser and the nDPI flow tracker through their own scripts) for SECONDS each, with a
# seed of its own each time. Not part of the test suite (CI runs each target for 30-60 s with seed 1).
# usage: tests/bench/fuzz_long.sh [SECONDS] [SEED] [DATA_DIR]    (default 600 s, seed from the clock)
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-600} seed=${2:-$(date +%s)} data=${3:-${TRAFFICID_DATA_DIR:-$src/../shared/data}}
work=$(mktemp -d)
trap 'echo "work folder (findings, corpora): $work"' EXIT
failed=0
for target in pcapng_reader npy_reader study_journal experiment_loader; do
  bash "$src/tests/scripts/fuzz_target.sh" "$src" "$work/$target" "$target" "$seconds" "$seed" || failed=1
done
bash "$src/tests/scripts/fuzz_packet_parser.sh" "$src" "$work/packet_parser" "$seconds" || failed=1
FUZZ_SEED=$seed bash "$src/tests/scripts/fuzz_flow_tracker.sh" "$src" "$work/flow_tracker" "$seconds" "$data" || failed=1
[[ $failed -eq 0 ]] && echo "fuzz_long: every target ran ${seconds}s (seed $seed) without a finding" || { echo "fuzz_long: findings above" >&2; exit 1; }
