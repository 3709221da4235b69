"""Autoregressive sampling: temperature, top-k, top-p, one token after another.

With the cache of keys and values (decode.py) each new token costs one position's worth of
compute instead of a forward pass over the whole context. Without it (use_cache=False) every
step recomputes the full window, as nanoGPT does; tests check both give the same tokens.
"""
from __future__ import annotations

from typing import Iterator

import torch

from ..nn.decode import Decoder
from ..nn.gpt import GPT


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


def stream(model: GPT, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
           top_k: int = 0, top_p: float = 1.0, seed: int | None = None,
           use_cache: bool = True) -> Iterator[torch.Tensor]:
    """Yield (B, 1) new tokens one step at a time after the prompt idx (B, T).

    The prompt must fit the context (callers crop or refuse longer ones). Past
    block_size the window slides: without the cache each step sees the last
    block_size tokens; with it, the cache is rebuilt from the last half-block
    when it fills, which keeps decoding cheap but sees a shorter window.
    """
    return fill(model, with_room(idx, max_new_tokens), idx.size(1), temperature, top_k, top_p,
                seed, use_cache)


def with_room(idx: torch.Tensor, new: int) -> torch.Tensor:
    """(B, T + new): the prompt idx (B, T), then room for the new tokens."""
    tokens = torch.empty(idx.size(0), idx.size(1) + new, dtype=idx.dtype, device=idx.device)
    tokens[:, :idx.size(1)] = idx
    return tokens


@torch.inference_mode()
def fill(model: GPT, tokens: torch.Tensor, start: int, temperature: float = 1.0, top_k: int = 0,
         top_p: float = 1.0, seed: int | None = None,
         use_cache: bool = True) -> Iterator[torch.Tensor]:
    """Sample tokens[:, start:] one position at a time after the prompt tokens[:, :start],
    in place, yielding each (B, 1): the caller keeps one buffer, not a tensor per token."""
    block = model.cfg.block_size
    if start > block:
        raise ValueError(f"prompt of {start} tokens is longer than the context ({block})")
    gen = None
    if seed is not None:
        gen = torch.Generator(device=tokens.device).manual_seed(seed)
    decoder, nxt = None, None
    for end in range(start, tokens.size(1)):
        if not use_cache:
            logits = model(tokens[:, max(0, end - block):end])[0][:, -1]
        elif decoder is None or decoder.full:
            begin = end - block // 2 if decoder is not None else 0
            decoder = Decoder(model, tokens.size(0))
            logits = decoder(tokens[:, begin:end])
        else:
            logits = decoder(nxt)
        nxt = sample_next(logits, temperature, top_k, top_p, gen)
        tokens[:, end:end + 1] = nxt
        yield nxt


def generate(model: GPT, idx: torch.Tensor, max_new_tokens: int, **kw) -> torch.Tensor:
    """The prompt followed by max_new_tokens sampled tokens, (B, T + new)."""
    tokens = with_room(idx, max_new_tokens)
    for _ in fill(model, tokens, idx.size(1), **kw):
        pass
    return tokens
