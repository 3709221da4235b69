"""The model run for decoding: a few tokens at a time, with every earlier position's keys and
values kept (the KV cache).

GPT.forward is written for training: modules called on whole windows. Decoding one token at
batch 1 does a few thousand multiply-adds per operation, so there the cost is the number of
operations, not their arithmetic (docs/measurements.md, the decode.py rows). This runs the same
network, reading the weights of the model's own modules (shared, not copied), with as few
operations a token as it takes: the qkv projection writes each position's queries, keys and
values straight into the cache, each residual is added by its matmul in place, and no module
is called on the way. tests/test_model.py checks it gives GPT.forward's logits, for every
option of the architecture.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .gpt import GPT

sdpa = F.scaled_dot_product_attention


def norm_of(module: nn.Module):
    """The function a norm module computes, with its weights bound: calling the module costs
    more than its work on one token."""
    shape, w, eps = module.normalized_shape, module.weight, module.eps
    if isinstance(module, nn.LayerNorm):
        b = module.bias
        return lambda x: torch.layer_norm(x, shape, w, b, eps)
    return lambda x: torch.rms_norm(x, shape, w, eps)


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
           out: torch.Tensor | None = None) -> torch.Tensor:
    """x @ w (+ b), into out when given."""
    return torch.mm(x, w, out=out) if b is None else torch.addmm(b, x, w, out=out)


def gelu_view(h: torch.Tensor) -> torch.Tensor:
    """A view of contiguous h that F.gelu(v, out=v) turns into h's exact GELU in place. Given
    a contiguous float32 tensor, torch on a CPU hands it to oneDNN, whose fixed cost a call is
    several times the work of one token's few hundred values (docs/measurements.md); a
    transposed view of the same memory goes to torch's own kernel, the same function."""
    return h.view(-1, 2).t()  # (N/2, 2) -> (2, N/2)


def weight_of(layer: nn.Linear) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(in, out) and bias: x @ w is the layer's output without the bias."""
    return layer.weight.t(), layer.bias


class Layer:
    """One block's weights and its part of the cache: rows (block_size, B, 3·C) hold each
    position's projected queries, keys and values; q, k, v view them as (B, h, block_size, hd).
    keys is k itself, or, where attention changes the keys (norm, smearing, rotation), a
    tensor of its own for the changed ones."""
    __slots__ = ("ln1", "qkv", "qkv_bias", "proj", "proj_bias", "ln2", "fc", "fc_bias", "out",
                 "out_bias", "relu2", "attn", "plain", "rows", "q", "k", "v", "keys")

    def __init__(self, block: nn.Module, rows: torch.Tensor, n_head: int, rotary: bool):
        attn = block.attn
        self.ln1, self.ln2, self.attn = norm_of(block.ln1), norm_of(block.ln2), attn
        self.qkv, self.qkv_bias = weight_of(attn.qkv)
        self.proj, self.proj_bias = weight_of(attn.proj)
        self.fc, self.fc_bias = weight_of(block.mlp.fc)
        self.out, self.out_bias = weight_of(block.mlp.proj)
        self.relu2 = block.mlp.relu2
        T, B, _ = rows.shape
        self.rows = rows
        # (T, B, 3·C) -> (T, B, 3, h, hd) -> (3, B, h, T, hd)
        self.q, self.k, self.v = rows.view(T, B, 3, n_head, -1).permute(2, 1, 3, 0, 4)
        self.plain = attn.q_norm is None and attn.smear is None and not rotary
        self.keys = self.k if self.plain else torch.empty_like(self.k)


class Decoder:
    """Logits of the next token, a call per step: decoder(prompt) (B, T) on an empty cache,
    then decoder(token) (B, 1) for each token after. It holds the keys and values of at most
    block_size positions; `full` says when it holds that many. Rotary and learned positions,
    both norms, QK-norm, smeared keys, ReLU² and the softcap all act as in GPT.forward."""

    def __init__(self, model: GPT, batch: int):
        cfg, w = model.cfg, model.wte.weight
        self.model, self.wte, self.batch = model, w, batch
        self.n_embd, self.block_size = cfg.n_embd, cfg.block_size
        # one allocation for every layer's cache: (n_layer, block_size, B, 3·C)
        rows = torch.empty(cfg.n_layer, cfg.block_size, batch, 3 * cfg.n_embd, dtype=w.dtype,
                           device=w.device)
        self.layers = [Layer(b, r, cfg.n_head, model.wpe is None)
                       for b, r in zip(model.blocks, rows.unbind(0))]
        self.ln_f = norm_of(model.ln_f)
        # (block_size, 1, C): the position table broadcast over the batch
        self.wpe = model.wpe.weight.unsqueeze(1) if model.wpe is not None else None
        self.pos = 0  # positions cached
        # one token's MLP hidden state (B, 4·C), and the transposed view GELU takes
        self.hidden = torch.empty(batch, 4 * cfg.n_embd, dtype=w.dtype, device=w.device)
        self.hidden_t = gelu_view(self.hidden)

    @property
    def full(self) -> bool:
        return self.pos == self.block_size

    @torch.inference_mode()
    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits (B, V) after idx (B, T), the T tokens that follow those cached."""
        B, T = idx.shape
        start, end, C = self.pos, self.pos + T, self.n_embd
        if end > self.block_size:
            raise ValueError(f"sequence of {end} tokens exceeds block_size {self.block_size}")
        if T > 1 and start:
            raise ValueError("several tokens at once only on an empty cache")
        one = T == 1
        # (T·B, C): position-major, as the cache's rows
        x = self.wte.index_select(0, idx.view(-1) if one else idx.t().reshape(-1))
        rotary = None
        if self.wpe is not None:
            if one:
                x.add_(self.wpe[start])
            else:
                x.view(T, B, C).add_(self.wpe.narrow(0, start, T))
        else:
            m = self.model
            rotary = (m.rope_cos.narrow(0, start, T), m.rope_sin.narrow(0, start, T))
        # One loop for every layer, written out: at one token each Python call and attribute
        # look-up on the way costs about what an operation's work does (docs/measurements.md).
        for L in self.layers:
            # the qkv projection writes these positions' queries, keys and values into the cache
            rows = L.rows[start] if one else L.rows.narrow(0, start, T).view(T * B, 3 * C)
            linear(L.ln1(x), L.qkv, L.qkv_bias, out=rows)
            q = L.q.narrow(2, start, T)
            if not L.plain:  # the keys attention uses are not the projected ones: keep them apart
                q, k = L.attn.ready(q, L.k.narrow(2, start, T), rotary, self.key_before(L, start))
                L.keys.narrow(2, start, T).copy_(k)
            y = sdpa(q, L.keys.narrow(2, 0, end), L.v.narrow(2, 0, end), is_causal=not one)
            # (B, h, T, hd) -> (T, B, h, hd) -> (T·B, C): position-major again
            x.addmm_(y.view(B, C) if one else y.permute(2, 0, 1, 3).reshape(T * B, C), L.proj)
            if L.proj_bias is not None:
                x.add_(L.proj_bias)
            h = linear(L.ln2(x), L.fc, L.fc_bias, out=self.hidden if one else None)
            if L.relu2:
                torch.relu_(h).square_()
            else:
                h_t = self.hidden_t if one else gelu_view(h)
                F.gelu(h_t, out=h_t)
            x.addmm_(h, L.out)
            if L.out_bias is not None:
                x.add_(L.out_bias)
        self.pos = end
        return self.model.logits(self.ln_f(x if one else x[-B:]))  # the last position's rows

    @staticmethod
    def key_before(L: Layer, start: int) -> torch.Tensor | None:
        """What smearing mixes into the key at start: the one before it, normed as attention
        norms keys (None at the start of a sequence, or without smearing)."""
        if L.attn.smear is None or not start:
            return None
        before = L.k.narrow(2, start - 1, 1)
        return before if L.attn.k_norm is None else L.attn.k_norm(before)
