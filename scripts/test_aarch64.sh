#!/usr/bin/env bash
# Cross-builds the LibTorch-free part of qatkit (runtime, qat-run, the C API,
# their tests) for Linux aarch64 and runs the tests under qemu-aarch64 at
# three CPU feature levels:
#   cortex-a53  armv8.0: NEON only (the baseline kernels; no dotprod)
#   cortex-a76  armv8.2 + dotprod (SDOT kernels)
#   max         everything qemu emulates, i8mm included (SMMLA kernels)
# Installs what it needs on Debian 12 if missing (cross g++, qemu-user, the
# arm64 -dev packages through multiarch). Timings under qemu say nothing
# about ARM hardware speed.
#
#   scripts/test_aarch64.sh [--build-dir DIR] [--cpus "cortex-a53 cortex-a76 max"]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${QATK_AARCH64_BUILD_DIR:-$here/build-aarch64}"
cpus="cortex-a53 cortex-a76 max"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) build_dir="$2"; shift ;;
    --cpus) cpus="$2"; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "test_aarch64.sh: unknown flag $1" >&2; exit 2 ;;
  esac
  shift
done
say() { printf '\033[1m[aarch64]\033[0m %s\n' "$*" >&2; }
export CCACHE_BASEDIR="$here" CCACHE_NOHASHDIR=1

# Debian's libsentencepiece-dev is not Multi-Arch: its arm64 package would
# replace the host's, so it is left out (the cross build skips the one test
# needing it). nlohmann-json3-dev and libcxxopts-dev are architecture-free.
host_packages=(g++-aarch64-linux-gnu qemu-user cmake ninja-build pkg-config
               nlohmann-json3-dev libcxxopts-dev)
# libc6 / libstdc++6:arm64 also run the binaries under qemu (no -L sysroot).
arm_packages=(libc6:arm64 libstdc++6:arm64 libabsl-dev:arm64 libgtest-dev:arm64
              libgmock-dev:arm64)
missing=()
for p in "${host_packages[@]}" "${arm_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  say "installing Debian packages: ${missing[*]}"
  sudo_cmd=""
  [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
  dpkg --print-foreign-architectures | grep -qx arm64 || $sudo_cmd dpkg --add-architecture arm64
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
if [[ ! -f "$build_dir/build.ninja" ]]; then
  say "configuring $build_dir"
  cmake -S "$here" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_TOOLCHAIN_FILE="$here/scripts/aarch64-toolchain.cmake" \
    -DQATK_BUILD_QAT=OFF -DQATK_BUILD_BENCHMARKS=OFF "${launcher[@]}" >&2
fi
say "building"
cmake --build "$build_dir" -j "$(nproc)" >&2

# Sizes of what an app ships (stripped copies; the build keeps its own).
strip_tool=aarch64-linux-gnu-strip
for f in "$build_dir/inference/qat-run" "$build_dir/inference/libqatk_runtime_c.so"; do
  [[ -f "$f" ]] || continue
  "$strip_tool" -o "$build_dir/$(basename "$f").stripped" "$f"
  say "stripped $(basename "$f"): $(stat -c %s "$build_dir/$(basename "$f").stripped") bytes"
done

status=0
for cpu in $cpus; do
  case "$cpu" in
    cortex-a53|cortex-a72|cortex-a57|a64fx) level=neon ;;
    cortex-a76|cortex-a710|neoverse-n1) level=dotprod ;;
    *) level=i8mm ;;  # max, neoverse-n2, neoverse-v1 ...
  esac
  say "tests on -cpu $cpu (expected kernels: $level)"
  if ! QEMU_CPU="$cpu" QATK_EXPECT_ARM_LEVEL="$level" \
       ctest --test-dir "$build_dir" -j "$(nproc)" --output-on-failure -LE interop >&2; then
    say "FAILED on -cpu $cpu"
    status=1
  fi
done
exit $status
