#!/usr/bin/env bash
# The main job on the built-in default: installs what is missing, builds,
# prepares the Brown corpus, and runs `qat compare` (pretrain a tiny model,
# FP fine-tune, PTQ vs QAT for the q4_0 and mobile recipes, export to GGUF and
# the mobile format, perplexity in qat-run and llama.cpp), then prints the
# table, where the files and plots are, and a sample from the QAT model.
#
#   scripts/quickstart.sh [--fast] [--out DIR] [--seeds N] [--qat-init gptq|fp]
#     --fast     3-minute smoke version (tiny budget; numbers are not meaningful;
#                2 QAT seeds, to exercise that path)
#     --seeds N  N QAT runs per recipe (seeds 1..N, default 1): the table adds
#                the recovered fraction's mean over them, its 95% interval and
#                its range (each extra seed adds about 2 minutes)
#     --qat-init fp    QAT of the q4_0 recipe starts from the FP model instead
#                of its GPTQ rounding followed by block reconstruction (the
#                default, gptq, adds the ptq-gptq-q4_0 row)
# Re-running resumes where an interrupted run stopped.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${QATK_BUILD_DIR:-$here/build}"
fast=0
out=""
seeds=""
qat_init=gptq
while [[ $# -gt 0 ]]; do
  case "$1" in
    --fast) fast=1 ;;
    --out) out="$2"; shift ;;
    --seeds) seeds="$2"; shift ;;
    --qat-init) qat_init="$2"; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "quickstart.sh: unknown flag $1" >&2; exit 2 ;;
  esac
  shift
done

# QATK_SKIP_SETUP=1: already installed and built (the test suite's smoke run).
[[ "${QATK_SKIP_SETUP:-0}" == 1 ]] || "$here/scripts/setup.sh" --build-dir "$build_dir"
qat="$build_dir/qat/qat"
qat_run="$build_dir/inference/qat-run"

data="$here/data/brown"
if [[ ! -f "$data/test.txt" ]]; then
  "$qat" data --source brown --out "$data"
fi

if [[ $fast -eq 1 ]]; then
  out="${out:-$here/runs/quickstart-fast}"
  # A short evaluation text keeps the smoke run to a few minutes.
  mkdir -p "$out"
  head -c 40000 "$data/test.txt" > "$out/smoke-test.txt"
  budget=(--pretrain-steps 30 --steps 10 --batch 4 --seq 128 --bootstrap 200 --eval-file "$out/smoke-test.txt"
          --recon-steps 10 --qat-seeds "${seeds:-2}")
else
  out="${out:-$here/runs/quickstart}"
  budget=(--pretrain-steps 3800 --pretrain-lr 3e-3 --steps 200 --lr 1e-4 --qat-lr 1e-4,3e-4 --batch 8 --seq 256
          --qat-seeds "${seeds:-1}")
fi

"$qat" compare --config "$here/configs/models/tiny.json" --data "$data" --out "$out" \
  --recipes "$here/configs/recipes/q4_0.json,$here/configs/recipes/mobile.json" \
  --qat-run "$qat_run" --qat-init "$qat_init" "${budget[@]}"

echo
echo "== Results (test split of the Brown corpus) =="
cat "$out/results.md"
echo
echo "Files:  $out/*.gguf, $out/*.qmob (exported models), $out/results.json"
echo "Plots:  $out/loss_curves.png $out/ppl_bars.png $out/size_bars.png $out/kl_bars.png"
echo
echo "== Sample from the QAT Q4_0 model (qat-run generate) =="
"$qat_run" generate --model "$out/qat-q4_0.gguf" --prompt "The jury said" -n 40 --seed 1
