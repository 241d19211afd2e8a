#!/bin/sh
# Faults lose nothing, on the quickstart_fast test's folder:
#   1. a second writer of the same --out fails at once, naming the holder's pid;
#   2. Ctrl-C (SIGINT) saves and exits 130, not 0;
#   3. a save or export that fails on a full disk (file size limit) leaves the
#      folder exactly as it was: no temporary files or folders.
#   faults_test.sh SOURCE_DIR BUILD_DIR
set -u
src=$1 build=$2 qs=$2/quickstart-fast
qat=$build/qat/qat data=$src/data/brown work=$2/faults-test
fail() { echo "faults_test: $*" >&2; exit 1; }
[ -d "$qs/fp" ] || fail "no $qs/fp (quickstart_fast must run first)"
rm -rf "$work" && mkdir -p "$work" || fail "cannot make $work"

# 1 and 2. A long run holds runs/x; a second writer is refused; SIGINT saves.
"$qat" train --init "$qs/fp" --data "$data" --out "$work/run" --steps 100000 --batch 2 --seq 32 \
  --save-every 1 --eval-every 0 --no-progress > "$work/first.log" 2>&1 &
pid=$!
i=0
while [ ! -f "$work/run/trainer_state.json" ]; do
  i=$((i + 1)); [ "$i" -le 600 ] || { kill "$pid"; fail "the first run saved nothing in 60 s: $(tail -3 "$work/first.log")"; }
  kill -0 "$pid" 2>/dev/null || fail "the first run died: $(tail -3 "$work/first.log")"
  sleep 0.1
done
"$qat" train --init "$qs/fp" --data "$data" --out "$work/run/" --steps 2 > "$work/second.log" 2>&1
rc=$?
[ "$rc" -eq 1 ] || { kill "$pid"; fail "the second writer exited $rc, not 1: $(tail -3 "$work/second.log")"; }
grep -q "'$work/run/' is being written by another process (pid $pid)" "$work/second.log" ||
  { kill "$pid"; fail "the refusal does not name the target and pid $pid: $(tail -3 "$work/second.log")"; }
kill -INT "$pid"
wait "$pid"
rc=$?
[ "$rc" -eq 130 ] || fail "an interrupted run exited $rc, not 130: $(tail -3 "$work/first.log")"
grep -q "interrupted: saved $work/run at step" "$work/first.log" || fail "no save on SIGINT: $(tail -3 "$work/first.log")"
grep -q "continue with --resume" "$work/first.log" || fail "no resume hint: $(tail -3 "$work/first.log")"
[ ! -e "$work/run.lock" ] || fail "the lock file outlived its run"
ls "$work" | grep -q "tmp" && fail "debris after the interrupted run: $(ls "$work")"

# 3. A full disk: every writer fails with exit 1 and leaves the folder as it was.
mkdir -p "$work/full" && echo keep > "$work/full/keep.txt"
before=$(ls -A "$work/full")
limited() {  # 64 KiB per file; SIGXFSZ ignored, so writes fail with EFBIG as on a full disk
  (trap '' XFSZ; ulimit -f 128; "$@") > "$work/limited.log" 2>&1
}
check_clean() {
  after=$(ls -A "$work/full")
  [ "$after" = "$before" ] || fail "$1 left debris: $(ls -A "$work/full" | tr '\n' ' ')"
}
limited "$qat" train --init "$qs/fp" --data "$data" --out "$work/full/ck" --steps 1 --batch 2 --seq 32 --no-progress
rc=$?
[ "$rc" -eq 1 ] || fail "a checkpoint save on a full disk exited $rc, not 1: $(tail -3 "$work/limited.log")"
grep -q "File too large" "$work/limited.log" || fail "the save error does not say why: $(tail -3 "$work/limited.log")"
check_clean "a failed checkpoint save"
for fmt in "gguf $work/full/x.gguf" "mobile $work/full/x.qmob" "safetensors $work/full/st" "hf $work/full/hf"; do
  set -- $fmt
  model=$qs/qat-q4_0; [ "$1" = mobile ] && model=$qs/qat-mobile
  limited "$qat" export --model "$model" --format "$1" --out "$2"
  rc=$?
  [ "$rc" -eq 1 ] || fail "a $1 export on a full disk exited $rc, not 1: $(tail -3 "$work/limited.log")"
  check_clean "a failed $1 export"
done
limited "$qat" quantize --model "$qs/fp" --recipe "$src/configs/recipes/q4_0.json" --out "$work/full/ptq"
rc=$?
[ "$rc" -eq 1 ] || fail "a quantize on a full disk exited $rc, not 1: $(tail -3 "$work/limited.log")"
check_clean "a failed quantize"
echo "faults_test: ok"
