#!/usr/bin/env bash
# Builds one of the file-format fuzz targets in tests/fuzz with clang (libFuzzer, ASan, UBSan) and
# runs it from its checked-in corpus (tests/fuzz/corpus/NAME) for a bounded time with a fixed
# seed. Fails on any crash, leak or sanitizer report, and then leaves the input that caused it in
# WORK_DIR (crash-*), with the command that replays it.
# usage: fuzz_target.sh SOURCE_DIR WORK_DIR NAME [SECONDS] [SEED]
#   NAME: pcapng_reader | npy_reader | study_journal | experiment_loader
set -euo pipefail
src=$(realpath "$1") work=$2 name=$3 seconds=${4:-30} seed=${5:-1}
[[ "$seconds" =~ ^[0-9]+$ ]] || seconds=30
mkdir -p "$work"
work=$(realpath "$work")
flags=(-std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-sanitize=function,vptr
       -DTRAFFICID_SDK_BUILDING -I"$src/sdk/include")
case "$name" in
  pcapng_reader)
    sources=("$src/plugins/capture/pcap/pcapng_reader.cpp" "$src/sdk/src/plugin_types.cpp")
    flags+=(-I"$src/plugins/capture/pcap") libs=(-lfmt) ;;
  npy_reader)
    sources=("$src/sdk/src/npy.cpp" "$src/sdk/src/plugin_types.cpp") libs=(-lfmt) ;;
  study_journal)
    sources=("$src/host/src/study_journal.cpp" "$src/sdk/src/search_space.cpp" "$src/sdk/src/plugin_types.cpp")
    flags+=(-I"$src/host/src") libs=(-lfmt) ;;
  experiment_loader)
    sources=("$src/host/src/experiment.cpp" "$src/host/src/schema_check.cpp" "$src/host/src/diagnostics.cpp"
             "$src/host/src/plugin_registry.cpp" "$src/host/src/label_map.cpp" "$src/sdk/src/training.cpp"
             "$src/sdk/src/plugin_types.cpp" "$src/sdk/src/search_space.cpp")
    # TOML++ 3.3.0 (Debian 12) asserts an assumption in parse_key that '[#' or '[\0' breaks; its
    # parser then reports the error (as the GCC release build, where the assertion is compiled
    # out, does). Its own assertions are off here so the fuzzer looks at trafficid's code.
    flags+=(-I"$src/host/src" '-DTOML_ASSERT(expr)=static_cast<void>(0)') libs=(-lfmt -ldl -lboost_filesystem) ;;
  *) echo "unknown fuzz target '$name'" >&2; exit 2 ;;
esac
binary="$work/fuzz_$name"
clang++ "${flags[@]}" "$src/tests/fuzz/fuzz_$name.cpp" "${sources[@]}" "${libs[@]}" -o "$binary"
# The checked-in corpus is read-only input; what the run finds goes to a work copy.
rm -rf "$work/corpus" && mkdir -p "$work/corpus"
cp "$src/tests/fuzz/corpus/$name"/* "$work/corpus/"
status=0
"$binary" -seed="$seed" -max_total_time="$seconds" -print_final_stats=1 -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$work/" "$work/corpus" > "$work/fuzz.log" 2>&1 || status=$?
tail -n 20 "$work/fuzz.log"
if [[ $status -ne 0 ]]; then
  echo "fuzz_$name: FAILED (status $status); replay: $binary $(ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* 2>/dev/null | head -1)" >&2
  exit 1
fi
echo "fuzz_$name: ${seconds}s from seed $seed without a crash or sanitizer report"
