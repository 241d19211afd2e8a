#!/usr/bin/env bash
# qat-run perplexity --kl-base / --save-logits on a Q4_0 and an F32 export of
# one random checkpoint (the qat export path):
#   (a) a model against itself, live or from its log-prob file: KL 0, p99 0,
#       top-1 1, delta_ppl 0 exactly;
#   (b) Q4_0 against F32: the same figures from the F32 model and from its
#       log-prob file, and numpy's recomputation from the two log-prob files
#       (kl_check.py) within 1e-6 relative, KL > 0;
#   (c) a log-prob file of another ctx or text is an error naming the file.
#   kl_divergence_test.sh MAKE_TINY_CHECKPOINT QAT QAT_RUN SOURCE_DIR
# Exit 77 (ctest skip) without /usr/bin/python3 + numpy.
set -euo pipefail
make_tiny="$1"; qat="$2"; qat_run="$3"; src="$4"
py=/usr/bin/python3
"$py" -c 'import numpy' 2>/dev/null || { echo "no numpy for /usr/bin/python3: skipping"; exit 77; }
work="$(mktemp -d /tmp/qatk_kl_XXXXXX)"
trap 'rm -rf "$work"' EXIT
cd "$work"

cat "$src"/README.md "$src"/docs/*.md > all.txt
head -c 30000 all.txt > text.txt
"$make_tiny" ckpt none > make.log 2>&1 || { cat make.log; exit 1; }
"$qat" export --model ckpt --format gguf --outtype f32 --out f32.gguf 2> export.log
"$qat" export --model ckpt --format gguf --outtype q4_0 --out q4.gguf 2>> export.log
ppl() { "$qat_run" perplexity --file text.txt --ctx 64 --threads 2 --json "$@"; }
field() { "$py" -c 'import json,sys; print(repr(json.load(open(sys.argv[1]))[sys.argv[2]]))' "$1" "$2"; }
status=0
expect() {  # file key value
  local got; got="$(field "$1" "$2")"
  if [ "$got" = "$3" ]; then echo "$1 $2 = $got"; else echo "FAIL: $1 $2 = $got, want $3"; status=1; fi
}

# (a)
ppl --model f32.gguf --save-logits f32.qlp > f32.json
ppl --model f32.gguf --kl-base f32.gguf > self_live.json
ppl --model f32.gguf --kl-base f32.qlp > self_file.json
for f in self_live.json self_file.json; do
  expect $f kl_mean 0.0; expect $f kl_p99 0.0; expect $f top1 1.0; expect $f delta_ppl 0.0
done
expect self_live.json ppl "$(field f32.json ppl)"

# (b)
ppl --model q4.gguf --save-logits q4.qlp --kl-base f32.gguf > q4_live.json
ppl --model q4.gguf --kl-base f32.qlp > q4_file.json
for k in kl_mean kl_p99 top1 delta_ppl ppl; do expect q4_file.json $k "$(field q4_live.json $k)"; done
"$py" "$src/tests/inference/kl_check.py" f32.qlp q4.qlp q4_file.json || status=1

# (c)
if ppl --model q4.gguf --ctx 32 --kl-base f32.qlp > /dev/null 2> err.txt; then
  echo "FAIL: a log-prob file of ctx 64 was accepted at ctx 32"; status=1
elif ! grep -q "f32.qlp: ctx" err.txt; then echo "FAIL: error does not name the file: $(cat err.txt)"; status=1
else echo "ctx mismatch: $(cat err.txt)"; fi
head -c 20000 text.txt > other.txt
if "$qat_run" perplexity --model q4.gguf --file other.txt --ctx 64 --kl-base f32.qlp > /dev/null 2> err.txt; then
  echo "FAIL: a log-prob file of another text was accepted"; status=1
else echo "other text: $(cat err.txt)"; fi
if ls | grep -q '\.tmp\.'; then echo "FAIL: temporary files left: $(ls)"; status=1; fi
exit $status
