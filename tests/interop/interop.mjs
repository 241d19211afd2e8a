// Interop check of a qatkit GGUF against stock llama.cpp (node-llama-cpp's
// prebuilt CPU binaries).
//
//   node interop.mjs --model FILE.gguf --expect EXPECT.json
//
// EXPECT.json (every section optional; produced by qatkit):
//   {"tokenize":   {"text_file": F, "ids": [...]},          ids without BOS
//    "greedy":     {"prompt": "...", "n": 32, "tokens": [...ids], "near_tie": 0.1}:
//                   qatkit's greedy ids after BOS + prompt (see checkGreedy)
//    "perplexity": {"text_file": F, "ctx": 128, "ppl": X|null, "tolerance": 0.01}}
// Prints one JSON object on stdout ({"tokenize": {...}, "greedy": {...},
// "perplexity": {...}, "pass": bool}); llama.cpp's logs go to stderr.
// Exit code: 0 all present checks pass, 1 a check failed, 2 usage/load error.
import {readFileSync} from "node:fs";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith("--") || i + 1 >= argv.length) throw new Error(`bad argument ${argv[i]}`);
    args[argv[i].slice(2)] = argv[i + 1];
  }
  if (!args.model || !args.expect) throw new Error("usage: interop.mjs --model FILE.gguf --expect EXPECT.json");
  return args;
}

// Full-vocabulary softmax of the next-token logits (no top-k/top-p cut).
const kRawProbs = {temperature: 1, topK: 0, topP: 1, minP: 0, seed: 0};

function firstDiff(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

function checkTokenize(model, spec) {
  const text = readFileSync(spec.text_file, "utf8");
  const ids = Array.from(model.tokenize(text, false));
  const diff = firstDiff(ids, spec.ids);
  return {pass: diff === -1, n_llamacpp: ids.length, n_expected: spec.ids.length, first_diff: diff};
}

async function nextProbs(seq, tokens) {
  const input = tokens.map((t, i) => i === tokens.length - 1
    ? [t, {generateNext: {probabilities: true, options: kRawProbs}}] : t);
  const out = await seq.controlledEvaluate(input);
  return out[tokens.length - 1].next.probabilities;  // Map sorted by probability
}

// Greedy generation, two ways, against qatkit's ids (spec.tokens; ended by
// EOS when shorter than spec.n):
//  - teacher_forced (the check): llama.cpp scores BOS + prompt + qatkit's
//    tokens in one pass; at every step llama.cpp's argmax must be qatkit's
//    token, or a near-tie: p(qatkit's token) >= (1 - tie) * p(argmax).
//    A wrong kernel puts qatkit's tokens far down llama.cpp's ranking.
//  - free_running (reported): llama.cpp's own argmax chain; on random-weight
//    models a single near-tie flip makes the rest of the chains differ.
async function checkGreedy(model, seq, spec) {
  if (!Array.isArray(spec.tokens)) return {pass: null};  // no qat-run to compare with
  const tie = spec.near_tie ?? 0.1;
  const want = spec.tokens;
  const n = spec.n ?? want.length;
  const eos = model.tokens.eos;
  const prompt = [model.tokens.bos, ...model.tokenize(spec.prompt, false)];
  const steps = want.length < n ? [...want, eos] : want;  // EOS ended qatkit's run
  const seqIn = [...prompt, ...steps.slice(0, -1)];
  await seq.clearHistory();
  const out = await seq.controlledEvaluate(seqIn.map((t, i) => i >= prompt.length - 1
    ? [t, {generateNext: {probabilities: true, options: kRawProbs}}] : t));
  let exact = 0, nearTies = 0, mismatches = 0, firstMismatch = -1, worst = 1;
  for (let i = 0; i < steps.length; i++) {
    const probs = out[prompt.length - 1 + i].next.probabilities;
    const [top, pTop] = probs.entries().next().value;
    const p = probs.get(steps[i]) ?? 0;
    worst = Math.min(worst, p / pTop);
    if (top === steps[i]) exact++;
    else if (p >= (1 - tie) * pTop) nearTies++;
    else { mismatches++; if (firstMismatch < 0) firstMismatch = i; }
  }
  const teacher = {steps: steps.length, exact, near_ties: nearTies, mismatches,
                   first_mismatch: firstMismatch, worst_ratio: worst, near_tie: tie};
  // Free-running chain.
  await seq.clearHistory();
  let pending = prompt;
  const got = [];
  for (let i = 0; i < n; i++) {
    const probs = await nextProbs(seq, pending);
    const [top] = probs.entries().next().value;
    if (top === eos) break;  // qat-run generate stops at EOS too
    got.push(top);
    pending = [top];
  }
  const diff = firstDiff(got, want);
  return {teacher_forced: teacher, free_running: {tokens: got, expected: want, first_diff: diff, equal: diff === -1},
          pass: mismatches === 0};
}

// llama-perplexity's chunking: BOS + text once; chunks of ctx tokens; first
// token of each chunk replaced by BOS; score targets ctx/2+1 .. ctx-1.
async function checkPerplexity(model, seq, spec) {
  const text = readFileSync(spec.text_file, "utf8");
  const bos = model.tokens.bos;
  const tokens = [bos, ...model.tokenize(text, false)];
  const n_ctx = spec.ctx;
  const n_chunk = Math.floor(tokens.length / n_ctx);
  if (n_chunk < 1) throw new Error(`perplexity text has ${tokens.length} tokens < ctx ${n_ctx}`);
  const first = Math.floor(n_ctx / 2);
  let nll = 0, count = 0;
  for (let c = 0; c < n_chunk; c++) {
    await seq.clearHistory();  // fresh KV cache per chunk
    const chunk = tokens.slice(c * n_ctx, (c + 1) * n_ctx);
    const input = chunk.map((t, j) => {
      const tok = j === 0 ? bos : t;
      return j >= first && j <= n_ctx - 2
        ? [tok, {generateNext: {probabilities: true, options: kRawProbs}}] : tok;
    });
    const out = await seq.controlledEvaluate(input);
    for (let j = first; j <= n_ctx - 2; j++) {
      const p = out[j].next.probabilities.get(chunk[j + 1]) ?? 0;
      nll += -Math.log(p);
      count++;
    }
  }
  const ppl = Math.exp(nll / count);
  const res = {ppl, tokens: tokens.length, chunks: n_chunk, ctx: n_ctx, scored: count, expected: spec.ppl ?? null};
  if (spec.ppl == null) return {...res, pass: null};
  const rel = Math.abs(ppl - spec.ppl) / spec.ppl;
  return {...res, rel_diff: rel, pass: rel <= (spec.tolerance ?? 0.01)};
}

async function main() {
  let args, expect;
  try {
    args = parseArgs(process.argv.slice(2));
    expect = JSON.parse(readFileSync(args.expect, "utf8"));
  } catch (e) {
    process.stderr.write(`${e.message}\n`);
    return 2;
  }
  const llama = await getLlama({
    gpu: false, build: "never", progressLogs: false, logLevel: LlamaLogLevel.warn,
    logger: (level, message) => process.stderr.write(`[llama.cpp ${level}] ${message}\n`),
  });
  const model = await llama.loadModel({modelPath: args.model});
  const result = {};
  if (expect.tokenize) result.tokenize = checkTokenize(model, expect.tokenize);
  const ctxSize = Math.max(expect.perplexity?.ctx ?? 0, 256);
  const ctx = await model.createContext({contextSize: ctxSize, batchSize: ctxSize, threads: 1, sequences: 1});
  const seq = ctx.getSequence();
  if (expect.greedy) result.greedy = await checkGreedy(model, seq, expect.greedy);
  if (expect.perplexity) result.perplexity = await checkPerplexity(model, seq, expect.perplexity);
  await ctx.dispose();
  await model.dispose();
  await llama.dispose();
  result.pass = Object.values(result).every((r) => r.pass !== false);
  process.stdout.write(JSON.stringify(result) + "\n");
  return result.pass ? 0 : 1;
}

process.exitCode = await main();
