#!/usr/bin/env bash
# Installs trafficid into a temporary prefix, builds the example model plugin in
# sdk/examples/nearest_centroid against the installed SDK (find_package + trafficid_add_plugin),
# and checks that the installed host loads it from --plugin-path and TRAFFICID_PLUGIN_PATH only.
# usage: out_of_tree_plugin.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
cmake -S "$src/sdk/examples/nearest_centroid" -B "$work/plugin" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_BUILD_TYPE=Release > "$work/configure.log" || { cat "$work/configure.log"; fail "configure against the installed SDK"; }
cmake --build "$work/plugin" > "$work/build.log" 2>&1 || { cat "$work/build.log"; fail "build against the installed SDK"; }
plugin="$work/plugin/trafficid_model_nearest_centroid.so"
[[ -f "$plugin" ]] || fail "trafficid_add_plugin did not produce $plugin"
host="$work/prefix/bin/trafficid"

# (Outputs are read whole before grep looks: a grep -q stopping at its first match would end the
# writer with SIGPIPE, a failure under pipefail.)
grep -Eq '^capture +synth ' <<< "$("$host" plugins)" || fail "the installed host does not list its own plugins"
# Never loaded implicitly, not even from the current directory.
grep -q nearest_centroid <<< "$(cd "$work/plugin" && "$host" plugins)" && fail "plugin loaded without being asked for"
grep -Eq '^model +nearest_centroid +0\.1\.0 ' <<< "$("$host" --plugin-path "$work/plugin" plugins)" \
  || fail "--plugin-path did not load the example"
grep -Eq '^metric +choice +"euclidean" +one of: euclidean, manhattan, cosine +distance to the centroids' \
  <<< "$("$host" --plugin-path "$work/plugin" plugins nearest_centroid)" || fail "parameter table of the example"
grep -q '"name": "shrink"' <<< "$(TRAFFICID_PLUGIN_PATH="$work/plugin" "$host" plugins nearest_centroid --json)" \
  || fail "TRAFFICID_PLUGIN_PATH did not load the example"
# A LibTorch model plugin built outside the tree: its network and schema, nothing else.
cmake -S "$src/sdk/examples/softmax_regression" -B "$work/torch-plugin" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_BUILD_TYPE=Release > "$work/configure-torch.log" 2>&1 || { cat "$work/configure-torch.log"; fail "configure the LibTorch example"; }
cmake --build "$work/torch-plugin" > "$work/build-torch.log" 2>&1 || { cat "$work/build-torch.log"; fail "build the LibTorch example"; }
# The installed quickstart runs from the installed host, with both examples trained beside its models.
"$host" -q --plugin-path "$work/plugin" --plugin-path "$work/torch-plugin" \
  run "$work/prefix/share/trafficid/experiments/quickstart.toml" --run-dir "$work/run" \
  --set experiment.output_dir="$work/out" --set models.nearest_centroid.shrink=0.1 --set models.softmax_regression.hidden=32 \
  || fail "installed quickstart with the example models"
[[ -s "$work/run/capture/summary.json" && -s "$work/run/config.resolved.toml" ]] || fail "run folder incomplete"
for m in gbdt flow_net mlp nearest_centroid softmax_regression; do
  [[ -s "$work/run/models/$m/metrics.json" ]] || fail "$m was not trained and tested"
done
grep -q softmax_regression "$work/run/report.html" || fail "the report leaves out the out-of-tree model"
echo "out_of_tree_plugin: built against the installed SDK and loaded by the installed host"
