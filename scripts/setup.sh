#!/usr/bin/env bash
# Installs the Debian 12 packages trafficid needs (only those missing), then configures and
# builds it with the `default` CMake preset into ./build. Run as root or with sudo available.
# usage: scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  # toolchain
  cmake g++ make pkg-config ccache
  # libraries (headers); libopenblas0-pthread: without it LibTorch falls back to the slow reference BLAS;
  # libgloo-dev: the headers of LibTorch's Gloo process group (data-parallel training)
  # libdnnl-dev: oneDNN (LibTorch links its library), for int8 inference (predict/evaluate --int8)
  libtorch-dev libgloo-dev libdnnl-dev libxgboost-dev libpcap-dev libndpi-dev libboost-dev libboost-filesystem-dev libtomlplusplus-dev libfmt-dev
  nlohmann-json3-dev libcli11-dev libcpp-httplib-dev catch2 libsqlite3-dev libgcrypt20-dev libxxhash-dev libopenblas0-pthread sqlite3
  # test tools: capinfos/editcap (tshark), ndpiReader (libndpi-bin), clang with libFuzzer,
  # NumPy (datasets load with numpy alone), scapy (the Deep Packet reference peer), chromium
  # (reports are checked in a real browser)
  tshark libndpi-bin clang libclang-rt-14-dev python3-numpy python3-scapy chromium
  # the code's shape (tests/scripts/code_shape.sh): formatting and function lengths
  clang-format universal-ctags git
  # the web application's browser test: Node.js runs playwright-core (from npm) against chromium
  nodejs
  # the cluster test: a single-node Slurm (slurmctld, slurmd, sbatch, srun) and its authentication
  slurm-wlm munge
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo=sudo
  echo "setup: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
fi

# Debian's nodejs comes without npm (its own package); a Node.js from elsewhere brings its own.
if ! command -v npm > /dev/null; then
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm > /dev/null
fi

cmake --preset default > /dev/null
cmake --build --preset default
