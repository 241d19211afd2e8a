// llama.cpp side of scripts/bench_vs_llamacpp.sh: prefill and decode speed of
// a GGUF file in llama.cpp (node-llama-cpp's prebuilt CPU build).
//
//   node bench.mjs --model F.gguf --threads N --prompt-tokens 512 --gen-tokens 64 --reps 3
// Prints one JSON object on stdout:
//   {"prefill_tps": median, "decode_tps": median, "prefill_runs": [...], "decode_runs": [...]}
// Prefill: one batch of P tokens into an empty KV cache. Decode: greedy
// generation after a 32-token prompt; tokens/s over the generated tokens
// after the first one (the first includes the prompt's prefill).
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

function args() {
  const a = {model: null, threads: 1, promptTokens: 512, genTokens: 64, reps: 3, ctx: 1024};
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i++) {
    const k = v[i], x = v[i + 1];
    if (k === "--model") a.model = x, i++;
    else if (k === "--threads") a.threads = +x, i++;
    else if (k === "--prompt-tokens") a.promptTokens = +x, i++;
    else if (k === "--gen-tokens") a.genTokens = +x, i++;
    else if (k === "--reps") a.reps = +x, i++;
    else if (k === "--ctx") a.ctx = +x, i++;
    else throw new Error(`bench.mjs: unknown flag ${k}`);
  }
  if (!a.model) throw new Error("bench.mjs: --model is required");
  return a;
}

const median = (xs) => [...xs].sort((p, q) => p - q)[Math.floor((xs.length - 1) / 2)];

async function main() {
  const a = args();
  const llama = await getLlama({gpu: false, logLevel: LlamaLogLevel.error, build: "never"});
  const model = await llama.loadModel({modelPath: a.model});
  const ctxSize = Math.max(a.ctx, a.promptTokens + a.genTokens + 64);
  const context = await model.createContext({
    contextSize: ctxSize, batchSize: Math.max(512, a.promptTokens), threads: {ideal: a.threads, min: a.threads},
  });
  // Ids 3..258 (after the usual unk/bos/eos): valid in any vocabulary of the
  // sizes we bench; the content does not matter for speed.
  const tokens = (n, seed) => Array.from({length: n}, (_, i) => 3 + (Math.imul(i + 1, 2654435761) + seed >>> 0) % 256);
  const prefill = [], decode = [];
  for (let r = 0; r < a.reps; r++) {
    const seq = context.getSequence();
    const t0 = process.hrtime.bigint();
    await seq.evaluateWithoutGeneratingNewTokens(tokens(a.promptTokens, r));
    const t1 = process.hrtime.bigint();
    prefill.push(a.promptTokens / (Number(t1 - t0) / 1e9));
    await seq.clearHistory();
    let n = 0, tFirst = 0n;
    // yieldEogToken: a random-weight model may pick EOS; keep decoding anyway.
    for await (const _ of seq.evaluate(tokens(32, r + 7), {temperature: 0, yieldEogToken: true})) {
      n++;
      if (n === 1) tFirst = process.hrtime.bigint();
      if (n >= a.genTokens) break;
    }
    const tEnd = process.hrtime.bigint();
    if (n < a.genTokens) throw new Error(`decode stopped after ${n} of ${a.genTokens} tokens`);
    decode.push((n - 1) / (Number(tEnd - tFirst) / 1e9));
    seq.dispose();
  }
  console.log(JSON.stringify({prefill_tps: median(prefill), decode_tps: median(decode),
                              prefill_runs: prefill, decode_runs: decode, threads: a.threads}));
  await context.dispose();
  await model.dispose();
  await llama.dispose();
}

main().catch((e) => { console.error(`bench.mjs: ${e.message}`); process.exit(1); });
