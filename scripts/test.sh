#!/usr/bin/env bash
# Set-up, then the whole test suite through CTest. Tests that read ../shared/data fail when it
# is missing and CI=true; point TRAFFICID_DATA_DIR elsewhere to use another copy.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec ctest --preset default "$@"
