// llama.cpp's tokenization of a GGUF vocabulary (node-llama-cpp, vocab-only
// load): node tokenize_gguf.mjs FILE.gguf TEXT_FILE [--plain]
// Prints {"ids": [...], "chat_template": string|null}: the ids of
// model.tokenize(text, specialTokens) (no BOS; special-token text is matched
// unless --plain) and the file's tokenizer.chat_template.
import {readFileSync} from "node:fs";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const args = process.argv.slice(2);
const pos = args.filter((a) => !a.startsWith("--"));
if (pos.length !== 2) {
  console.error("usage: node tokenize_gguf.mjs FILE.gguf TEXT_FILE [--plain]");
  process.exit(2);
}
const llama = await getLlama({gpu: false, logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath: pos[0], vocabOnly: true});
const text = readFileSync(pos[1], "utf8");
const ids = Array.from(model.tokenize(text, !args.includes("--plain")));
const tmpl = model.fileInfo.metadata?.tokenizer?.chat_template ?? null;
process.stdout.write(JSON.stringify({ids, chat_template: tmpl}) + "\n");
await model.dispose();
await llama.dispose();
