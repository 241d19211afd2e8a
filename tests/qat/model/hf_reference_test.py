#!/usr/bin/python3
"""Hugging Face folders through the LibTorch model.

  hf_reference_test.py logits SOURCE_DIR HF_LOGITS WORK_DIR
    For each family (llama with Llama 3 rope_scaling, SmolLM2-style llama,
    qwen2 with q/k/v biases, qwen3 with head_dim != hidden/heads, gemma3 with
    sliding_window_pattern and with layer_types), writes a tiny random
    folder whose config.json is the hub model's (tests/testdata/hf_configs)
    with the sizes shrunk, and compares the LibTorch logits (HF_LOGITS,
    hf_logits_main.cc) with the numpy reference (hf_reference.py) on a few
    token sequences: max |logit difference| <= 1e-4 * max(1, max |logit|).

  hf_reference_test.py train SOURCE_DIR QAT WORK_DIR
    A tiny qwen3 folder with a trained tokenizer.model: `qat eval --json`
    prints {"ppl", "tokens", "ctx"}, and `qat train --init --teacher
    --recipe q4_0` runs 3 steps, saves a qwen3 checkpoint with the hub's
    config keys kept and trained q/k norms, which `qat eval` loads.

Exits 77 (skipped) when this python has no numpy.
"""

import json
import math
import os
import shutil
import struct
import subprocess
import sys

try:
    import numpy as np
except ImportError:
    print("hf_reference_test: numpy is missing; skipped")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import hf_reference  # noqa: E402

TOLERANCE = 1e-4  # of max(1, max |logit|)


def fail(msg):
    print("hf_reference_test: FAIL: " + msg)
    sys.exit(1)


def write_safetensors(path, tensors, dtype="F32"):
    """tensors: name -> float array; F32 or BF16 (rounded to nearest even)."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype=np.float32)
        if dtype == "BF16":
            bits = a.view(np.uint32).astype(np.uint64)
            bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
            raw = bits.astype("<u2").tobytes()
        else:
            raw = a.astype("<f4").tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


# Families: the hub config and what to shrink. Sizes keep the family's
# features: GQA everywhere; head_dim != hidden/heads for qwen3 and gemma3.
FAMILIES = {
    "llama3": ("llama-3.2-1b-instruct.json", dict(
        hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=32, max_position_embeddings=128, bos_token_id=1,
        eos_token_id=[2, 3, 4],
        # With rope_theta 500000 and D = 32, frequency 0 keeps its angle,
        # frequency 1 is smoothed and the rest are divided by the factor.
        rope_scaling={"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                      "original_max_position_embeddings": 32, "rope_type": "llama3"})),
    "smollm2": ("smollm2-135m.json", dict(
        hidden_size=48, intermediate_size=64, num_hidden_layers=2, num_attention_heads=3,
        num_key_value_heads=1, max_position_embeddings=64, bos_token_id=0, eos_token_id=0)),
    "qwen2": ("qwen2.5-0.5b.json", dict(
        hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, sliding_window=64,
        max_window_layers=2, bos_token_id=5, eos_token_id=5)),
    "qwen3": ("qwen3-0.6b.json", dict(
        hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, max_position_embeddings=64, max_window_layers=2,
        bos_token_id=5, eos_token_id=6)),
    "gemma3": ("gemma-3-1b-it.json", dict(
        hidden_size=64, intermediate_size=96, num_hidden_layers=4, num_attention_heads=2,
        num_key_value_heads=1, head_dim=32, max_position_embeddings=64, query_pre_attn_scalar=24,
        sliding_window=5, sliding_window_pattern=2, final_logit_softcapping=8.0,
        eos_token_id=[1, 7], pad_token_id=0)),
    "gemma3-layer-types": ("gemma-3-270m.json", dict(
        hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=2,
        num_key_value_heads=1, head_dim=32, max_position_embeddings=64, query_pre_attn_scalar=32,
        sliding_window=4, _sliding_window_pattern=3, final_logit_softcapping=10.0,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"], pad_token_id=0)),
}


def tensor_shapes(c):
    """HF state-dict names and shapes of a parsed hf_reference.Config."""
    e, f, d = c.hidden, c.intermediate, c.head_dim
    q, kv = c.heads * d, c.kv_heads * d
    shapes = {"model.embed_tokens.weight": (c.vocab, e), "model.norm.weight": (e,)}
    if not c.tie:
        shapes["lm_head.weight"] = (c.vocab, e)
    for l in range(c.layers):
        p = "model.layers.%d." % l
        shapes.update({
            p + "input_layernorm.weight": (e,), p + "post_attention_layernorm.weight": (e,),
            p + "self_attn.q_proj.weight": (q, e), p + "self_attn.k_proj.weight": (kv, e),
            p + "self_attn.v_proj.weight": (kv, e), p + "self_attn.o_proj.weight": (e, q),
            p + "mlp.gate_proj.weight": (f, e), p + "mlp.up_proj.weight": (f, e),
            p + "mlp.down_proj.weight": (e, f)})
        if c.qkv_bias:
            shapes.update({p + "self_attn.q_proj.bias": (q,), p + "self_attn.k_proj.bias": (kv,),
                           p + "self_attn.v_proj.bias": (kv,)})
        if c.qk_norm:
            shapes.update({p + "self_attn.q_norm.weight": (d,), p + "self_attn.k_norm.weight": (d,)})
        if c.gemma:
            shapes.update({p + "pre_feedforward_layernorm.weight": (e,),
                           p + "post_feedforward_layernorm.weight": (e,)})
    return shapes


def make_fixture(source_dir, family, out_dir, vocab=96, seed=0, dtype="F32"):
    """A tiny random HF folder of `family`; returns its parsed config."""
    name, overrides = FAMILIES[family]
    with open(os.path.join(source_dir, "tests", "testdata", "hf_configs", name)) as f:
        config = json.load(f)
    config.update(overrides)
    config["vocab_size"] = vocab
    c = hf_reference.Config(config)
    rng = np.random.default_rng(seed)
    weights = {}
    for n, shape in tensor_shapes(c).items():
        if n.endswith("norm.weight") or n.endswith("layernorm.weight"):
            # Non-trivial norms: Gemma stores w of (1 + w).
            w = rng.normal(0.0, 0.3, shape) + (0.0 if c.gemma else 1.0)
        elif n.endswith(".bias"):
            w = rng.normal(0.0, 0.5, shape)
        elif n == "model.embed_tokens.weight":
            w = rng.normal(0.0, 1.0, shape)
        elif n == "lm_head.weight":
            w = rng.normal(0.0, 2.0 / math.sqrt(shape[1]), shape)
        else:
            w = rng.normal(0.0, 1.0 / math.sqrt(shape[1]), shape)
        weights[n] = w
    if c.tie:  # logits of the tied head on the same scale as an untied one
        weights["model.embed_tokens.weight"] *= 2.0 / math.sqrt(c.hidden)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    write_safetensors(os.path.join(out_dir, "model.safetensors"), weights, dtype)
    return c


def run(cmd, **kw):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, **kw)
    if p.returncode != 0:
        fail("%s exited %d:\n%s" % (" ".join(cmd), p.returncode, p.stderr[-3000:]))
    return p


def logits_test(source_dir, hf_logits, work):
    rng = np.random.default_rng(1)
    worst = 0.0
    for i, family in enumerate(FAMILIES):
        d = os.path.join(work, family)
        # qwen2 as the hub ships it (BF16): both readers widen the same values.
        c = make_fixture(source_dir, family, d, seed=10 + i, dtype="BF16" if family == "qwen2" else "F32")
        seqs = [[1], list(rng.integers(0, c.vocab, 7)), list(rng.integers(0, c.vocab, 19))]
        args = [",".join(str(int(t)) for t in s) for s in seqs]
        got = json.loads(run([hf_logits, d] + args).stdout)["logits"]
        ref_cmd = [sys.executable, os.path.join(HERE, "hf_reference.py"), d]
        for a in args:
            ref_cmd += ["--ids", a]
        want = json.loads(run(ref_cmd).stdout)["logits"]
        for s, (g, w) in enumerate(zip(got, want)):
            g, w = np.array(g), np.array(w)
            if g.shape != w.shape:
                fail("%s sequence %d: LibTorch logits %s, reference %s" % (family, s, g.shape, w.shape))
            scale = max(1.0, float(np.abs(w).max()))
            diff = float(np.abs(g - w).max())
            worst = max(worst, diff / scale)
            print("%-20s seq %d (%2d tokens): max |logit| %7.3f  max |diff| %.2e  (%.2e of scale)"
                  % (family, s, len(seqs[s]), float(np.abs(w).max()), diff, diff / scale))
            if diff > TOLERANCE * scale:
                fail("%s sequence %d: max |logit difference| %.3g > %g * %.3g" % (family, s, diff, TOLERANCE, scale))
    print("worst: %.2e of the logit scale (tolerance %g)" % (worst, TOLERANCE))
    check_fixture_features(work)


def check_fixture_features(work):
    """Each fixture's special feature changes the reference's logits on the
    19-token sequence (so the comparison above covers it)."""
    ids = list(range(3, 22))

    def logits(family, edit):
        d = os.path.join(work, family)
        c = hf_reference.Config(json.load(open(os.path.join(d, "config.json"))))
        w = hf_reference.read_weights(d)
        base = hf_reference.forward(c, w, ids, "float32")
        edit(c, w)
        return float(np.abs(hf_reference.forward(c, w, ids, "float32") - base).max())

    def no_scaling(c, w):
        c.rope_scaling = None

    def no_window(c, w):
        c.sliding = [False] * c.layers

    def no_softcap(c, w):
        c.softcap = None

    def no_bias(c, w):
        for n in [n for n in w if n.endswith(".bias")]:
            del w[n]

    def unit_qk_norm(c, w):
        for n in [n for n in w if n.endswith("q_norm.weight") or n.endswith("k_norm.weight")]:
            w[n] = np.ones_like(w[n])

    for family, edit in [("llama3", no_scaling), ("gemma3", no_window), ("gemma3", no_softcap),
                         ("gemma3-layer-types", no_window), ("qwen2", no_bias), ("qwen3", unit_qk_norm)]:
        delta = logits(family, edit)
        if delta < 1e-2:
            fail("%s: %s changes the logits by only %.3g: the fixture does not exercise it"
                 % (family, edit.__name__, delta))


def train_test(source_dir, qat, work):
    shutil.rmtree(work, ignore_errors=True)
    data = os.path.join(work, "data")
    os.makedirs(data)
    words = ("the of and to a in that is was he for it with as his on be at by had not are but from or have "
             "an they which one you were her all she there would their we him been has when who will more "
             "no if out so said what up its about into than them can only other new some could time these "
             "two may then do first any my now such like our over man me even most made after also did many "
             "before must through back years where much your way well down should because each just those "
             "people how too little state good very make world still own see men work long get here between "
             "both life being under never day same another know while last might us great old year off come "
             "since against go came right used take three").split()
    rng = np.random.default_rng(5)
    for name, lines in (("train.txt", 1500), ("valid.txt", 100)):
        with open(os.path.join(data, name), "w") as f:
            for _ in range(lines):
                n = int(rng.integers(8, 20))
                f.write(" ".join(words[int(i)] for i in rng.integers(0, len(words), n)).capitalize() + ".\n")
    fixture = os.path.join(work, "qwen3")
    name, overrides = FAMILIES["qwen3"]
    # q4_0 needs every linear input a multiple of 32.
    FAMILIES["qwen3"] = (name, dict(overrides, intermediate_size=128, num_hidden_layers=2))
    make_fixture(source_dir, "qwen3", fixture, vocab=384, seed=3)
    run([qat, "tokenizer", "--data", os.path.join(data, "train.txt"), "--vocab", "360",
         "--out", os.path.join(fixture, "tokenizer.model")])

    def evaluate(model):
        p = run([qat, "eval", "--model", model, "--file", os.path.join(data, "valid.txt"), "--ctx", "32",
                 "--chunks", "4", "--json"])
        r = json.loads(p.stdout.strip().splitlines()[-1])
        if sorted(r) != ["ctx", "ppl", "tokens"] or r["ctx"] != 32 or not (math.isfinite(r["ppl"]) and r["ppl"] > 1):
            fail("qat eval --json on %s printed %s" % (model, r))
        return r

    before = evaluate(fixture)
    out = os.path.join(work, "run")
    p = run([qat, "train", "--init", fixture, "--teacher", fixture,
             "--recipe", os.path.join(source_dir, "configs", "recipes", "q4_0.json"), "--data", data,
             "--out", out, "--steps", "3", "--batch", "2", "--seq", "32", "--lr", "1e-3", "--warmup", "0",
             "--eval-every", "0", "--eval-chunks", "2", "--calib-batches", "1", "--threads", "2",
             "--no-progress"])
    with open(os.path.join(out, "config.json")) as f:
        saved = json.load(f)
    with open(os.path.join(fixture, "config.json")) as f:
        original = json.load(f)
    if saved != original:
        fail("the trained checkpoint's config.json differs from the hub folder's: %s" % saved)
    for f in ("recipe.json", "tokenizer.model", "model.safetensors"):
        if not os.path.exists(os.path.join(out, f)):
            fail("qat train wrote no %s" % f)
    metrics = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl")) if l.strip()]
    steps = [m for m in metrics if "grad_norm" in m]
    if len(steps) != 3 or not all(math.isfinite(m["loss"]) for m in steps):
        fail("metrics.jsonl has no 3 finite training losses: %s" % metrics)
    # The teacher is the same folder: the loss is the KL of the q4_0 student
    # to its float self, far below the cross-entropy log(ppl) it would be
    # without distillation.
    if not all(m["loss"] < 0.5 * math.log(before["ppl"]) for m in steps):
        fail("training losses %s are not distillation losses (log ppl %.3f)"
             % ([m["loss"] for m in steps], math.log(before["ppl"])))
    w0 = hf_reference.read_weights(fixture)
    w1 = hf_reference.read_weights(out)
    for n in ("model.layers.0.self_attn.q_norm.weight", "model.layers.1.self_attn.k_norm.weight",
              "model.layers.0.self_attn.q_proj.weight"):
        if n not in w1 or np.array_equal(w0[n], w1[n]):
            fail("%s did not train" % n)
    after = evaluate(out)
    print("qwen3 folder: ppl %.3f before, %.3f after 3 QAT+KD steps (q4_0); %s" % (before["ppl"], after["ppl"],
                                                                                    p.stderr.strip().splitlines()[-1]))


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in ("logits", "train"):
        print(__doc__)
        sys.exit(2)
    mode, source_dir, tool, work = sys.argv[1:]
    os.makedirs(work, exist_ok=True)
    if mode == "logits":
        logits_test(source_dir, tool, work)
    else:
        train_test(source_dir, tool, work)
    print("hf_reference_test %s: OK" % mode)


if __name__ == "__main__":
    main()
