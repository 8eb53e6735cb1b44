"""A small GPT-style decoder in plain torch (``gpt``): token and position embeddings, pre-LayerNorm blocks of
causal self-attention and a GELU MLP, a final LayerNorm, and the output head tied to the token embedding.

Attention and MLP blocks own their parameters directly, so the paths' layer level moves each one as a unit
(``blocks.0.attn`` vs ``blocks.0.mlp``). LayerNorm weights and biases are 1-D, and ``ignore = "biasbn"`` leaves
them out of directions exactly as it leaves out BatchNorm's. The model maps token ids (N, T) to next-token logits
(N, T, V).

Example:
    >>> m = GPT(vocab=16, context=8, n_layer=1, n_head=2, d_model=8)
    >>> tuple(m(torch.zeros(3, 5, dtype=torch.long)).shape)
    (3, 5, 16)
    >>> [n for n, _ in m.named_children()]
    ['tok_emb', 'pos_emb', 'blocks', 'ln_f']
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GPT", "CausalSelfAttention", "FeedForward"]


def _linear_weight(rows: int, cols: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(rows, cols) * 0.02)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention; parameters ``qkv_weight``/``qkv_bias``, ``out_weight``/``out_bias``."""

    def __init__(self, d_model: int, n_head: int, n_layer: int):
        super().__init__()
        self.n_head = n_head
        self.qkv_weight = _linear_weight(3 * d_model, d_model)
        self.qkv_bias = nn.Parameter(torch.zeros(3 * d_model))
        self.out_weight = nn.Parameter(torch.randn(d_model, d_model) * 0.02 / math.sqrt(2 * n_layer))
        self.out_bias = nn.Parameter(torch.zeros(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = F.linear(x, self.qkv_weight, self.qkv_bias).split(d, dim=-1)
        q, k, v = (z.reshape(n, t, self.n_head, d // self.n_head).transpose(1, 2) for z in (q, k, v))
        # written out rather than F.scaled_dot_product_attention: the same kernels one point at a time and for
        # stacked points (vmap has no batching rule for the fused CPU kernel), so values do not depend on the mode
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
        causal = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        y = att.masked_fill(~causal, float("-inf")).softmax(-1) @ v
        return F.linear(y.transpose(1, 2).reshape(n, t, d), self.out_weight, self.out_bias)


class FeedForward(nn.Module):
    """The block's MLP: d → 4d → d with GELU; parameters ``in_weight``/``in_bias``, ``out_weight``/``out_bias``."""

    def __init__(self, d_model: int, n_layer: int):
        super().__init__()
        self.in_weight = _linear_weight(4 * d_model, d_model)
        self.in_bias = nn.Parameter(torch.zeros(4 * d_model))
        self.out_weight = nn.Parameter(torch.randn(d_model, 4 * d_model) * 0.02 / math.sqrt(2 * n_layer))
        self.out_bias = nn.Parameter(torch.zeros(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.gelu(F.linear(x, self.in_weight, self.in_bias)), self.out_weight, self.out_bias)


class _Block(nn.Module):
    def __init__(self, d_model: int, n_head: int, n_layer: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_head, n_layer)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = FeedForward(d_model, n_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """Decoder-only transformer: ``vocab`` tokens, ``context`` positions, ``n_layer`` blocks of ``n_head``
    heads and width ``d_model``; the output head is the token embedding (tied)."""

    def __init__(self, vocab: int = 256, context: int = 64, n_layer: int = 2, n_head: int = 4, d_model: int = 64):
        super().__init__()
        if d_model % n_head:
            raise ValueError(f"d_model ({d_model}) must be a multiple of n_head ({n_head})")
        self.context = context
        self.tok_emb = nn.Embedding(vocab, d_model)
        self.pos_emb = nn.Embedding(context, d_model)
        nn.init.normal_(self.tok_emb.weight, std=0.02)
        nn.init.normal_(self.pos_emb.weight, std=0.02)
        self.blocks = nn.Sequential(*[_Block(d_model, n_head, n_layer) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(d_model)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[-1]
        if t > self.context:
            raise ValueError(f"sequence of {t} tokens; the model's context is {self.context}")
        pos = torch.arange(t, device=idx.device)
        h = self.ln_f(self.blocks(self.tok_emb(idx) + self.pos_emb(pos)))
        return F.linear(h, self.tok_emb.weight)  # tied output head
