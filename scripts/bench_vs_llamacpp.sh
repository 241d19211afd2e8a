#!/usr/bin/env bash
# qat-run vs llama.cpp (node-llama-cpp's prebuilt CPU build) on the same GGUF
# files, side by side in one run. For each model and thread count:
#   decode  : tokens/s of 64 tokens after a 32-token prompt
#   prefill : tokens/s of one 512-token batch
# The two runtimes alternate rep by rep (so background load hits both alike);
# medians of --reps, ratio = qat-run / llama.cpp. Also the decode bound from
# memory bandwidth: `qat-run bench --read-bw` measures streaming read GB/s
# with the same thread count; bound = GB/s / bytes of weights per token.
#
#   scripts/bench_vs_llamacpp.sh [--build DIR] [--reps N] [--threads "1 2"]
#                                [--make-1b DIR] [MODEL.gguf ...]
# --make-1b DIR: also bench a synthetic ~1B Q4_0 model made by qatkit
#   (a 32000-piece tokenizer trained on the Brown corpus, qat init --config
#   configs/models/1b.json, qat export --outtype q4_0), written to DIR
#   (reused if DIR/model-1b-q4_0.gguf exists).
# Prints a markdown table on stdout; raw JSON lines go to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="$ROOT/build"
REPS=5
THREADS="1 2"
MAKE_1B=""
MODELS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) BUILD="$2"; shift 2 ;;
    --reps) REPS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --make-1b) MAKE_1B="$2"; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) MODELS+=("$1"); shift ;;
  esac
done

QAT_RUN="$BUILD/inference/qat-run"
QAT="$BUILD/qat/qat"
BENCH_MJS="$ROOT/tests/interop/bench.mjs"
[[ -x "$QAT_RUN" ]] || { echo "error: $QAT_RUN not built (ninja -C $BUILD qat-run)" >&2; exit 1; }
[[ -d "$ROOT/tests/interop/node_modules/node-llama-cpp" ]] ||
  { echo "error: node-llama-cpp missing under tests/interop/node_modules" >&2; exit 1; }

if [[ -n "$MAKE_1B" ]]; then
  F="$MAKE_1B/model-1b-q4_0.gguf"
  if [[ ! -f "$F" ]]; then
    [[ -x "$QAT" ]] || { echo "error: $QAT not built (needed for --make-1b)" >&2; exit 1; }
    mkdir -p "$MAKE_1B"
    # The checkpoint carries a tokenizer with the config's 32000 pieces.
    BROWN="$ROOT/data/brown"
    [[ -f "$BROWN/train.txt" ]] || "$QAT" data --source brown --out "$BROWN" >&2
    [[ -f "$MAKE_1B/tokenizer.model" ]] ||
      "$QAT" tokenizer --data "$BROWN/train.txt" --vocab 32000 --out "$MAKE_1B/tokenizer.model" >&2
    "$QAT" init --config "$ROOT/configs/models/1b.json" --tokenizer "$MAKE_1B/tokenizer.model" \
      --out "$MAKE_1B/ckpt" >&2
    "$QAT" export --model "$MAKE_1B/ckpt" --format gguf --outtype q4_0 --out "$F" >&2
  fi
  MODELS+=("$F")
fi
[[ ${#MODELS[@]} -gt 0 ]] || { echo "error: no model given (a GGUF path or --make-1b DIR)" >&2; exit 1; }

RAW="$(mktemp)"
trap 'rm -f "$RAW"' EXIT
tag() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d.update(json.loads(sys.argv[2])); print(json.dumps(d))' "$1" "$2"; }

for M in "${MODELS[@]}"; do
  for T in $THREADS; do
    key="{\"model\": \"$(basename "$M")\", \"threads\": $T"
    out=$("$QAT_RUN" bench --model "$M" --threads "$T" --prompt-tokens 32 --gen-tokens 0 --reps 1 \
          --read-bw --json 2>/dev/null)
    tag "$key, \"what\": \"bw\"}" "$out" | tee -a "$RAW" >&2
    for ((r = 0; r < REPS; r++)); do
      out=$("$QAT_RUN" bench --model "$M" --threads "$T" --prompt-tokens 32 --gen-tokens 64 \
            --reps 1 --json 2>/dev/null)
      tag "$key, \"what\": \"qat_decode\"}" "$out" | tee -a "$RAW" >&2
      out=$("$QAT_RUN" bench --model "$M" --threads "$T" --prompt-tokens 512 --gen-tokens 0 \
            --reps 1 --json 2>/dev/null)
      tag "$key, \"what\": \"qat_prefill\"}" "$out" | tee -a "$RAW" >&2
      out=$(cd "$ROOT/tests/interop" && node "$BENCH_MJS" --model "$M" --threads "$T" \
            --prompt-tokens 512 --gen-tokens 64 --reps 1)
      tag "$key, \"what\": \"llama\"}" "$out" | tee -a "$RAW" >&2
    done
  done
done

python3 - "$RAW" "$REPS" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
groups = {}
for r in rows:
    groups.setdefault((r["model"], r["threads"]), []).append(r)
def med(xs): return statistics.median(xs) if xs else float("nan")
print(f"| model | threads | decode qat-run tok/s | decode llama.cpp tok/s | decode ratio | "
      f"prefill-512 qat-run tok/s | prefill-512 llama.cpp tok/s | prefill ratio | "
      f"read GB/s | MB weights/token | decode bound tok/s | qat-run % of bound | llama.cpp % of bound |")
print("|" + "---|" * 13)
for (m, t), rs in groups.items():
    qd = med([r["decode_tps"] for r in rs if r["what"] == "qat_decode"])
    qp = med([r["prefill_tps"] for r in rs if r["what"] == "qat_prefill"])
    ld = med([r["decode_tps"] for r in rs if r["what"] == "llama"])
    lp = med([r["prefill_tps"] for r in rs if r["what"] == "llama"])
    bw = [r for r in rs if r["what"] == "bw"][0]
    lim = bw["bw_limit_tps"]
    print(f"| {m} | {t} | {qd:.2f} | {ld:.2f} | {qd/ld:.2f} | {qp:.2f} | {lp:.2f} | {qp/lp:.2f} | "
          f"{bw['read_gbps']:.2f} | {bw['weight_bytes_per_token']/1e6:.0f} | {lim:.2f} | "
          f"{100*qd/lim:.0f}% | {100*ld/lim:.0f}% |")
print(f"\nMedians of {sys.argv[2]} alternating reps per runtime.")
EOF
