#!/usr/bin/env bash
# Runs one test script with its arguments, each @DATA@ replaced by the shared data folder:
# TRAFFICID_DATA_DIR where the tests run when it is set, else the folder configured at build time.
# usage: run_test.sh CONFIGURED_DATA_DIR SCRIPT ARGS...
set -euo pipefail
configured=$1 script=$2
shift 2
data=${TRAFFICID_DATA_DIR:-$configured}
args=()
for a in "$@"; do
  if [[ $a == @DATA@ ]]; then args+=("$data"); else args+=("$a"); fi
done
exec bash "$script" "${args[@]}"
