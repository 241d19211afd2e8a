#!/usr/bin/env bash
# qat eval --kl-base between LibTorch checkpoints:
#   (a) a checkpoint against itself: KL 0, p99 0, top-1 1, delta_ppl 0 exactly;
#   (b) a Q4_0 fake-quant checkpoint against the FP one with the same weights:
#       KL > 0, its ppl and ppl_base those of plain `qat eval` of each;
#   (c) the same measure in the runtime: qat-run perplexity --kl-base on their
#       exports (Q4_0 GGUF vs F32 GGUF) within 5% of qat eval's KL;
#   (d) a base with another tokenizer is an error.
#   eval_kl_test.sh MAKE_TINY_CHECKPOINT QAT QAT_RUN SOURCE_DIR
set -euo pipefail
make_tiny="$1"; qat="$2"; qat_run="$3"; src="$4"
py=/usr/bin/python3
work="$(mktemp -d /tmp/qatk_eval_kl_XXXXXX)"
trap 'rm -rf "$work"' EXIT
cd "$work"

cat "$src"/README.md "$src"/docs/*.md > all.txt
head -c 30000 all.txt > text.txt
"$make_tiny" fp none > make.log 2>&1 || { cat make.log; exit 1; }
"$make_tiny" q4 q4_0 >> make.log 2>&1 || { cat make.log; exit 1; }
"$make_tiny" other none all.txt >> make.log 2>&1 || { cat make.log; exit 1; }
ev() { "$qat" eval --file text.txt --ctx 64 --json "$@"; }
field() { "$py" -c 'import json,sys; print(repr(json.load(open(sys.argv[1]))[sys.argv[2]]))' "$1" "$2"; }
status=0
expect() {  # file key value
  local got; got="$(field "$1" "$2")"
  if [ "$got" = "$3" ]; then echo "$1 $2 = $got"; else echo "FAIL: $1 $2 = $got, want $3"; status=1; fi
}

# (a)
ev --model fp > fp.json
ev --model fp --kl-base fp > self.json
expect self.json kl_mean 0.0; expect self.json kl_p99 0.0; expect self.json top1 1.0; expect self.json delta_ppl 0.0
expect self.json ppl "$(field fp.json ppl)"

# (b)
ev --model q4 > q4.json
ev --model q4 --kl-base fp > q4_kl.json
expect q4_kl.json ppl "$(field q4.json ppl)"
expect q4_kl.json ppl_base "$(field fp.json ppl)"
"$py" - q4_kl.json <<'PY' || status=1
import json, sys
j = json.load(open(sys.argv[1]))
ok = j["kl_mean"] > 0 and j["kl_p99"] >= j["kl_mean"] and 0 < j["top1"] < 1 and \
     abs(j["delta_ppl"] - (j["ppl"] - j["ppl_base"])) <= 1e-9 * j["ppl"]
print("q4 vs fp:", j["kl_mean"], j["kl_p99"], j["top1"], j["delta_ppl"], "ok" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY

# (c)
"$qat" export --model fp --format gguf --outtype f32 --out fp.gguf 2> export.log
"$qat" export --model q4 --format gguf --out q4.gguf 2>> export.log
"$qat_run" perplexity --model q4.gguf --file text.txt --ctx 64 --threads 2 --kl-base fp.gguf --json > run.json
"$py" - q4_kl.json run.json <<'PY' || status=1
import json, sys
t, r = (json.load(open(p)) for p in sys.argv[1:])
rel = abs(r["kl_mean"] - t["kl_mean"]) / t["kl_mean"]
ok = rel < 0.05 and abs(r["top1"] - t["top1"]) < 0.02
print(f"KL: qat eval {t['kl_mean']:.6f}, qat-run {r['kl_mean']:.6f} ({100 * rel:.2f}% apart); "
      f"top-1 {t['top1']:.4f} / {r['top1']:.4f}", "ok" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY

# (d)
if ev --model q4 --kl-base other > /dev/null 2> err.txt; then
  echo "FAIL: a base with another tokenizer was accepted"; status=1
elif ! grep -q "tokenizes text.txt differently" err.txt; then echo "FAIL: $(cat err.txt)"; status=1
else echo "other tokenizer: $(tail -1 err.txt)"; fi
exit $status
