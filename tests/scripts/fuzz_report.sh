#!/usr/bin/env bash
# Sourced by the fuzz test scripts: fuzz_report NAME BINARY WORK STATUS LINES prints the run's
# last LINES lines of WORK/fuzz.log and, when STATUS is not 0, the sanitizer report's head (what
# and where: the tail is libFuzzer's stack and statistics) and the command that replays the
# failing input, then fails.
fuzz_report() {
  local name=$1 binary=$2 work=$3 status=$4 lines=$5
  tail -n "$lines" "$work/fuzz.log"
  if [[ $status -ne 0 ]]; then
    grep -m 3 -E 'ERROR: |SUMMARY: |runtime error' "$work/fuzz.log" >&2 || true
    echo "$name: FAILED (status $status); replay: $binary $(ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* 2>/dev/null | head -1)" >&2
    exit 1
  fi
}
