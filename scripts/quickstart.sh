#!/usr/bin/env bash
# The main job on the built-in default: installs what is missing, builds,
# prepares the Brown corpus, and runs `qat compare` (pretrain a tiny model,
# FP fine-tune, PTQ vs QAT for the q4_0 and mobile recipes, export to GGUF and
# the mobile format, perplexity in qat-run and llama.cpp), then prints the
# table, where the files and plots are, and a sample from the QAT model.
#
#   scripts/quickstart.sh [--fast] [--out DIR]
#     --fast   3-minute smoke version (tiny budget; numbers are not meaningful)
# Re-running resumes where an interrupted run stopped.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${QATK_BUILD_DIR:-$here/build}"
fast=0
out=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --fast) fast=1 ;;
    --out) out="$2"; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "quickstart.sh: unknown flag $1" >&2; exit 2 ;;
  esac
  shift
done

"$here/scripts/setup.sh" --build-dir "$build_dir"
qat="$build_dir/qat/qat"
qat_run="$build_dir/inference/qat-run"

data="$here/data/brown"
if [[ ! -f "$data/test.txt" ]]; then
  "$qat" data --source brown --out "$data"
fi

if [[ $fast -eq 1 ]]; then
  out="${out:-$here/runs/quickstart-fast}"
  budget=(--pretrain-steps 60 --steps 20 --batch 8 --bootstrap 200)
else
  out="${out:-$here/runs/quickstart}"
  budget=(--pretrain-steps 2400 --steps 400 --batch 16)
fi

"$qat" compare --config "$here/configs/models/tiny.json" --data "$data" --out "$out" \
  --recipes "$here/configs/recipes/q4_0.json,$here/configs/recipes/mobile.json" \
  --qat-run "$qat_run" "${budget[@]}"

echo
echo "== Results (test split of the Brown corpus) =="
cat "$out/results.md"
echo
echo "Files:  $out/*.gguf, $out/*.qmob (exported models), $out/results.json"
echo "Plots:  $out/loss_curves.png $out/ppl_bars.png $out/size_bars.png"
echo
echo "== Sample from the QAT Q4_0 model (qat-run generate) =="
"$qat_run" generate --model "$out/qat-q4_0.gguf" --prompt "The jury said" -n 40 --seed 1
