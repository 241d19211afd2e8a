#!/usr/bin/env bash
# qat-run generate --chat on an exported GGUF to which gguf_add_kv added a
# tokenizer.chat_template (the export writes none):
#   (a) the rendered prompt (JSON "prompt_text") is the template's text for
#       [system, user] + add_generation_prompt, with the vocabulary's BOS and
#       EOS pieces as bos_token / eos_token; without --system, [user];
#   (b) its ids: one BOS, the "</s>" texts as EOS ids, the text between
#       them tokenized as plain text;
#   (c) --print-prompt prints it before the reply;
#   (d) a GGUF without a template, and --system without --chat: errors.
#   generate_chat_test.sh MAKE_TINY_CHECKPOINT QAT QAT_RUN GGUF_ADD_KV
set -euo pipefail
make_tiny="$1"; qat="$2"; qat_run="$3"; add_kv="$4"
py=/usr/bin/python3
work="$(mktemp -d /tmp/qatk_generate_chat_XXXXXX)"
trap 'rm -rf "$work"' EXIT
cd "$work"

"$make_tiny" ckpt none > make.log 2>&1 || { cat make.log; exit 1; }
"$qat" export --model ckpt --format gguf --out plain.gguf 2> export.log
printf '%s' "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}" > tmpl.jinja
"$add_kv" plain.gguf chat.gguf tokenizer.chat_template tmpl.jinja
gen() { "$qat_run" generate --threads 1 --temp 0 "$@"; }
status=0

gen --model chat.gguf --chat --system "Be brief." --prompt "Hi there" -n 4 --json > sys.json
gen --model chat.gguf --chat --prompt "Hi there" -n 4 --json > user.json
# Plain tokenizations of the text between the special tokens (BOS dropped).
for part in "[system] Be brief." "[user] Hi there" "[assistant]"; do
  gen --model plain.gguf --prompt "$part" -n 0 --json
done > parts.json
"$py" - sys.json user.json parts.json <<'PY' || status=1
import json, sys
sys_j, user_j = (json.load(open(p)) for p in sys.argv[1:3])
parts = [json.loads(l)["prompt_ids"][1:] for l in open(sys.argv[3])]
bad = 0
def check(what, got, want):
    global bad
    ok = got == want
    bad += not ok
    print(f"{what}: {'ok' if ok else f'FAIL: {got!r}, want {want!r}'}")
check("prompt_text with --system", sys_j["prompt_text"], "<s>[system] Be brief.</s>[user] Hi there</s>[assistant]")
check("prompt_text without", user_j["prompt_text"], "<s>[user] Hi there</s>[assistant]")
check("prompt_ids with --system", sys_j["prompt_ids"], [1] + parts[0] + [2] + parts[1] + [2] + parts[2])
check("prompt_ids without", user_j["prompt_ids"], [1] + parts[1] + [2] + parts[2])
sys.exit(1 if bad else 0)
PY
out="$(gen --model chat.gguf --chat --prompt "Hi there" --print-prompt -n 2 2> /dev/null)"
case "$out" in
  "<s>[user] Hi there</s>[assistant]"*) echo "--print-prompt: ok" ;;
  *) echo "FAIL: --print-prompt printed: $out"; status=1 ;;
esac
rc=0; gen --model plain.gguf --chat --prompt "Hi" -n 2 > /dev/null 2> err.txt || rc=$?
if [ $rc -ne 2 ] || ! grep -q "plain.gguf has no tokenizer.chat_template" err.txt; then
  echo "FAIL: no template: exit $rc, $(cat err.txt)"; status=1
else echo "no template: $(cat err.txt)"; fi
rc=0; gen --model chat.gguf --system "x" --prompt "Hi" -n 2 > /dev/null 2> err.txt || rc=$?
[ $rc -eq 2 ] && echo "--system without --chat: $(cat err.txt)" || { echo "FAIL: --system without --chat: exit $rc"; status=1; }
exit $status
