#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite:
#   1. the GoogleTest/ctest suite (unit, golden-byte, interop with llama.cpp),
#   2. the file-format fuzz tests again under AddressSanitizer + UBSan,
#   3. the runtime cross-built for aarch64, its tests under qemu at three CPU
#      feature levels (scripts/test_aarch64.sh; QATK_SKIP_AARCH64=1 skips it).
# Exit code = result.  scripts/test.sh [ctest args...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${QATK_BUILD_DIR:-$here/build}"
asan_dir="${QATK_ASAN_BUILD_DIR:-$here/build-asan}"
jobs="$(nproc)"
export CCACHE_BASEDIR="$here" CCACHE_NOHASHDIR=1

"$here/scripts/setup.sh" --build-dir "$build_dir"

echo "[test] ctest ($build_dir)" >&2
ctest --test-dir "$build_dir" -j "$jobs" --output-on-failure --timeout 900 "$@"

echo "[test] fuzz tests under ASan+UBSan ($asan_dir)" >&2
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
if [[ ! -f "$asan_dir/build.ninja" ]]; then
  cmake -S "$here" -B "$asan_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DQATK_SANITIZE=ON -DQATK_BUILD_QAT=OFF -DQATK_BUILD_BENCHMARKS=OFF "${launcher[@]}" >&2
fi
cmake --build "$asan_dir" -j "$jobs" --target qatk_fuzz_tests >&2
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir "$asan_dir" -j "$jobs" --output-on-failure -L fuzz

if [[ "${QATK_SKIP_AARCH64:-0}" != 1 ]]; then
  echo "[test] aarch64 cross build under qemu (scripts/test_aarch64.sh)" >&2
  "$here/scripts/test_aarch64.sh"
fi
