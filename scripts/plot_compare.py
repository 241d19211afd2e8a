#!/usr/bin/python3
"""Plots for `qat compare`: loss curves (FP vs QAT runs) and per-variant
perplexity and size bars. Reads OUT/results.json and each run's metrics.jsonl.

Usage: /usr/bin/python3 scripts/plot_compare.py OUT_DIR
Writes OUT_DIR/loss_curves.png, OUT_DIR/ppl_bars.png, OUT_DIR/size_bars.png.
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_jsonl(path):
    rows = []
    if not os.path.exists(path):
        return rows
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    pass  # a run killed mid-line leaves a partial last line
    return rows


def plot_losses(out, runs):
    """Three panels: the FP fine-tune's cross-entropy, the QAT runs'
    distillation loss (KL to the FP teacher, log scale: it falls by orders
    of magnitude), and validation perplexity of every run."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for i, (name, path, offset) in enumerate(runs):
        color = f"C{i}"  # one colour per run in every panel
        rows = read_jsonl(path)
        tr = [(offset + r["step"], r["loss"]) for r in rows if "loss" in r]
        va = [(offset + r["step"], r["valid_ppl"]) for r in rows if "valid_ppl" in r]
        if tr:
            ax = axes[0] if name == "fp" else axes[1]
            ax.plot(*zip(*tr), label=name, linewidth=1, color=color)
        if va:
            axes[2].plot(*zip(*va), marker="o", markersize=3, label=name, color=color)
    axes[0].set_title("FP fine-tune: training loss (cross-entropy)")
    axes[1].set_title("QAT: distillation loss (KL to the FP model)")
    axes[1].set_yscale("log")
    axes[2].set_title("validation perplexity (QAT: fake-quant model)")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "loss_curves.png"), dpi=120)


def plot_bars(out, variants, key, ylabel, fname, scale=1.0, fmt="{:.2f}"):
    names = [v["name"] for v in variants if v.get(key) is not None]
    vals = [v[key] / scale for v in variants if v.get(key) is not None]
    if not names:
        return
    colors = {"fp": "#4c72b0", "ptq": "#dd8452", "qat": "#55a868"}
    cs = [colors.get(v["method"], "#999999") for v in variants if v.get(key) is not None]
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(names)), 4))
    bars = ax.bar(names, vals, color=cs)
    for b, v in zip(bars, vals):
        ax.annotate(fmt.format(v), (b.get_x() + b.get_width() / 2, b.get_height()),
                    ha="center", va="bottom", fontsize=8)
    ax.set_ylabel(ylabel)
    if key.startswith("ppl"):
        lo = min(vals)
        ax.set_ylim(lo * 0.95, max(vals) * 1.03)
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(out, fname), dpi=120)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    with open(os.path.join(out, "results.json")) as f:
        res = json.load(f)
    variants = res["variants"]
    runs = [(r["name"], r["metrics"], r.get("step_offset", 0)) for r in res.get("runs", [])]
    plot_losses(out, runs)
    plot_bars(out, variants, "ppl_runtime", "test perplexity (qat-run)", "ppl_bars.png")
    plot_bars(out, variants, "bytes", "file size (MiB)", "size_bars.png", scale=1 << 20)
    others = [v for v in variants if v.get("method") != "fp"]
    plot_bars(out, others, "kl_mean", "mean KL(FP || variant), nats", "kl_bars.png", fmt="{:.4f}")


if __name__ == "__main__":
    main()
