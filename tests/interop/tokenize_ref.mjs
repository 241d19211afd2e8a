// Reference tokenization with Hugging Face tokenizers (npm `tokenizers`, the
// Rust library's Node binding), same interface and output as qatk_hf_tokenize:
//   node tokenize_ref.mjs TOKENIZER_JSON TEXT_FILE [--add-special] [--decode]
//                         [--skip-special] [--bench | --bench-lines | --all]
// --bench-lines encodes each line as its own text (encodeBatch; one thread
// when TOKENIZERS_PARALLELISM=false). --all prints everything the C++ check
// compares: {"ids", "ids_special", "decoded": decode(ids, false),
// "decoded_skip": decode(ids_special, true)}.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { Tokenizer } = require("tokenizers");

const args = process.argv.slice(2);
const flags = new Set(args.filter((a) => a.startsWith("--")));
const pos = args.filter((a) => !a.startsWith("--"));
if (pos.length !== 2) {
  console.error("usage: node tokenize_ref.mjs TOKENIZER_JSON TEXT_FILE [--add-special] [--decode] [--skip-special] [--bench | --bench-lines | --all]");
  process.exit(2);
}
const tok = Tokenizer.fromFile(pos[0]);
const bytes = readFileSync(pos[1]);
const text = bytes.toString("utf8");
const addSpecial = flags.has("--add-special");
let out;
if (flags.has("--all")) {
  const ids = (await tok.encode(text, null, { addSpecialTokens: false })).getIds();
  const idsSpecial = (await tok.encode(text, null, { addSpecialTokens: true })).getIds();
  out = {
    ids,
    ids_special: idsSpecial,
    decoded: await tok.decode(ids, false),
    decoded_skip: await tok.decode(idsSpecial, true),
  };
} else if (flags.has("--bench") || flags.has("--bench-lines")) {
  const t0 = process.hrtime.bigint();
  let ids;
  if (flags.has("--bench-lines")) {
    const encs = await tok.encodeBatch(text.split("\n"), { addSpecialTokens: addSpecial });
    ids = encs.flatMap((e) => e.getIds());
  } else {
    ids = (await tok.encode(text, null, { addSpecialTokens: addSpecial })).getIds();
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  out = { bytes: bytes.length, seconds: secs, mb_per_s: bytes.length / 1e6 / secs, tokens: ids.length };
} else {
  const ids = (await tok.encode(text, null, { addSpecialTokens: addSpecial })).getIds();
  out = { ids };
  if (flags.has("--decode")) out.decoded = await tok.decode(ids, flags.has("--skip-special"));
}
// Written once and left to flush: process.exit could cut a piped write short.
process.stdout.write(JSON.stringify(out) + "\n");
