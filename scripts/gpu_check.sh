#!/usr/bin/env bash
# The GPU check, in two halves:
#
#   scripts/gpu_check.sh --prepare   (here, on the build machine: nvcc, no GPU)
#       builds the runtime with -DQATK_CUDA=ON (build-cuda/) and gathers what
#       the GPU machine needs into .gpubin/ (ignored): qat-run, the CUDA
#       tests and tools, the shared libraries they load, and the quickstart's
#       exported models with the Brown test text. Run scripts/quickstart.sh
#       (or --fast) first for the models.
#   scripts/gpu_check.sh             (there, from the repo root, with
#       .gpubin carried; nothing is installed there)
#       1. the CUDA tests (every kernel against the CPU runtime);
#       2. perplexity of the same files on the GPU and on the CPU;
#       3. a random ~1B Q4_0 model: prefill and decode tok/s against the
#          bound set by the measured device-to-device copy bandwidth;
#       4. GB/s of every MatMul kernel on the 1B shapes (cuda_kernel_bench);
#       5. scripts/gpu_train_check.sh (QAT on CUDA vs CPU; needs .gpukit
#          from scripts/gpu_kit.sh carried too; QATK_GPU_CHECK_SKIP_TRAIN=1
#          skips it);
#       and writes a summary to $OUT (or gpu-check-out/): gpu_check.md, *.json.
# Each step reports its own failure and the later ones still run; the exit
# code is non-zero if any step failed.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin_dir="$here/.gpubin"

if [[ "${1:-}" == "--prepare" ]]; then
  set -e
  build="$here/build-cuda"
  export CCACHE_BASEDIR="$here" CCACHE_NOHASHDIR=1
  nvcc="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)"
  [[ -x "$nvcc" ]] || { echo "gpu_check: nvcc not found (CUDA toolkit needed to build)" >&2; exit 1; }
  launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DQATK_CUDA=ON \
    -DQATK_BUILD_QAT=OFF -DQATK_BUILD_BENCHMARKS=OFF -DCMAKE_CUDA_COMPILER="$nvcc" "${launcher[@]}" >&2
  cmake --build "$build" -j "$(nproc)" --target qat-run cuda_ops_test synth_gguf cuda_kernel_bench >&2
  rm -rf "$bin_dir"
  mkdir -p "$bin_dir/lib" "$bin_dir/models"
  for b in inference/qat-run tests/cuda_ops_test tests/synth_gguf tests/cuda_kernel_bench; do
    cp "$build/$b" "$bin_dir/"
    strip "$bin_dir/$(basename "$b")"
  done
  # Shared libraries outside glibc/libstdc++ (Debian's absl): they travel.
  for b in "$bin_dir"/qat-run "$bin_dir"/cuda_ops_test "$bin_dir"/synth_gguf; do
    ldd "$b" | awk '/=> \//{print $3}' | grep -Ev '/(libc|libm|libstdc\+\+|libgcc_s|libpthread|libdl|librt)\.so' |
      while read -r lib; do cp -L "$lib" "$bin_dir/lib/"; done
  done
  cp "$here/configs/models/1b.json" "$bin_dir/models/"
  qs="$here/runs/quickstart"
  [[ -f "$qs/fp.gguf" ]] || qs="$here/runs/quickstart-fast"
  for m in fp.gguf qat-q4_0.gguf ptq-q4_0.gguf qat-mobile.qmob; do
    if [[ -f "$qs/$m" ]]; then cp "$qs/$m" "$bin_dir/models/"; else echo "gpu_check: no $qs/$m (run the quickstart first)" >&2; fi
  done
  cp "$here/data/brown/test.txt" "$bin_dir/models/test.txt"
  du -sh "$bin_dir" >&2
  echo "gpu_check: prepared $bin_dir; on the GPU machine run scripts/gpu_check.sh with .gpubin carried" >&2
  exit 0
fi

# $OUT keeps the summary and a few logs (the device tool returns <= 8 files);
# step scratch goes to $work.
out="${OUT:-$here/gpu-check-out}"
work="${TMPDIR:-/tmp}/qatk-gpu-check"
mkdir -p "$out" "$work"
export LD_LIBRARY_PATH="$bin_dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
run="$bin_dir/qat-run"
md="$out/gpu_check.md"
failed=()
step() { printf '\n=== %s ===\n' "$*"; }
fail() { echo "gpu_check: FAILED: $*"; failed+=("$*"); }
[[ -x "$run" ]] || { echo "gpu_check: $bin_dir/qat-run missing: run scripts/gpu_check.sh --prepare on the build machine and carry .gpubin" >&2; exit 1; }
threads="$(nproc)"

{
  echo "# GPU check ($(date -u +%F))"
  echo
  echo "- device: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo unknown)"
  echo "- host: $(nproc) cores; command: \`scripts/gpu_check.sh\` (prepared with \`scripts/gpu_check.sh --prepare\`)"
} >"$md"

step "1. CUDA tests (kernels against the CPU runtime)"
if "$bin_dir/cuda_ops_test" --gtest_brief=1 2>&1 | tee "$out/cuda_ops_test.log" | tail -25; then
  echo "- cuda_ops_test: $(grep -Eo '\[  PASSED  \] [0-9]+ tests?' "$out/cuda_ops_test.log" | head -1), $(grep -Eo '\[  SKIPPED \] [0-9]+' "$out/cuda_ops_test.log" | grep -Eo '[0-9]+$' || echo 0) skipped" >>"$md"
else
  fail "cuda_ops_test"
  echo "- cuda_ops_test: FAILED (see cuda_ops_test.log)" >>"$md"
fi

step "2. perplexity: GPU vs CPU on the same file"
{
  echo
  echo "## Perplexity, Brown test split, ctx 256 (same file, CPU $threads threads vs CUDA)"
  echo
  echo "| file | CPU | CUDA | difference |"
  echo "|---|---:|---:|---:|"
} >>"$md"
for m in fp.gguf ptq-q4_0.gguf qat-q4_0.gguf qat-mobile.qmob; do
  f="$bin_dir/models/$m"
  [[ -f "$f" ]] || continue
  cpu=$("$run" perplexity --model "$f" --file "$bin_dir/models/test.txt" --ctx 256 --threads "$threads" --json 2>/dev/null | tail -1)
  gpu=$("$run" perplexity --model "$f" --file "$bin_dir/models/test.txt" --ctx 256 --device cuda --json 2>"$work/ppl_$m.err" | tail -1)
  pc=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["ppl"])' "$cpu" 2>/dev/null)
  pg=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["ppl"])' "$gpu" 2>/dev/null)
  if [[ -z "$pc" || -z "$pg" ]]; then
    fail "perplexity $m"; cat "$work/ppl_$m.err"
    echo "| $m | ${pc:-error} | ${pg:-error} | |" >>"$md"
    continue
  fi
  d=$(python3 -c "print(f'{100*($pg-$pc)/$pc:+.4f}%')")
  ok=$(python3 -c "print(abs($pg-$pc)/$pc <= 0.001)")
  echo "$m: cpu $pc cuda $pg ($d)"
  [[ "$ok" == True ]] || fail "perplexity $m differs by $d (> 0.1%)"
  echo "| $m | $(printf %.4f "$pc") | $(printf %.4f "$pg") | $d |" >>"$md"
done

step "3. ~1B Q4_0 model (random weights, configs/models/1b.json): speed"
big=/tmp/qatk-1b-q4_0.gguf
if "$bin_dir/synth_gguf" "$big" --config "$bin_dir/models/1b.json" --type q4_0 --output-type q8_0; then
  {
    echo
    echo "## ~1B Q4_0 (random weights, 1b.json shapes, Q8_0 output head)"
    echo
    echo "| device | prefill 512 tok/s | decode tok/s | bandwidth GB/s (GPU: device copy) | decode bound tok/s | decode / bound |"
    echo "|---|---:|---:|---:|---:|---:|"
  } >>"$md"
  # bench_row LABEL FILE [VAR=VALUE...] -- [qat-run bench flags]: one bench, one table row.
  bench_row() {
    local label="$1" f="$2"; shift 2
    local envs=()
    while [[ $# -gt 0 && "$1" != -- ]]; do envs+=("$1"); shift; done
    shift
    if env "${envs[@]}" "$run" bench --model "$big" --read-bw --json "$@" >"$work/$f.json" 2>"$work/$f.err"; then
      cat "$work/$f.err"
      python3 - "$work/$f.json" "$label" >>"$md" <<'EOF'
import json, sys
b = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print(f"| {sys.argv[2]} | {b['prefill_tps']:.0f} | {b['decode_tps']:.1f} | {b['read_gbps']:.0f} | {b['bw_limit_tps']:.0f} | {100*b['bw_fraction']:.0f}% |")
EOF
    else
      fail "bench 1B $label"; cat "$work/$f.err"
    fi
  }
  gpu=(--device cuda --prompt-tokens 512 --gen-tokens 256 --reps 3)
  bench_row "cuda" bench_1b_cuda -- "${gpu[@]}"
  bench_row "cuda, QATK_CUDA_ROWS_PER_WARP=2" bench_1b_cuda_rows2 QATK_CUDA_ROWS_PER_WARP=2 -- "${gpu[@]}"
  bench_row "cuda, QATK_CUDA_ROWS_PER_WARP=4" bench_1b_cuda_rows4 QATK_CUDA_ROWS_PER_WARP=4 -- "${gpu[@]}"
  bench_row "cuda, no graphs (QATK_CUDA_GRAPHS=0)" bench_1b_cuda_nograph QATK_CUDA_GRAPHS=0 -- "${gpu[@]}"
  bench_row "cpu, $threads threads (prefill 64; bandwidth: streaming read)" bench_1b_cpu -- \
    --threads "$threads" --prompt-tokens 64 --gen-tokens 16 --reps 1
  rm -f "$big"
else
  fail "synth_gguf"
fi

step "4. MatMul kernels: GB/s on the 1B shapes"
if "$bin_dir/cuda_kernel_bench" --json "$out/kernels.json" | tee "$work/kernels.md"; then
  { echo; echo "## MatMul kernels (cuda_kernel_bench)"; echo; cat "$work/kernels.md"; } >>"$md"
else
  fail "cuda_kernel_bench"
fi

if [[ "${QATK_GPU_CHECK_SKIP_TRAIN:-0}" == 1 ]]; then
  step "5. QAT training on CUDA vs CPU: skipped (QATK_GPU_CHECK_SKIP_TRAIN=1)"
elif [[ ! -d "$here/.gpukit" ]]; then
  step "5. QAT training on CUDA vs CPU: skipped (no .gpukit: run scripts/gpu_kit.sh and carry it)"
  fail "gpu_train_check (no .gpukit)"
else
  step "5. QAT training on CUDA vs CPU (scripts/gpu_train_check.sh)"
  # Its table and JSON come back; its logs as one archive (the tool returns <= 8 files).
  train_out="$work/train"
  mkdir -p "$train_out"
  OUT="$train_out" "$here/scripts/gpu_train_check.sh" 2>&1 | tee "$work/train_check.log"
  train_rc=${PIPESTATUS[0]}
  ((train_rc == 0)) || fail "gpu_train_check"
  cp "$train_out"/train_check* "$out/" 2>/dev/null
  cp "$work/train_check.log" "$here/build-gpu-torch/gpu_train_check/" 2>/dev/null
  tar -czf "$out/train_logs.tgz" -C "$here/build-gpu-torch" gpu_train_check 2>/dev/null
  [[ -f "$train_out/train_check.md" ]] && { echo; cat "$train_out/train_check.md"; } >>"$md"
fi

cat "$work"/bench_1b_*.json >"$out/bench_1b.jsonl" 2>/dev/null
step "summary ($md)"
cat "$md"
if ((${#failed[@]})); then
  printf '\ngpu_check: %d step(s) failed:\n' "${#failed[@]}"
  printf '  - %s\n' "${failed[@]}"
  exit 1
fi
echo "gpu_check: all steps passed"
