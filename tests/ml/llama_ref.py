#!/usr/bin/python3
"""Independent NumPy reference of a LLaMA checkpoint, checked against what kw_llama_run wrote.

    llama_ref.py MODEL_DIR RUN_DIR [--rtol 1e-4]

MODEL_DIR is a Hugging Face checkpoint directory (config.json, model.safetensors or the shards
named by model.safetensors.index.json); RUN_DIR holds kw_llama_run's tokens.txt, logits.f32
and hidden.f32 (tools/model/kw_llama_run.c). This script shares no code with the C side: it
reads the safetensors files itself (8-byte little-endian header length, JSON header, data;
huggingface/safetensors README), widens bf16/f16 with NumPy, and computes in float64
LlamaForCausalLM as transformers 4.43.1 writes it in models/llama/modeling_llama.py:
embed_tokens, per layer h = x + o_proj(attn(rope(q), rope(k), v)) over RMSNorm(x) and
y = h + down_proj(silu(gate_proj(n)) * up_proj(n)) over RMSNorm(h), then norm and lm_head.
RoPE: inv_freq = 1 / theta^(arange(0, d, 2) / d), cos/sin of pos x inv_freq repeated over both
halves, x cos + rotate_half(x) sin. Grouped-query attention by repeat_kv, causal softmax.

It runs one causal pass over the tokens C fed in (the prompt, then each generated token but
the last) and compares, per position, the logits and every block's output: relative error
max|c - ref| / max|ref| of each must be below --rtol. It also checks that each generated
token is the argmax of the reference logits wherever the reference's top-1/top-2 gap is above
the measured logit error. Exit status 0 when every check holds; prints the figures either way.
"""
import json
import os
import struct
import sys

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    data = memoryview(buf)[8 + n:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        raw = data[b:e]
        if t["dtype"] == "F32":
            a = np.frombuffer(raw, dtype="<f4")
        elif t["dtype"] == "F16":
            a = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif t["dtype"] == "BF16":
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError("%s: dtype %s" % (name, t["dtype"]))
        out[name] = a.reshape(t["shape"]).astype(np.float64)
    return out


def load_checkpoint(d):
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    idx = os.path.join(d, "model.safetensors.index.json")
    w = {}
    if os.path.exists(idx):
        with open(idx) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        for s in shards:
            w.update(read_safetensors(os.path.join(d, s)))
    else:
        w.update(read_safetensors(os.path.join(d, "model.safetensors")))
    return cfg, w


def rms_norm(x, w, eps):
    return w * (x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def forward(cfg, w, tokens):
    H = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    kvh = cfg.get("num_key_value_heads") or nh
    hd = cfg.get("head_dim") or H // nh
    theta = cfg.get("rope_theta") or 10000.0
    eps = cfg.get("rms_norm_eps") or 1e-6
    T = len(tokens)
    inv_freq = 1.0 / theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd)
    freqs = np.outer(np.arange(T, dtype=np.float64), inv_freq)
    emb = np.concatenate([freqs, freqs], axis=-1)
    cos, sin = np.cos(emb)[:, None, :], np.sin(emb)[:, None, :]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    x = w["model.embed_tokens.weight"][np.asarray(tokens)]
    hidden = []
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        n1 = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = (n1 @ w[p + "self_attn.q_proj.weight"].T).reshape(T, nh, hd)
        k = (n1 @ w[p + "self_attn.k_proj.weight"].T).reshape(T, kvh, hd)
        v = (n1 @ w[p + "self_attn.v_proj.weight"].T).reshape(T, kvh, hd)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = np.repeat(k, nh // kvh, axis=1)        # repeat_kv
        v = np.repeat(v, nh // kvh, axis=1)
        s = np.einsum("thd,shd->hts", q, k) / np.sqrt(hd) + mask
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        s /= s.sum(axis=-1, keepdims=True)
        att = np.einsum("hts,shd->thd", s, v).reshape(T, nh * hd)
        h = x + att @ w[p + "self_attn.o_proj.weight"].T
        n2 = rms_norm(h, w[p + "post_attention_layernorm.weight"], eps)
        g = n2 @ w[p + "mlp.gate_proj.weight"].T
        u = n2 @ w[p + "mlp.up_proj.weight"].T
        x = h + (g / (1.0 + np.exp(-g)) * u) @ w[p + "mlp.down_proj.weight"].T
        hidden.append(x)
    logits = rms_norm(x, w["model.norm.weight"], eps) @ w["lm_head.weight"].T
    return np.stack(hidden), logits


def main():
    args = sys.argv[1:]
    rtol = 1e-4
    if "--rtol" in args:
        i = args.index("--rtol")
        rtol = float(args[i + 1])
        del args[i:i + 2]
    if len(args) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    cfg, w = load_checkpoint(args[0])
    with open(os.path.join(args[1], "tokens.txt")) as f:
        prompt = [int(t) for t in f.readline().split()]
        gen = [int(t) for t in f.readline().split()]
    toks = prompt + gen
    np_ = len(prompt)
    P = len(toks) - 1
    V, H, L = cfg["vocab_size"], cfg["hidden_size"], cfg["num_hidden_layers"]
    c_logits = np.fromfile(os.path.join(args[1], "logits.f32"), dtype="<f4").reshape(P, V)
    c_hidden = np.fromfile(os.path.join(args[1], "hidden.f32"), dtype="<f4").reshape(L, P, H)
    r_hidden, r_logits = forward(cfg, w, toks[:P])
    ok = True
    for l in range(L):
        e = np.abs(c_hidden[l] - r_hidden[l]).max() / np.abs(r_hidden[l]).max()
        print("block %d output: max relative error %.3g (limit %g)" % (l, e, rtol))
        ok &= bool(e < rtol)
    pos_err = np.abs(c_logits - r_logits).max(axis=1) / np.abs(r_logits).max(axis=1)
    print("logits: max relative error %.3g over %d positions (limit %g)" % (pos_err.max(), P, rtol))
    ok &= bool(pos_err.max() < rtol)
    # generated token j is the argmax of the logits of position np_ - 1 + j
    srt = np.sort(r_logits, axis=1)
    gap = srt[:, -1] - srt[:, -2]
    err = np.abs(c_logits - r_logits).max(axis=1)
    agree = decided = bad = 0
    for j, t in enumerate(gen):
        i = np_ - 1 + j
        ref = int(np.argmax(r_logits[i]))
        agree += ref == t
        if gap[i] > 2 * err[i]:
            decided += 1
            bad += ref != t
    print("greedy tokens: %d of %d equal the reference argmax (%d decided by a gap above 2x the"
          " logit error, %d of those differ); smallest reference gap %.4f" %
          (agree, len(gen), decided, bad, gap[np_ - 1:].min()))
    ok &= bad == 0 and decided > 0
    print("llama_ref: %s" % ("PASS" if ok else "FAIL"))
    return 0 if ok else 1



if __name__ == "__main__":
    sys.exit(main())
