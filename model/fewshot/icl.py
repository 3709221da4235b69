"""In-context instruments of Olsson et al. 2022: ICL score, loss against position,
prefix-matching heads and the loss on a repeated random sequence or repeated held-out text.

The model's attention uses F.scaled_dot_product_attention, which never forms the
attention matrix; attention_maps() recomputes it from each block's ln1 output with
that block's own projections, norms and rotary tables.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from ..gpt import GPT, apply_rotary
from .metrics import batch_rows, bootstrap_ci

# Best head's prefix-matching score at which induction heads count as formed. A judgement:
# Olsson et al.'s induction heads attend mostly to the matched token; uniform attention
# scores the chance level of induction_probe(), under 0.01 for a 256-token context.
INDUCTION_FORMED = 0.3
WEAK_FACTOR = 10  # "weak" between 10x chance and INDUCTION_FORMED


def icl_positions(block_size: int) -> tuple[int, int]:
    """Olsson et al.'s tokens 50 and 500 of 512, scaled to the context: a 10x ratio."""
    late = min(block_size - 1, round(block_size * 500 / 512))
    return max(1, round(late / 10)), late


def loss_by_position(model: GPT, tokens: np.ndarray, n_windows: int = 2000,
                     batch_size: int = 16, device: str = "cpu") -> np.ndarray:
    """Per-token loss (n_windows, block_size) on full-context windows spread evenly over the
    held-out tokens; row w, column t is the loss of predicting token t+1 from t+1 tokens."""
    T = model.cfg.block_size
    if len(tokens) < T + 1:
        raise UserError(f"the held-out text has {len(tokens)} tokens, fewer than one context "
                        f"({T} + 1); the ICL score needs a longer text")
    offsets = np.linspace(0, len(tokens) - T - 1, n_windows).astype(np.int64)
    batch_size = batch_rows(T, model.cfg.vocab_size, batch_size)
    losses = np.empty((n_windows, T), dtype=np.float32)
    for start in range(0, n_windows, batch_size):
        chunk = np.stack([tokens[o:o + T + 1] for o in offsets[start:start + batch_size]])
        chunk = torch.from_numpy(chunk.astype(np.int64)).to(device)
        with torch.inference_mode():
            logits, _ = model(chunk[:, :-1])
            loss = F.cross_entropy(logits.float().transpose(1, 2), chunk[:, 1:], reduction="none")
        losses[start:start + len(chunk)] = loss.cpu().numpy()
    return losses


def icl_score(losses: np.ndarray, seed: int = 0) -> dict:
    """Mean loss at the late position minus at the early one, with a bootstrap 95% CI over
    windows. Negative means the model predicts better with more context."""
    early, late = icl_positions(losses.shape[1])
    diff = losses[:, late].astype(np.float64) - losses[:, early]
    return {"score": float(diff.mean()), "ci": bootstrap_ci(diff, seed=seed), "early": early,
            "late": late, "windows": len(diff)}


def attention_probs(attn, x: torch.Tensor, rotary=None) -> torch.Tensor:
    """Causal attention probabilities (B, n_head, T, T) of a CausalSelfAttention on its input,
    recomputed step by step as its forward does them."""
    B, T, _ = x.shape
    q, k, _ = attn.qkv(x).view(B, T, 3, attn.n_head, attn.head_dim).unbind(2)
    if attn.q_norm is not None:
        q, k = attn.q_norm(q), attn.k_norm(k)
    q, k = q.transpose(1, 2), k.transpose(1, 2)
    if rotary is not None:
        q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
    scores = (q @ k.transpose(-2, -1)).float() / math.sqrt(attn.head_dim)
    causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
    return scores.masked_fill(~causal, float("-inf")).softmax(-1)


def attention_maps(model: GPT, idx: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits of idx and every layer's attention probabilities, from one forward pass."""
    inputs: list[torch.Tensor] = []
    hooks = [b.ln1.register_forward_hook(lambda _m, _i, out: inputs.append(out))
             for b in model.blocks]
    try:
        with torch.inference_mode():
            logits, _ = model(idx)
            T = idx.size(1)
            rotary = (model.rope_cos[:T], model.rope_sin[:T]) if model.cfg.pos == "rope" else None
            maps = [attention_probs(b.attn, x, rotary) for b, x in zip(model.blocks, inputs)]
    finally:
        for h in hooks:
            h.remove()
    return logits, maps


def prefix_matching(maps: list[torch.Tensor], L: int) -> torch.Tensor:
    """Per layer and head (n_layer, n_head): mean attention from each position i of the second
    copy of an L-token sequence to position i - L + 1, the token after the current token's
    occurrence in the first copy."""
    query = torch.arange(L, 2 * L, device=maps[0].device)
    return torch.stack([m[:, :, query, query - L + 1].mean(dim=(0, 2)) for m in maps])


def halves_loss(logits: torch.Tensor, idx: torch.Tensor, L: int) -> list[float]:
    """Mean loss on each copy of sequences idx (B, 2L) made of one L-token half twice over:
    first copy, tokens 1..L-1; second copy, tokens L+1..2L-1, each with an earlier occurrence."""
    loss = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), idx[:, 1:], reduction="none")
    return [loss[:, :L - 1].mean().item(), loss[:, L:].mean().item()]


def induction_probe(model: GPT, n_seq: int = 16, seed: int = 0, device: str = "cpu") -> dict:
    """Prefix-matching score per head and the loss on both halves of a repeated random sequence.

    Each sequence is L distinct random tokens (L = min(vocab, block_size / 2)) twice over, so
    every token of the second half has exactly one earlier occurrence. A head's score is its
    mean attention from a second-half token to the token right after that earlier occurrence;
    chance is the mean weight 1/(i+1) that uniform causal attention gives any one position.
    """
    V, T = model.cfg.vocab_size, model.cfg.block_size
    L = min(V, T // 2)
    g = torch.Generator().manual_seed(seed)
    half = torch.stack([torch.randperm(V, generator=g)[:L] for _ in range(n_seq)])
    idx = torch.cat([half, half], dim=1).to(device)
    logits, maps = attention_maps(model, idx)
    scores = prefix_matching(maps, L)
    first, second = halves_loss(logits, idx, L)
    chance = float((1.0 / torch.arange(L + 1, 2 * L + 1, dtype=torch.float64)).mean())
    best = float(scores.max())
    layer, head = divmod(int(scores.argmax()), scores.size(1))
    formed = "yes" if best >= INDUCTION_FORMED else "weak" if best >= WEAK_FACTOR * chance else "no"
    return {"prefix_matching": scores.cpu().numpy().round(5).tolist(), "best": best,
            "best_head": [layer, head], "chance": chance, "formed": formed, "length": L,
            "repeat_loss": [first, second], "sequences": n_seq}


def text_repeat_loss(model: GPT, tokens: np.ndarray, n_seq: int = 64,
                     device: str = "cpu") -> list[float]:
    """Mean loss on the first and on the second copy of held-out text repeated once (half a
    context each). A model that copies from its context predicts the second copy almost for
    free. Random tokens (induction_probe) are far from what a char model was trained on;
    this repeat is in its distribution, so no copying here means none at all."""
    L = model.cfg.block_size // 2
    offsets = np.linspace(0, len(tokens) - L, n_seq).astype(np.int64)
    half = torch.from_numpy(np.stack([tokens[o:o + L] for o in offsets]).astype(np.int64))
    idx = torch.cat([half, half], dim=1).to(device)
    with torch.inference_mode():
        logits, _ = model(idx)
    return halves_loss(logits, idx, L)
