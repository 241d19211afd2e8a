// Reference rendering of chat templates with @huggingface/jinja, applied the
// way transformers.js apply_chat_template does (Template(source).render with
// messages, add_generation_prompt, tools/documents = null, the config's
// special tokens, then the caller's extra variables).
//   node chat_ref.mjs (--config tokenizer_config.json |
//                      --template chat_template.jinja [--tokens tokenizer_config.json])
//                     conversations.jsonl
//   node chat_ref.mjs --snippets snippets.jsonl   ({"name", "template", "context"})
// Prints one line per conversation: the rendered text as a JSON string (lone
// surrogates as U+FFFD, as when the text is written out as UTF-8), or null
// when the template fails (the error goes to stderr).
import { readFileSync } from "node:fs";
import { Template } from "@huggingface/jinja";

const args = process.argv.slice(2);
let config = null, templateFile = null, tokens = null, input = null, snippets = null;
for (let i = 0; i < args.length; ++i) {
  if (args[i] === "--snippets") snippets = args[++i];
  else if (args[i] === "--config") config = args[++i];
  else if (args[i] === "--template") templateFile = args[++i];
  else if (args[i] === "--tokens") tokens = args[++i];
  else input = args[i];
}
const readJson = (p) => JSON.parse(readFileSync(p, "utf8"));

if (snippets) {
  for (const line of readFileSync(snippets, "utf8").split("\n")) {
    if (!line) continue;
    const snippet = JSON.parse(line);
    try {
      console.log(JSON.stringify(new Template(snippet.template).render(snippet.context ?? {}).toWellFormed()));
    } catch (e) {
      console.error(`${snippet.name}: ${e.message}`);
      console.log("null");
    }
  }
  process.exit(0);
}

let source;
let tokenConfig = {};
if (config) {
  tokenConfig = readJson(config);
  let ct = tokenConfig.chat_template;
  if (Array.isArray(ct)) {
    const named = Object.create(null);
    for (const { name, template } of ct) named[name] = template;
    ct = named["default"];
  }
  source = ct;
} else {
  source = readFileSync(templateFile, "utf8");
  if (tokens) tokenConfig = readJson(tokens);
}

// transformers.js SPECIAL_TOKEN_ATTRIBUTES and getToken().
const specials = {};
for (const key of ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]) {
  const item = tokenConfig[key];
  if (!item) continue;
  const value = typeof item === "object" ? item.content : item;
  if (value) specials[key] = value;
}

const template = new Template(source);
for (const line of readFileSync(input, "utf8").split("\n")) {
  if (!line) continue;
  const conv = JSON.parse(line);
  try {
    const text = template.render({
      messages: conv.messages,
      add_generation_prompt: conv.add_generation_prompt ?? false,
      tools: null,
      documents: null,
      ...specials,
      ...(conv.extra ?? {}),
    });
    console.log(JSON.stringify(text.toWellFormed()));
  } catch (e) {
    console.error(`${conv.name ?? "?"}: ${e.message}`);
    console.log("null");
  }
}
