#!/bin/sh
# qat data --jsonl end to end: a prepared dataset from the chat test data,
# training on it with --pack doc, the tokenizer check, and bad inputs (each
# an error naming the file and line, non-zero exit, no output folder left).
# Usage: data_jsonl_test.sh SOURCE_DIR QAT_BINARY
set -u
SRC=$1
QAT=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
CHAT="$SRC/tests/testdata/chat"

i=0
while [ $i -lt 300 ]; do
  echo "Line $((i % 17)) of the tiny corpus says $((i * 7 % 13)), and the assistant answers politely."
  i=$((i + 1))
done > "$T/t.txt"
mkdir -p "$T/m" "$T/m2" "$T/other"
"$QAT" tokenizer --data "$T/t.txt" --vocab 300 --out "$T/m/tokenizer.model" >/dev/null 2>&1 || fail "tokenizer"
"$QAT" tokenizer --data "$T/t.txt" --vocab 310 --out "$T/other/tokenizer.model" >/dev/null 2>&1 ||
  fail "second tokenizer"
cat > "$T/m/chat_template.jinja" <<'TPL'
{% for m in messages %}<|{{ m['role'] }}|>
{{ m['content'] | trim }}<|end|>
{% endfor %}{% if add_generation_prompt %}<|assistant|>
{% endif %}
TPL
cp "$T/m/tokenizer.model" "$T/m2/"
echo "{{ raise_exception('Conversation roles must alternate') }}" > "$T/m2/chat_template.jinja"
cat > "$T/tiny.json" <<'CFG'
{"model_type": "llama", "vocab_size": 320, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
 "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64, "tie_word_embeddings": false}
CFG

# A good dataset, and training on it.
"$QAT" data --jsonl "$CHAT/single_turn.jsonl" --jsonl "$CHAT/multi_turn.jsonl" --jsonl "$CHAT/prompt_completion.jsonl" \
  --model "$T/m" --out "$T/ds" --valid-fraction 0.1 2>"$T/err" || { cat "$T/err"; fail "qat data --jsonl"; }
for f in dataset.json train.qtd valid.qtd; do [ -s "$T/ds/$f" ] || fail "missing $f"; done
grep -q '"documents": 36' "$T/ds/dataset.json" || { cat "$T/ds/dataset.json"; fail "train documents"; }
"$QAT" train --data "$T/ds" --config "$T/tiny.json" --tokenizer "$T/m/tokenizer.model" --out "$T/ckpt" \
  --steps 3 --batch 2 --seq 32 --pack doc --eval-chunks 4 --threads 1 --no-progress 2>"$T/err" ||
  { cat "$T/err"; fail "qat train on the prepared dataset"; }
grep -q '"valid_loss"' "$T/ckpt/metrics.jsonl" || fail "no valid_loss in metrics.jsonl"
[ "$(grep -c '"loss"' "$T/ckpt/metrics.jsonl")" = 3 ] || fail "expected 3 steps"
# Plain text: each file one document.
"$QAT" data --text "$T/t.txt" --text "$T/m/chat_template.jinja" --model "$T/m" --out "$T/ds-text" \
  --valid-fraction 0 2>"$T/err" || { cat "$T/err"; fail "qat data --text"; }
grep -q '"documents": 2' "$T/ds-text/dataset.json" || { cat "$T/ds-text/dataset.json"; fail "text documents"; }
# The tokenizer must be the one that made the data.
if "$QAT" train --data "$T/ds" --config "$T/tiny.json" --tokenizer "$T/other/tokenizer.model" --out "$T/ckpt2" \
    --steps 1 --batch 2 --seq 32 --threads 1 --no-progress 2>"$T/err"; then fail "tokenizer mismatch accepted"; fi
grep -q "was made with the tokenizer $T/m/tokenizer.model" "$T/err" && grep -q "$T/other/tokenizer.model" "$T/err" ||
  { cat "$T/err"; fail "mismatch error does not name both tokenizers"; }

# Bad inputs: FILE:LINE in the error, non-zero exit, nothing written.
bad() {  # bad NAME CONTENT EXPECTED [extra flags]
  name=$1 content=$2 want=$3
  shift 3
  printf '%s\n' '{"text": "fine"}' "$content" > "$T/$name.jsonl"
  if "$QAT" data --jsonl "$T/$name.jsonl" --model "$T/m" --out "$T/out-$name" "$@" 2>"$T/err"; then
    fail "$name: accepted"
  fi
  grep -q "$T/$name.jsonl:2: .*$want" "$T/err" || { cat "$T/err"; fail "$name: error does not name file:line ($want)"; }
  [ -e "$T/out-$name" ] && fail "$name: left an output folder"
  ls "$T" | grep -q "out-$name.tmp" && fail "$name: left a staging folder"
  return 0
}
bad malformed '{"text": "unterminated' "not valid JSON"
bad missing '{"prompt": "no answer"}' 'has "prompt" but no "completion"'
bad role '{"messages": [{"role": "narrator", "content": "x"}, {"role": "assistant", "content": "y"}]}' "unknown role 'narrator'"
bad long '{"messages": [{"role": "user", "content": "Line 1 of the tiny corpus says 3, and the assistant answers politely."}, {"role": "assistant", "content": "Line 2 of the tiny corpus says 5, and the assistant answers politely."}]}' \
  "more than the context of 20" --seq 20
printf '%s\n' '{"text": "fine"}' '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}' > "$T/tpl.jsonl"
if "$QAT" data --jsonl "$T/tpl.jsonl" --model "$T/m2" --out "$T/out-tpl" 2>"$T/err"; then fail "template: accepted"; fi
grep -q "$T/tpl.jsonl:2: .*Conversation roles must alternate" "$T/err" || { cat "$T/err"; fail "template error"; }
[ -e "$T/out-tpl" ] && fail "template: left an output folder"
echo "OK"
