#!/usr/bin/env bash
# Assembles .gpukit/ (git-ignored): what a bare GPU machine needs, besides its
# own pip LibTorch, to build and check the LibTorch parts of qatkit
# (scripts/gpu_train_check.sh), taken from this Debian 12 machine's packages:
#
#   .gpukit/prefix/   a relocatable install prefix: headers, shared libraries,
#                     CMake and pkg-config files of absl, sentencepiece,
#                     cxxopts, nlohmann_json, GTest/GMock (no absl static libs;
#                     each shared library once, under its SONAME; the link
#                     names libsentencepiece{,_train}.so are one-line linker
#                     scripts, since symlinks do not travel)
#   .gpukit/data/     brown-small/ (train.txt, valid.txt, tokenizer.model and
#                     their token caches) and fp/ (the quickstart FP
#                     checkpoint: config.json, model.safetensors,
#                     tokenizer.model): QAT from fp with distillation from fp
#   .gpukit/MANIFEST  what is inside, with sizes and package versions
#
#   scripts/gpu_kit.sh [--data DIR] [--fp CKPT] [--qat BIN] [--train-bytes N]
#     --data DIR   source corpus folder (default data/brown)
#     --fp CKPT    source FP checkpoint (default runs/quickstart/fp)
#     --qat BIN    a qat binary to write the token caches with (default:
#                  build/qat/qat when present; without one the device tokenizes)
#     --train-bytes N  bytes of train.txt to keep (default 1000000)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kit="$here/.gpukit"
data_src="$here/data/brown"
fp_src="$here/runs/quickstart/fp"
qat_bin="$here/build/qat/qat"
train_bytes=1000000
while [[ $# -gt 0 ]]; do
  case "$1" in
    --data) data_src="$2"; shift ;;
    --fp) fp_src="$2"; shift ;;
    --qat) qat_bin="$2"; shift ;;
    --train-bytes) train_bytes="$2"; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "gpu_kit.sh: unknown flag $1" >&2; exit 2 ;;
  esac
  shift
done
say() { printf '[gpu_kit] %s\n' "$*" >&2; }
die() { printf '[gpu_kit] error: %s\n' "$*" >&2; exit 1; }

for f in train.txt valid.txt tokenizer.model; do
  [[ -f "$data_src/$f" ]] || die "$data_src/$f is missing (give --data DIR; qat data / qat tokenizer make it)"
done
for f in config.json model.safetensors tokenizer.model; do
  [[ -f "$fp_src/$f" ]] || die "$fp_src/$f is missing (give --fp CKPT; scripts/quickstart.sh makes runs/quickstart/fp)"
done
[[ ! -f "$fp_src/recipe.json" ]] || die "$fp_src has a recipe.json: the kit wants a full-precision checkpoint"
cmp -s "$data_src/tokenizer.model" "$fp_src/tokenizer.model" ||
  die "$data_src/tokenizer.model differs from $fp_src/tokenizer.model"

arch="$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)"
usrlib="/usr/lib/$arch"
pkgs=(libabsl-dev libabsl20220623 libsentencepiece-dev libsentencepiece0 libcxxopts-dev nlohmann-json3-dev
      libgtest-dev libgmock-dev)
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    die "Debian package $p is not installed (scripts/setup.sh installs it)"
done

rm -rf "$kit"
prefix="$kit/prefix"
mkdir -p "$prefix/include" "$prefix/lib/cmake" "$prefix/lib/pkgconfig" "$prefix/share/cmake" "$kit/data"

# ---- headers: every regular file a package puts under /usr/include ----------
say "headers"
for p in libabsl-dev libsentencepiece-dev libcxxopts-dev nlohmann-json3-dev libgtest-dev libgmock-dev; do
  dpkg -L "$p" | while read -r f; do
    [[ "$f" == /usr/include/* && -f "$f" && ! -L "$f" ]] || continue
    rel="${f#/usr/include/}"
    mkdir -p "$prefix/include/$(dirname "$rel")"
    cp "$f" "$prefix/include/$rel"
  done
done

# ---- shared libraries, one copy each, named by SONAME -----------------------
soname() { objdump -p "$1" | awk '$1 == "SONAME" {print $2}'; }
say "libraries"
for f in "$usrlib"/libabsl_*.so.20220623.0.0 "$usrlib"/libsentencepiece.so.0.0.0 "$usrlib"/libsentencepiece_train.so.0.0.0; do
  name="$(soname "$f")"
  [[ -n "$name" ]] || die "$f has no SONAME"
  cp "$f" "$prefix/lib/$name"
  strip --strip-unneeded "$prefix/lib/$name" 2>/dev/null || true
done
# Link names: GNU ld resolves INPUT() next to the script, wherever it lies.
echo 'INPUT(libsentencepiece.so.0)' > "$prefix/lib/libsentencepiece.so"
echo 'INPUT(libsentencepiece_train.so.0)' > "$prefix/lib/libsentencepiece_train.so"
# GTest/GMock are static in Debian.
cp "$usrlib"/libgtest.a "$usrlib"/libgtest_main.a "$usrlib"/libgmock.a "$usrlib"/libgmock_main.a "$prefix/lib/"

# ---- CMake and pkg-config files, made relocatable ----------------------------
say "CMake / pkg-config files"
mkdir -p "$prefix/lib/cmake/absl" "$prefix/lib/cmake/GTest" "$prefix/lib/cmake/cxxopts" "$prefix/share/cmake/nlohmann_json"
cp "$usrlib"/cmake/absl/*.cmake "$prefix/lib/cmake/absl/"
cp "$usrlib"/cmake/GTest/*.cmake "$prefix/lib/cmake/GTest/"
cp /usr/lib/cmake/cxxopts/*.cmake "$prefix/lib/cmake/cxxopts/"
cp /usr/share/cmake/nlohmann_json/*.cmake "$prefix/share/cmake/nlohmann_json/"
cat > "$prefix/lib/pkgconfig/sentencepiece.pc" <<EOF
prefix=\${pcfiledir}/../..
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: sentencepiece
Description: SentencePiece (Debian $(dpkg-query -W -f='${Version}' libsentencepiece-dev), qatkit GPU kit)
Version: $(pkg-config --modversion sentencepiece 2>/dev/null || echo 0.1.97)
Libs: -L\${libdir} -lsentencepiece -lsentencepiece_train
Cflags: -I\${includedir}
EOF
# Exported CMake files find their prefix by walking up from their own folder
# (N levels: the folder's depth below the prefix) and special-case the
# original /usr path; the libraries sat in lib/<multiarch>/ under their full
# version. Rewrite all three for the kit's layout (every config folder here
# is 3 levels below the prefix).
python3 - "$prefix" "$arch" <<'PY'
import pathlib, re, sys
prefix, arch = pathlib.Path(sys.argv[1]), sys.argv[2]
up = 'get_filename_component(_IMPORT_PREFIX "${_IMPORT_PREFIX}" PATH)\n'
for f in list(prefix.glob('lib/cmake/*/*.cmake')) + list(prefix.glob('share/cmake/*/*.cmake')):
    depth = len(f.parent.relative_to(prefix).parts)
    t = f.read_text()
    # The "/usr move" special case: drop it (the kit is never under /usr).
    t = re.sub(r'get_filename_component\((_realCurr|_realOrig) [^\n]*\n', '', t)
    t = re.sub(r'if\(_realCurr STREQUAL _realOrig\)\n[^\n]*\nendif\(\)\n', '', t)
    t = re.sub(r'unset\((_realOrig|_realCurr)\)\n', '', t)
    # Walk up exactly `depth` levels.
    if up in t:
        first = t.index(up)
        t = t[:first] + up * depth + t[first:].replace(up, '')
    t = re.sub(r'(PACKAGE_PREFIX_DIR "\$\{CMAKE_CURRENT_LIST_DIR\})/(\.\./)+"',
               lambda m: m.group(1) + '/' + '../' * depth + '"', t)
    t = t.replace(f'lib/{arch}/', 'lib/').replace('.so.20220623.0.0', '.so.20220623')
    f.write_text(t)
    for line in t.splitlines():
        if re.search(r'(^|[ ";])/usr/', line) and not line.lstrip().startswith('#'):
            sys.exit(f'{f}: still names /usr: {line.strip()}')
PY
grep -rq "_IMPORT_PREFIX}/lib/libabsl_base.so.20220623\"" "$prefix/lib/cmake/absl/" ||
  die "absl CMake files were not rewritten as expected"
for f in $(grep -rhoE '\$\{_IMPORT_PREFIX\}/lib/[A-Za-z0-9_.+-]+' "$prefix/lib/cmake" | sort -u); do
  [[ -f "$prefix/${f#\$\{_IMPORT_PREFIX\}/}" ]] || die "CMake names ${f} but the kit lacks it"
done

# ---- data: a small corpus and the FP checkpoint -------------------------------
say "data"
small="$kit/data/brown-small"
mkdir -p "$small" "$kit/data/fp"
# Whole lines only.
head -c "$train_bytes" "$data_src/train.txt" | sed '$d' > "$small/train.txt"
head -c 120000 "$data_src/valid.txt" | sed '$d' > "$small/valid.txt"
cp "$data_src/tokenizer.model" "$small/"
cp "$fp_src/config.json" "$fp_src/model.safetensors" "$fp_src/tokenizer.model" "$kit/data/fp/"
if [[ -x "$qat_bin" ]]; then
  # Any qat train writes DIR/{train,valid}.txt.tokens; one tiny step does it.
  say "token caches via $qat_bin"
  "$qat_bin" train --data "$small" --init "$kit/data/fp" --out "$kit/tmp-ckpt" --steps 1 --batch 1 --seq 32 \
    --eval-chunks 1 --no-progress --threads 2 >/dev/null 2>"$kit/tmp-log" || { cat "$kit/tmp-log" >&2; die "qat train failed"; }
  rm -rf "$kit/tmp-ckpt" "$kit/tmp-log"
  [[ -f "$small/train.txt.tokens" && -f "$small/valid.txt.tokens" ]] || die "no token caches were written"
else
  say "no qat binary at $qat_bin: no token caches (the device tokenizes, a second or two)"
fi

# ---- manifest -----------------------------------------------------------------
{
  echo "qatkit GPU kit, made $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(. /etc/os-release; echo "$PRETTY_NAME") ($arch)"
  for p in "${pkgs[@]}"; do echo "package $p $(dpkg-query -W -f='${Version}' "$p")"; done
  echo "data from $data_src (train.txt: first $(wc -c < "$small/train.txt") bytes), fp from $fp_src"
  (cd "$kit" && find . -type f ! -name MANIFEST -printf '%s %p\n' | sort -k2)
} > "$kit/MANIFEST"
total=$(du -sb "$kit" | cut -f1)
say "done: $kit ($((total / 1024 / 1024)) MiB; prefix $(du -sh "$prefix" | cut -f1), data $(du -sh "$kit/data" | cut -f1))"
(( total < 25 * 1024 * 1024 )) || die "the kit is over 25 MiB"
