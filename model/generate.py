"""Autoregressive decoding with a KV cache; temperature, top-k, top-p sampling.

With the cache each new token costs one position's worth of compute instead of
a forward pass over the whole context. Without it (use_cache=False) every step
recomputes the full window, as nanoGPT does; tests check both give the same tokens.
"""
from __future__ import annotations

from typing import Iterator

import torch

from .gpt import GPT


class KVCache:
    """Every layer's keys and values, preallocated to the context, and one position: how many
    tokens are cached (nanochat's engine keeps one the same way). Layer i writes its keys at
    pos; the model advances pos once its last layer has run."""

    def __init__(self, model: GPT, batch: int, dtype: torch.dtype):
        cfg = model.cfg
        shape = (cfg.n_layer, batch, cfg.n_head, cfg.block_size, cfg.n_embd // cfg.n_head)
        k = torch.empty(shape, device=model.wte.weight.device, dtype=dtype)
        v = torch.empty_like(k)
        # each layer's view, indexed once here rather than on every token
        self.k, self.v = k.unbind(0), v.unbind(0)  # n_layer x (B, h, block_size, hd)
        self.pos = 0
        # smeared keys: each layer's latest key before smearing
        self.last_key: list[torch.Tensor | None] = [None] * cfg.n_layer

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store layer's keys and values (B, h, T, hd) at pos; all of that layer's so far."""
        end = self.pos + k.size(2)
        keys, values = self.k[layer], self.v[layer]
        keys[:, :, self.pos:end] = k
        values[:, :, self.pos:end] = v
        return keys[:, :, :end], values[:, :, :end]

    def advance(self, n: int) -> None:
        self.pos += n

    @property
    def full(self) -> bool:
        return self.pos == self.k[0].size(2)


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0,
                top_p: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per row from last-position logits (B, V); temperature 0 is greedy."""
    if temperature <= 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits.float() / temperature
    if 0 < top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        # Drop a token once the mass before it already reaches top_p; the most
        # likely token is always kept.
        drop = (cum - sorted_logits.softmax(-1)) >= top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator)


@torch.inference_mode()
def stream(model: GPT, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
           top_k: int = 0, top_p: float = 1.0, seed: int | None = None,
           use_cache: bool = True) -> Iterator[torch.Tensor]:
    """Yield (B, 1) new tokens one step at a time after the prompt idx (B, T).

    The prompt must fit the context (callers crop or refuse longer ones). Past
    block_size the window slides: without the cache each step sees the last
    block_size tokens; with it, the cache is rebuilt from the last half-block
    when it fills, which keeps decoding cheap but sees a shorter window.
    """
    block = model.cfg.block_size
    if idx.size(1) > block:
        raise ValueError(f"prompt of {idx.size(1)} tokens is longer than the context ({block})")
    gen = None
    if seed is not None:
        gen = torch.Generator(device=idx.device).manual_seed(seed)
    dtype = model.wte.weight.dtype
    cache, logits = None, None
    # the tokens so far, written in place: a torch.cat per token would cost a fixed amount each
    tokens = torch.empty(idx.size(0), idx.size(1) + max_new_tokens, dtype=idx.dtype,
                         device=idx.device)
    tokens[:, :idx.size(1)] = idx
    for end in range(idx.size(1), tokens.size(1)):
        idx = tokens[:, :end]
        if not use_cache:
            logits, _ = model(idx[:, -block:])
        elif cache is None or cache.full:
            window = idx[:, -(block // 2):] if cache is not None else idx
            cache = KVCache(model, idx.size(0), dtype)
            logits, _ = model(window, cache=cache)
        else:
            logits, _ = model(idx[:, -1:], cache=cache)
        nxt = sample_next(logits[:, -1], temperature, top_k, top_p, gen)
        tokens[:, end:end + 1] = nxt
        yield nxt


def generate(model: GPT, idx: torch.Tensor, max_new_tokens: int, **kw) -> torch.Tensor:
    """The prompt followed by max_new_tokens sampled tokens, (B, T + new)."""
    new = list(stream(model, idx, max_new_tokens, **kw))
    return torch.cat([idx, *new], dim=1)
