#!/usr/bin/python3
"""A numpy reference forward of Hugging Face causal LMs, written from the
published modelling semantics of transformers' LlamaForCausalLM,
Qwen2ForCausalLM, Qwen3ForCausalLM and Gemma3ForCausalLM. It shares no code
with qatkit: the LibTorch model (qat/model/transformer.cc) is checked against
it (hf_reference_test.py).

    hf_reference.py MODEL_DIR --ids 1,2,3 [--ids 4,5] [--normalizer-dtype float32|bfloat16]

MODEL_DIR holds config.json and model.safetensors (or a sharded
model.safetensors.index.json); tensors may be F32, F16 or BF16. Prints one
JSON object {"logits": [[[V floats] per position] per --ids]}.

Arithmetic is float64 throughout. The one dtype cast of the modelling code
that changes values at float32 precision is modelled: Gemma 3 multiplies the
embeddings by sqrt(hidden_size) cast to the activations' dtype
(--normalizer-dtype, default float32: an F32 run).
"""

import argparse
import json
import math
import os
import struct
import sys

import numpy as np

_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64}


def read_safetensors(path):
    """name -> float64 array, from the file's JSON header and raw data."""
    with open(path, "rb") as f:
        blob = f.read()
    (header_len,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + header_len].decode("utf-8"))
    base = 8 + header_len
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = info["dtype"]
        if dtype not in _DTYPES:
            raise ValueError("%s: tensor %s has unsupported dtype %s" % (path, name, dtype))
        begin, end = info["data_offsets"]
        raw = np.frombuffer(blob[base + begin:base + end], dtype=np.dtype(_DTYPES[dtype]).newbyteorder("<"))
        if dtype == "BF16":  # the upper half of a float32
            raw = (raw.astype(np.uint32) << 16).view(np.float32)
        out[name] = raw.astype(np.float64).reshape(info["shape"])
    return out


def read_weights(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        weights = {}
        for s in shards:
            weights.update(read_safetensors(os.path.join(model_dir, s)))
        return weights
    return read_safetensors(os.path.join(model_dir, "model.safetensors"))


def round_to(x, dtype):
    """x rounded to float32 or bfloat16 (round to nearest even), as a float."""
    f = np.array(x, dtype=np.float32)
    if dtype == "float32":
        return float(f)
    bits = int(f.view(np.uint32))
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return float(np.array(bits, dtype=np.uint32).view(np.float32))


class Config:
    """The config.json keys each family's modelling code reads, with the
    defaults of its transformers config class."""

    def __init__(self, j):
        self.model_type = j["model_type"]
        t = self.model_type
        if t not in ("llama", "qwen2", "qwen3", "gemma3_text"):
            raise ValueError("model_type %r is not modelled" % t)
        self.gemma = t == "gemma3_text"
        self.vocab = j["vocab_size"]
        self.hidden = j["hidden_size"]
        self.intermediate = j["intermediate_size"]
        self.heads = j["num_attention_heads"]
        self.layers = j["num_hidden_layers"]
        kv = j.get("num_key_value_heads")
        self.kv_heads = kv if kv is not None else self.heads
        default_head_dim = {"gemma3_text": 256, "qwen3": 128}.get(t, self.hidden // self.heads)
        hd = j.get("head_dim")
        self.head_dim = hd if hd is not None else default_head_dim
        self.eps = j.get("rms_norm_eps", 1e-6)
        self.rope_theta = j.get("rope_theta", 1000000.0 if self.gemma else 10000.0)
        self.tie = j.get("tie_word_embeddings", self.gemma)
        act = j.get("hidden_activation") if self.gemma else j.get("hidden_act")
        self.act = act if act is not None else ("gelu_pytorch_tanh" if self.gemma else "silu")
        if self.act not in ("silu", "gelu_pytorch_tanh"):
            raise ValueError("activation %r is not modelled" % self.act)
        self.qkv_bias = t == "qwen2" or bool(j.get("attention_bias", False))
        self.qk_norm = t in ("qwen3", "gemma3_text")
        if j.get("mlp_bias"):
            raise ValueError("mlp_bias is not modelled")
        if j.get("use_sliding_window"):
            raise ValueError("use_sliding_window is not modelled")
        self.rope_scaling = j.get("rope_scaling")
        if self.rope_scaling is not None:
            kind = self.rope_scaling.get("rope_type", self.rope_scaling.get("type"))
            if kind == "default":
                self.rope_scaling = None
            elif kind != "llama3":
                raise ValueError("rope_scaling %r is not modelled" % kind)
        if self.gemma:
            self.query_pre_attn_scalar = j.get("query_pre_attn_scalar", 256)
            self.softcap = j.get("final_logit_softcapping")
            self.sliding_window = j.get("sliding_window", 4096)
            self.local_theta = j.get("rope_local_base_freq", 10000.0)
            if j.get("attn_logit_softcapping") is not None:
                raise ValueError("attn_logit_softcapping is not modelled")
            types = j.get("layer_types")
            if types is None:
                pattern = j.get("sliding_window_pattern", 6)
                types = ["sliding_attention" if (i + 1) % pattern else "full_attention"
                         for i in range(self.layers)]
            self.sliding = [tp == "sliding_attention" and bool(self.sliding_window) for tp in types]
            self.scaling = self.query_pre_attn_scalar ** -0.5
        else:
            self.softcap = None
            self.sliding = [False] * self.layers
            self.scaling = self.head_dim ** -0.5


def inv_freq(c, layer):
    """transformers' rotary inverse frequencies of a layer: the default
    1/base^(2i/D), Llama 3's frequency-dependent rescaling of it
    (_compute_llama3_parameters), Gemma 3's local base on sliding layers."""
    d = c.head_dim
    base = c.local_theta if c.gemma and c.sliding[layer] else c.rope_theta
    f = 1.0 / (base ** (np.arange(0, d, 2, dtype=np.float64) / d))
    if c.rope_scaling is None or (c.gemma and c.sliding[layer]):
        return f
    r = c.rope_scaling
    factor, low, high = r["factor"], r["low_freq_factor"], r["high_freq_factor"]
    old_len = r["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old_len / low, old_len / high
    wavelen = 2 * math.pi / f
    scaled = np.where(wavelen > low_wavelen, f / factor, f)
    smooth = (old_len / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
    return np.where(medium, smoothed, scaled)


def rms_norm(x, w, eps, plus_one):
    y = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    return y * (1.0 + w) if plus_one else y * w


def rotate(x, cos, sin):
    """x [T, h, D]: x*cos + rotate_half(x)*sin, rotate_half = cat(-x2, x1)."""
    half = x.shape[-1] // 2
    rot = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos[:, None, :] + rot * sin[:, None, :]


def act(c, x):
    if c.act == "silu":
        return x / (1.0 + np.exp(-x))
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def linear(w, x, name):
    y = x @ w[name + ".weight"].T
    if name + ".bias" in w:
        y = y + w[name + ".bias"]
    return y


def attention(c, w, p, layer, x):
    t = x.shape[0]
    h, hk, d = c.heads, c.kv_heads, c.head_dim
    q = linear(w, x, p + "q_proj").reshape(t, h, d)
    k = linear(w, x, p + "k_proj").reshape(t, hk, d)
    v = linear(w, x, p + "v_proj").reshape(t, hk, d)
    if c.qk_norm:  # per head, after the reshape, before RoPE
        q = rms_norm(q, w[p + "q_norm.weight"], c.eps, c.gemma)
        k = rms_norm(k, w[p + "k_norm.weight"], c.eps, c.gemma)
    angles = np.arange(t, dtype=np.float64)[:, None] * inv_freq(c, layer)[None, :]
    emb = np.concatenate([angles, angles], axis=-1)
    q, k = rotate(q, np.cos(emb), np.sin(emb)), rotate(k, np.cos(emb), np.sin(emb))
    i, j = np.arange(t)[:, None], np.arange(t)[None, :]
    allowed = j <= i
    if c.sliding[layer]:
        allowed &= j > i - c.sliding_window
    group = h // hk  # query head n reads kv head n // group (repeat_kv)
    out = np.empty((t, h, d))
    for n in range(h):
        s = (q[:, n, :] @ k[:, n // group, :].T) * c.scaling
        s = np.where(allowed, s, -np.inf)
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        out[:, n, :] = (s / s.sum(axis=-1, keepdims=True)) @ v[:, n // group, :]
    return linear(w, out.reshape(t, h * d), p + "o_proj")


def mlp(c, w, p, x):
    return linear(w, act(c, linear(w, x, p + "gate_proj")) * linear(w, x, p + "up_proj"), p + "down_proj")


def forward(c, w, ids, normalizer_dtype):
    x = w["model.embed_tokens.weight"][np.asarray(ids)]
    if c.gemma:
        x = x * round_to(math.sqrt(c.hidden), normalizer_dtype)
    for layer in range(c.layers):
        p = "model.layers.%d." % layer
        a = attention(c, w, p + "self_attn.", layer, rms_norm(x, w[p + "input_layernorm.weight"], c.eps, c.gemma))
        if c.gemma:
            x = x + rms_norm(a, w[p + "post_attention_layernorm.weight"], c.eps, True)
            m = mlp(c, w, p + "mlp.", rms_norm(x, w[p + "pre_feedforward_layernorm.weight"], c.eps, True))
            x = x + rms_norm(m, w[p + "post_feedforward_layernorm.weight"], c.eps, True)
        else:
            x = x + a
            x = x + mlp(c, w, p + "mlp.", rms_norm(x, w[p + "post_attention_layernorm.weight"], c.eps, False))
    x = rms_norm(x, w["model.norm.weight"], c.eps, c.gemma)
    head = w["model.embed_tokens.weight"] if c.tie else w["lm_head.weight"]
    logits = x @ head.T
    if c.softcap is not None:
        logits = np.tanh(logits / c.softcap) * c.softcap
    return logits


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("--ids", action="append", required=True, help="comma-separated token ids")
    ap.add_argument("--normalizer-dtype", choices=["float32", "bfloat16"], default="float32")
    a = ap.parse_args()
    with open(os.path.join(a.model_dir, "config.json")) as f:
        c = Config(json.load(f))
    w = read_weights(a.model_dir)
    out = [forward(c, w, [int(t) for t in s.split(",")], a.normalizer_dtype).tolist() for s in a.ids]
    json.dump({"logits": out}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
