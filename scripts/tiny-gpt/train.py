"""Trains the tiny GPT's weights, so the generative demo model writes readable sentences.

    OPENBLAS_NUM_THREADS=1 python3 scripts/tiny-gpt/train.py [--steps N] [--corpus FILE] [--out FILE]
    python3 scripts/tiny-gpt/train.py --check    # the backward pass against finite differences

Needs Python 3 and numpy only (no deep-learning framework: the forward and backward passes of
the model are written out below, the same computation as the ONNX graph that
scripts/build-models.ts builds, tinyGptModel). The corpus, scripts/tiny-gpt/corpus.txt, is a few
ChatML conversations and sentences: small enough that the model learns them nearly by heart, so
it answers its chat template with readable sentences and ends them with <|im_end|>. Writes the
weights to scripts/tiny-gpt/weights.f16 (committed): float16 little-endian, in the order and
shapes of WEIGHT_ORDER, which build-models.ts reads. Deterministic for a given seed, corpus and
numpy build. The committed file is what the defaults give (1500 steps of 8 windows of 128
tokens; final loss 0.08), in 3 to 4 minutes on one core (OPENBLAS_NUM_THREADS=1: many BLAS
threads are slower on a busy machine).
"""
import argparse
import math
import re
import sys
import time

import numpy as np

LAYERS, HEADS, WIDTH, POSITIONS, VOCAB = 2, 4, 64, 512, 259
HEAD = WIDTH // HEADS


def weight_order():
    """(name, shape) of every weight, in the file's order; the names are the ONNX initializers'."""
    order = [('wte', (VOCAB, WIDTH)), ('wpe', (POSITIONS, WIDTH))]
    for i in range(LAYERS):
        order += [
            (f'l{i}_ln_1_g', (WIDTH,)), (f'l{i}_ln_1_b', (WIDTH,)),
            (f'l{i}_attn_qkv_w', (WIDTH, 3 * WIDTH)), (f'l{i}_attn_qkv_b', (3 * WIDTH,)),
            (f'l{i}_attn_proj_w', (WIDTH, WIDTH)), (f'l{i}_attn_proj_b', (WIDTH,)),
            (f'l{i}_ln_2_g', (WIDTH,)), (f'l{i}_ln_2_b', (WIDTH,)),
            (f'l{i}_mlp_fc_w', (WIDTH, 4 * WIDTH)), (f'l{i}_mlp_fc_b', (4 * WIDTH,)),
            (f'l{i}_mlp_proj_w', (4 * WIDTH, WIDTH)), (f'l{i}_mlp_proj_b', (WIDTH,)),
        ]
    order += [('ln_f_g', (WIDTH,)), ('ln_f_b', (WIDTH,)), ('lm_head', (WIDTH, VOCAB))]
    return order


WEIGHT_ORDER = weight_order()


def init(rng):
    w = {}
    for name, shape in WEIGHT_ORDER:
        if name.endswith('_g'):
            w[name] = np.ones(shape, np.float32)
        elif name.endswith('_b'):
            w[name] = np.zeros(shape, np.float32)
        else:
            std = 0.02 if name in ('wte', 'wpe') else 1 / math.sqrt(shape[0])
            if name.endswith('proj_w'):
                std /= math.sqrt(2 * LAYERS)
            w[name] = (rng.standard_normal(shape) * std).astype(np.float32)
    return w


def layer_norm(x, g, b):
    mu = x.mean(-1, keepdims=True)
    xc = x - mu
    var = (xc * xc).mean(-1, keepdims=True)
    rstd = 1 / np.sqrt(var + 1e-5)
    xh = xc * rstd
    return xh * g + b, (xh, rstd, g)


def layer_norm_back(dy, cache):
    xh, rstd, g = cache
    dg = (dy * xh).reshape(-1, xh.shape[-1]).sum(0)
    db = dy.reshape(-1, xh.shape[-1]).sum(0)
    dxh = dy * g
    dx = rstd * (dxh - dxh.mean(-1, keepdims=True) - xh * (dxh * xh).mean(-1, keepdims=True))
    return dx, dg, db


def _erf(x):
    """erf without scipy: Numerical Recipes' erfc approximation (relative error under 1.2e-7)."""
    z = np.abs(x)
    t = 1 / (1 + 0.5 * z)
    r = t * np.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
    return np.where(x >= 0, 1 - r, r - 1).astype(x.dtype)


def forward(w, ids, targets=None, offsets=None):
    """Logits (and, with targets, the mean cross-entropy and what the backward pass needs).
    Row b's positions start at offsets[b] (0 by default)."""
    B, T = ids.shape
    caches = []
    positions = np.arange(T)[None] + (np.zeros((B, 1), np.int64) if offsets is None else offsets[:, None])
    x = w['wte'][ids] + w['wpe'][positions]
    mask = np.triu(np.full((T, T), -1e9, np.float32), 1)
    for i in range(LAYERS):
        p = f'l{i}_'
        a, ln1 = layer_norm(x, w[p + 'ln_1_g'], w[p + 'ln_1_b'])
        qkv = a @ w[p + 'attn_qkv_w'] + w[p + 'attn_qkv_b']
        q, k, v = (qkv[..., j * WIDTH:(j + 1) * WIDTH].reshape(B, T, HEADS, HEAD).transpose(0, 2, 1, 3) for j in range(3))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(HEAD) + mask
        scores -= scores.max(-1, keepdims=True)
        att = np.exp(scores)
        att /= att.sum(-1, keepdims=True)
        ctx = (att @ v).transpose(0, 2, 1, 3).reshape(B, T, WIDTH)
        x1 = x + ctx @ w[p + 'attn_proj_w'] + w[p + 'attn_proj_b']
        m, ln2 = layer_norm(x1, w[p + 'ln_2_g'], w[p + 'ln_2_b'])
        f = m @ w[p + 'mlp_fc_w'] + w[p + 'mlp_fc_b']
        e = _erf(f / math.sqrt(2))
        gelu = 0.5 * f * (1 + e)
        x2 = x1 + gelu @ w[p + 'mlp_proj_w'] + w[p + 'mlp_proj_b']
        caches.append((a, ln1, q, k, v, att, ctx, m, ln2, f, e, gelu))
        x = x2
    h, lnf = layer_norm(x, w['ln_f_g'], w['ln_f_b'])
    logits = h @ w['lm_head']
    if targets is None:
        return logits
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    loss = -np.take_along_axis(logp, targets[..., None], -1).mean()
    return loss, (ids, positions, caches, h, lnf, logp, targets)


def backward(w, saved):
    ids, positions, caches, h, lnf, logp, targets = saved
    B, T = ids.shape
    g = {name: np.zeros_like(value) for name, value in w.items()}
    dlogits = np.exp(logp)
    np.put_along_axis(dlogits, targets[..., None], np.take_along_axis(dlogits, targets[..., None], -1) - 1, -1)
    dlogits /= B * T
    g['lm_head'] = h.reshape(-1, WIDTH).T @ dlogits.reshape(-1, VOCAB)
    dx, g['ln_f_g'], g['ln_f_b'] = layer_norm_back(dlogits @ w['lm_head'].T, lnf)
    for i in reversed(range(LAYERS)):
        p = f'l{i}_'
        a, ln1, q, k, v, att, ctx, m, ln2, f, e, gelu = caches[i]
        # MLP
        g[p + 'mlp_proj_w'] = gelu.reshape(-1, 4 * WIDTH).T @ dx.reshape(-1, WIDTH)
        g[p + 'mlp_proj_b'] = dx.reshape(-1, WIDTH).sum(0)
        dgelu = dx @ w[p + 'mlp_proj_w'].T
        df = dgelu * (0.5 * (1 + e) + f * np.exp(-0.5 * f * f) / math.sqrt(2 * math.pi))
        g[p + 'mlp_fc_w'] = m.reshape(-1, WIDTH).T @ df.reshape(-1, 4 * WIDTH)
        g[p + 'mlp_fc_b'] = df.reshape(-1, 4 * WIDTH).sum(0)
        dm = df @ w[p + 'mlp_fc_w'].T
        dx1, g[p + 'ln_2_g'], g[p + 'ln_2_b'] = layer_norm_back(dm, ln2)
        dx1 += dx
        # Attention
        g[p + 'attn_proj_w'] = ctx.reshape(-1, WIDTH).T @ dx1.reshape(-1, WIDTH)
        g[p + 'attn_proj_b'] = dx1.reshape(-1, WIDTH).sum(0)
        dctx = (dx1 @ w[p + 'attn_proj_w'].T).reshape(B, T, HEADS, HEAD).transpose(0, 2, 1, 3)
        datt = dctx @ v.transpose(0, 1, 3, 2)
        dv = att.transpose(0, 1, 3, 2) @ dctx
        dscores = att * (datt - (datt * att).sum(-1, keepdims=True)) / math.sqrt(HEAD)
        dq = dscores @ k
        dk = dscores.transpose(0, 1, 3, 2) @ q
        dqkv = np.concatenate([d.transpose(0, 2, 1, 3).reshape(B, T, WIDTH) for d in (dq, dk, dv)], -1)
        g[p + 'attn_qkv_w'] = a.reshape(-1, WIDTH).T @ dqkv.reshape(-1, 3 * WIDTH)
        g[p + 'attn_qkv_b'] = dqkv.reshape(-1, 3 * WIDTH).sum(0)
        da = dqkv @ w[p + 'attn_qkv_w'].T
        dx0, g[p + 'ln_1_g'], g[p + 'ln_1_b'] = layer_norm_back(da, ln1)
        dx = dx0 + dx1
    np.add.at(g['wte'], ids, dx)
    np.add.at(g['wpe'], positions, dx)
    return g


def gradient_check():
    """The backward pass against finite differences, on a few entries of every weight (float64)."""
    rng = np.random.default_rng(0)
    w = {k: v.astype(np.float64) for k, v in init(rng).items()}
    for k in w:
        w[k] += rng.standard_normal(w[k].shape) * 0.05
    ids = rng.integers(0, VOCAB, (2, 9))
    targets = rng.integers(0, VOCAB, (2, 9))
    offsets = np.array([3, 0])
    _, saved = forward(w, ids, targets, offsets)
    grads = backward(w, saved)
    worst = 0
    for name, value in w.items():
        flat = value.reshape(-1)
        for index in rng.integers(0, flat.size, 3):
            if name == 'wpe':
                index = rng.integers(3 * WIDTH, 12 * WIDTH)
            old = flat[index]
            flat[index] = old + 1e-5
            up, _ = forward(w, ids, targets, offsets)
            flat[index] = old - 1e-5
            down, _ = forward(w, ids, targets, offsets)
            flat[index] = old
            numeric = (up - down) / 2e-5
            analytic = grads[name].reshape(-1)[index]
            worst = max(worst, abs(numeric - analytic) / max(1e-6, abs(numeric) + abs(analytic)))
    return worst


SPECIAL_TOKENS = {'<|endoftext|>': 256, '<|im_start|>': 257, '<|im_end|>': 258}


def corpus_tokens(path):
    """The corpus as token ids: one per UTF-8 byte, the special tokens as their own ids (the tokenizer's)."""
    text = open(path, encoding='utf-8').read()
    ids = []
    for piece in re.split('(' + '|'.join(re.escape(t) for t in SPECIAL_TOKENS) + ')', text):
        ids += [SPECIAL_TOKENS[piece]] if piece in SPECIAL_TOKENS else list(piece.encode('utf-8'))
    return np.array(ids, np.int64)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--steps', type=int, default=1500)
    parser.add_argument('--lr', type=float, default=5e-3)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--context', type=int, default=128)
    parser.add_argument('--corpus', default='scripts/tiny-gpt/corpus.txt')
    parser.add_argument('--out', default='scripts/tiny-gpt/weights.f16')
    parser.add_argument('--check', action='store_true', help='only compare the backward pass with finite differences')
    args = parser.parse_args()
    if args.check:
        print(f'worst relative gradient error: {gradient_check():.2e}')
        return
    data = corpus_tokens(args.corpus)
    print(f'corpus: {data.size} tokens', flush=True)
    rng = np.random.default_rng(2024)
    w = init(rng)
    m = {k: np.zeros_like(v) for k, v in w.items()}
    s = {k: np.zeros_like(v) for k, v in w.items()}
    lr_max, beta1, beta2, decay = args.lr, 0.9, 0.99, 0.01
    started = time.time()
    for step in range(1, args.steps + 1):
        starts = rng.integers(0, data.size - args.context - 1, args.batch)
        ids = np.stack([data[o:o + args.context] for o in starts])
        targets = np.stack([data[o + 1:o + args.context + 1] for o in starts])
        # Windows shorter than the context, each at a random first position, so that every position's embedding learns.
        offsets = rng.integers(0, POSITIONS - args.context + 1, args.batch)
        loss, saved = forward(w, ids, targets, offsets)
        grads = backward(w, saved)
        norm = math.sqrt(sum(float((gr * gr).sum()) for gr in grads.values()))
        clip = min(1.0, 1.0 / (norm + 1e-6))
        lr = lr_max * min(1, step / 100) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / args.steps)))
        for k in w:
            gr = grads[k] * clip
            m[k] = beta1 * m[k] + (1 - beta1) * gr
            s[k] = beta2 * s[k] + (1 - beta2) * gr * gr
            update = (m[k] / (1 - beta1 ** step)) / (np.sqrt(s[k] / (1 - beta2 ** step)) + 1e-8)
            if w[k].ndim == 2:
                update += decay * w[k]
            w[k] -= (lr * update).astype(np.float32)
        if step % 50 == 0 or step == 1:
            print(f'step {step}: loss {loss:.3f} ({time.time() - started:.0f} s)', flush=True)
    with open(args.out, 'wb') as out:
        for name, shape in WEIGHT_ORDER:
            assert w[name].shape == shape, name
            out.write(w[name].astype('<f2').tobytes())
    print(f'wrote {args.out}')


if __name__ == '__main__':
    sys.exit(main())
