"""Recomputes qat-run perplexity --kl-base's figures from two log-prob files.

    kl_check.py BASE.qlp MODEL.qlp RESULT.json

BASE.qlp and MODEL.qlp are --save-logits files of the base and the model
over the same text and ctx (layout: inference/logprob_file.h); RESULT.json
is `qat-run perplexity --model MODEL --kl-base BASE --json`. numpy alone
computes KL(P_base || P_model) per position, its mean and 99th percentile
(linear interpolation, as llama.cpp), top-1 agreement and ppl - base ppl,
and each must equal qat-run's within 1e-6 relative. Exit 1 on a mismatch.
"""
import json
import sys

import numpy as np


def read(path):
    with open(path, "rb") as f:
        b = f.read()
    if b[:8] != b"QATKLP1\0":
        sys.exit(f"{path}: bad magic")
    n_vocab = int(np.frombuffer(b, "<u4", 1, 8)[0])
    ctx, chunks, n_tokens = (int(v) for v in np.frombuffer(b, "<i8", 3, 24))
    tokens = np.frombuffer(b, "<i4", n_tokens, 48)
    rec = np.dtype([("nll", "<f8"), ("logp", "<f4", (n_vocab,))])
    rows = np.frombuffer(b, rec, offset=48 + 4 * n_tokens)
    if len(rows) != chunks * (ctx - 1 - ctx // 2):
        sys.exit(f"{path}: {len(rows)} records for {chunks} chunks of {ctx}")
    return tokens, rows


def main():
    base_tokens, base = read(sys.argv[1])
    model_tokens, model = read(sys.argv[2])
    with open(sys.argv[3]) as f:
        got = json.load(f)
    assert np.array_equal(base_tokens, model_tokens), "the two files tokenize different texts"
    b = base["logp"].astype(np.float64)
    m = model["logp"].astype(np.float64)
    # Rows are log-probabilities: each sums to 1 in probability.
    lse = np.log(np.exp(b).sum(axis=1))
    assert np.abs(lse).max() < 1e-5, f"base rows are not normalized: {np.abs(lse).max()}"
    kl = (np.exp(b) * (b - m)).sum(axis=1)
    want = {
        "kl_mean": kl.mean(),
        "kl_p99": np.percentile(kl, 99),
        "top1": float(np.mean(b.argmax(axis=1) == m.argmax(axis=1))),
        "delta_ppl": np.exp(model["nll"].mean()) - np.exp(base["nll"].mean()),
        "ppl": np.exp(model["nll"].mean()),
        "tokens": len(kl),
    }
    bad = 0
    for key, w in want.items():
        g = got[key]
        ok = abs(g - w) <= 1e-6 * max(abs(w), 1e-12)
        print(f"{key:10s} qat-run {g:.10g}  numpy {w:.10g}  {'ok' if ok else 'MISMATCH'}")
        bad += not ok
    if want["kl_mean"] <= 0:
        print("expected KL > 0 between the two models")
        bad += 1
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
