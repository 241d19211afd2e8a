#!/bin/sh
# After the quickstart_fast test: `qat compare` on its folder resumes every
# step with the same flags, and stops at the first step whose flags changed.
#   compare_resume_test.sh SOURCE_DIR BUILD_DIR
set -u
src=$1 build=$2 out=$2/quickstart-fast
fail() { echo "compare_resume_test: $*" >&2; exit 1; }
[ -f "$out/results.json" ] || fail "no $out/results.json (quickstart_fast must run first)"

# The same flags: every step is resumed, nothing is trained again.
QATK_SKIP_SETUP=1 QATK_BUILD_DIR="$build" "$src/scripts/quickstart.sh" --fast --out "$out" \
  > "$out/resume.log" 2>&1 || fail "the resumed quickstart failed: $(tail -5 "$out/resume.log")"
grep -q "base .*done (resumed)" "$out/resume.log" || fail "the base step was not resumed"
grep -q "qat-mobile .*done (resumed)" "$out/resume.log" || fail "QAT mobile was not resumed"
if grep -q "^\[compare\] qat-q4_0 .* train " "$out/resume.log"; then fail "QAT q4_0 ran again"; fi
# The fast quickstart runs 2 QAT seeds: the second is a step of its own and
# is reported inside its variant.
grep -q "qat-q4_0-seed2 .*done (resumed)" "$out/resume.log" || fail "QAT q4_0 seed 2 was not resumed"
# q4_0 QAT ran in two phases (--freeze-codes-steps, a fifth of --steps 10 by
# default): 8 STE steps, then 2 with frozen codes from them; mobile in one.
grep -q "qat-q4_0-ste .*done (resumed)" "$out/resume.log" || fail "the STE phase of QAT q4_0 was not resumed"
args=$out/.done
grep -q -- "--steps 8 " "$args/qat-q4_0-ste.args" || fail "the STE phase is not 8 steps: $(cat "$args/qat-q4_0-ste.args")"
grep -q -- "--init $out/qat-q4_0-ste .*--freeze-codes" "$args/qat-q4_0.args" && grep -q -- "--steps 2 " "$args/qat-q4_0.args" ||
  fail "qat-q4_0 is not 2 frozen-code steps from qat-q4_0-ste: $(cat "$args/qat-q4_0.args")"
grep -q -- "--freeze-codes" "$args/qat-mobile.args" && fail "the mobile recipe froze codes"
/usr/bin/python3 - "$out/results.json" <<'PY' || fail "results.json lacks the frozen-code run's curve"
import json, sys
runs = {r["name"]: r for r in json.load(open(sys.argv[1]))["runs"]}
assert runs["qat-q4_0 (codes frozen)"]["step_offset"] == 8, runs
assert runs["qat-q4_0"]["metrics"].endswith("qat-q4_0-ste/metrics.jsonl"), runs
PY
grep -q '"recovered_seeds"' "$out/results.json" && grep -q 'qat-mobile-seed2.qmob' "$out/results.json" ||
  fail "results.json lacks the second QAT seed"
grep -q "recovered over seeds" "$out/results.md" || fail "results.md lacks the seed column"

# A changed flag (--pretrain-steps): exit 1, naming the step and both argument lists.
"$build/qat/qat" compare --config "$src/configs/models/tiny.json" --data "$src/data/brown" --out "$out" \
  --recipes "$src/configs/recipes/q4_0.json,$src/configs/recipes/mobile.json" \
  --qat-run "$build/inference/qat-run" --pretrain-steps 31 --steps 10 --batch 4 --seq 128 \
  --bootstrap 200 --eval-file "$out/smoke-test.txt" > "$out/changed.log" 2>&1
rc=$?
[ "$rc" -eq 1 ] || fail "a changed flag exited $rc, not 1: $(tail -5 "$out/changed.log")"
grep -q "step 'base' in $out was run with" "$out/changed.log" || fail "no message naming the step: $(tail -5 "$out/changed.log")"
grep -q -- "--steps 30 " "$out/changed.log" && grep -q -- "--steps 31 " "$out/changed.log" ||
  fail "the message does not show both argument lists: $(tail -5 "$out/changed.log")"

# --awq scales the GPTQ start: with another start it is an error, not ignored.
"$build/qat/qat" compare --config "$src/configs/models/tiny.json" --data "$src/data/brown" --out "$out-awq" \
  --recipes "$src/configs/recipes/q4_0.json" --qat-init fp --awq > "$out/awq.log" 2>&1 &&
  fail "--awq with --qat-init fp was accepted"
grep -q -- "--awq needs --qat-init gptq" "$out/awq.log" || fail "no --awq message: $(tail -3 "$out/awq.log")"
[ ! -e "$out-awq" ] || fail "a rejected compare created $out-awq"
# The GPTQ start calibrates on train or valid, nothing else.
"$build/qat/qat" compare --config "$src/configs/models/tiny.json" --data "$src/data/brown" --out "$out-calib" \
  --recipes "$src/configs/recipes/q4_0.json" --gptq-calib test > "$out/calib.log" 2>&1 &&
  fail "--gptq-calib test was accepted"
grep -q -- "--gptq-calib must be train or valid" "$out/calib.log" || fail "no --gptq-calib message: $(tail -3 "$out/calib.log")"
[ ! -e "$out-calib" ] || fail "a rejected compare created $out-calib"
# The frozen-code steps must leave some QAT steps to the STE.
"$build/qat/qat" compare --config "$src/configs/models/tiny.json" --data "$src/data/brown" --out "$out-freeze" \
  --recipes "$src/configs/recipes/q4_0.json" --steps 10 --freeze-codes-steps 10 > "$out/freeze.log" 2>&1 &&
  fail "--freeze-codes-steps 10 with --steps 10 was accepted"
grep -q -- "--freeze-codes-steps must be in 0..9" "$out/freeze.log" || fail "no --freeze-codes-steps message: $(tail -3 "$out/freeze.log")"
[ ! -e "$out-freeze" ] || fail "a rejected compare created $out-freeze"
echo "compare_resume_test: ok"
