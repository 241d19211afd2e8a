#!/usr/bin/env bash
# Builds docs/examples/generate.c against the INSTALLED C API only (cmake
# --install into a temporary prefix, then the C compiler with the header,
# the libraries and the .pc file from there), shared and static, and runs
# both on a tiny mobile model.
#   capi_example_test.sh BUILD_DIR SOURCE_DIR CC TINY_MOBILE_TOOL [EMULATOR...]
set -euo pipefail
build="$1" src="$2" cc="$3" tiny="$4"
shift 4
emu=("$@")  # e.g. qemu-aarch64 (cross builds)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
libdir="$(dirname "$(find "$work/prefix" -name 'libqatk_runtime_c.so' | head -1)")"
test -f "$work/prefix/include/qatk_runtime.h"
test -f "$libdir/libqatk_runtime_c.a"
"${emu[@]}" "$tiny" "$work/tiny.qmob"

# Shared: the header and -lqatk_runtime_c, nothing from the source tree.
"$cc" -std=c99 -Wall -Wextra -Werror "$src/docs/examples/generate.c" -o "$work/generate" \
  -I"$work/prefix/include" -L"$libdir" -lqatk_runtime_c -Wl,-rpath,"$libdir"
out="$("${emu[@]}" "$work/generate" "$work/tiny.qmob" "hello world" 16 0.8)"
echo "shared: $out"
[[ "$out" == "hello world"?* ]]

# Static: the bundled archive plus the .pc file's private libraries.
priv="$(PKG_CONFIG_LIBDIR="$libdir/pkgconfig" pkg-config --define-variable=prefix="$work/prefix" \
          --static --libs-only-l qatk_runtime_c | sed 's/-lqatk_runtime_c//')"
# shellcheck disable=SC2086
"$cc" -std=c99 -Wall -Wextra -Werror "$src/docs/examples/generate.c" -o "$work/generate_static" \
  -I"$work/prefix/include" "$libdir/libqatk_runtime_c.a" $priv
out_static="$("${emu[@]}" "$work/generate_static" "$work/tiny.qmob" "hello world" 16 0.8)"
echo "static: $out_static"
[[ "$out_static" == "$out" ]]

# A corrupt file: an error code and message, exit status 1, no crash.
head -c 100 "$work/tiny.qmob" > "$work/bad.qmob"
set +e
"${emu[@]}" "$work/generate" "$work/bad.qmob" "hi" 2> "$work/err.txt"
rc=$?
set -e
cat "$work/err.txt"
[[ $rc -eq 1 ]] && grep -q '^load: invalid model file: ' "$work/err.txt"
