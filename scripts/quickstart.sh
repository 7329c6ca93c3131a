#!/usr/bin/env bash
# Set-up, then the quickstart experiment on the embedded synthetic capture (no data needed).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec build/bin/trafficid run experiments/quickstart.toml "$@"
