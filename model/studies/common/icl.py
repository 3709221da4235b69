"""In-context instruments of Olsson et al. 2022: ICL score, loss against position,
prefix-matching heads and the loss on a repeated random sequence or repeated held-out text.

The attention maps come from the model itself (GPT.attention_maps): this file knows nothing
of how attention is computed.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ...data import shapes
from ...errors import UserError
from ...nn.gpt import GPT
from .task_scoring import batch_rows, bootstrap_ci

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
    batch_size = batch_rows(T, model.cfg.vocab_size, batch_size, str(device))
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


# Olsson et al.'s probe: 25 random tokens, neither the most nor the least common, repeated 4 times.
PROBE_LENGTH, PROBE_REPEATS = 25, 4


def probe_pool(tokens: np.ndarray, vocab: int) -> np.ndarray:
    """Token ids the random probe draws from: those that occur in the held-out text, less the
    most common tenth and the rarest 40% by count. Rare characters (digits, brackets) in a
    random sequence are text the model never saw, and it scores them at 9 nats, far above
    chance; the commonest ones make a random sequence look like prose."""
    counts = np.bincount(tokens, minlength=vocab)
    seen = np.argsort(-counts, kind="stable")[:int((counts > 0).sum())]
    lo = len(seen) // 10
    return seen[lo:max(len(seen) * 6 // 10, lo + PROBE_LENGTH)]


def prefix_targets(T: int, L: int) -> torch.Tensor:
    """(T, T) mask: for each position i of a sequence of period L, the positions just after
    the earlier occurrences of its token (i - L + 1, i - 2L + 1, ...), where an induction
    head attends."""
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    return (j < i) & (j >= 1) & ((i - j + 1) % L == 0)


def prefix_matching(maps: list[torch.Tensor], L: int) -> torch.Tensor:
    """Per layer and head (n_layer, n_head): the attention that positions past the first copy
    of a sequence repeated with period L give to the tokens after their token's earlier
    occurrences, averaged over those positions and the batch."""
    T = maps[0].size(-1)
    mask = prefix_targets(T, L).to(maps[0].device)[L:]  # (T - L, T): rows past the first copy
    return torch.stack([(m[:, :, L:] * mask).sum(-1).mean(dim=(0, 2)) for m in maps])


def halves_loss(logits: torch.Tensor, idx: torch.Tensor,
                L: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each sequence's mean loss on the first copy of sequences idx (B, R·L) made of one L-token
    part repeated R >= 2 times (tokens 1..L-1) and on the later copies (tokens L+1.., each with
    an earlier occurrence of the token before it): two (B,) tensors."""
    loss = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), idx[:, 1:], reduction="none")
    return loss[:, :L - 1].mean(1), loss[:, L:].mean(1)


def induction_probe(model: GPT, pool: np.ndarray, n_seq: int = 16, seed: int = 0,
                    device: str = "cpu") -> dict:
    """Prefix matching per head and the loss on the first and later copies of a random sequence
    of distinct tokens from pool (probe_pool), repeated as Olsson et al. do.

    A head's score is the attention from a token past the first copy to the tokens after its
    earlier occurrences; chance is what uniform causal attention gives those positions.
    copy_gain = first-copy loss minus later-copy loss: the later-copy loss alone also falls
    as the model merely learns which tokens are common.
    """
    L = min(PROBE_LENGTH, len(pool), model.cfg.block_size // 2)
    repeats = min(PROBE_REPEATS, model.cfg.block_size // L)
    rng = np.random.default_rng(seed)
    part = np.stack([rng.choice(pool, size=L, replace=False) for _ in range(n_seq)])
    idx = torch.from_numpy(np.tile(part, repeats).astype(np.int64)).to(device)
    logits, maps = model.attention_maps(idx)
    scores = prefix_matching(maps, L)
    first, later = (part.mean().item() for part in halves_loss(logits, idx, L))
    T = L * repeats
    hits = prefix_targets(T, L)[L:].sum(-1).double()
    chance = float((hits / torch.arange(L + 1, T + 1, dtype=torch.float64)).mean())
    best = float(scores.max())
    layer, head = divmod(int(scores.argmax()), scores.size(1))
    formed = "yes" if best >= INDUCTION_FORMED else "weak" if best >= WEAK_FACTOR * chance else "no"
    return {"prefix_matching": scores.cpu().numpy().round(5).tolist(), "best": best,
            "best_head": [layer, head], "chance": chance, "formed": formed, "length": L,
            "repeats": repeats, "repeat_loss": [first, later], "copy_gain": first - later,
            "sequences": n_seq}


def copy_probe(model: GPT, n_seq: int = 64, seed: int = 0, device: str = "cpu") -> dict:
    """Loss and greedy accuracy on the copied tokens of held-out synthetic copy sequences
    (shapes.copy_sequence: uniformly random tokens, one segment repeated), and the loss on the
    other tokens. Chance is ln(vocab) on both; only a model that copies from its context
    gets below it on the copies."""
    V, n = model.cfg.vocab_size, model.cfg.block_size + 1
    rng = np.random.default_rng([seed, 0xC0B1])  # a stream training never draws
    seqs = [shapes.copy_sequence(n, V, rng) for _ in range(n_seq)]
    idx = torch.stack([t for t, _ in seqs]).to(device)
    copied = torch.zeros(n_seq, n - 1, dtype=torch.bool)
    for row, (_, dst) in enumerate(seqs):
        copied[row, shapes.copied_targets(n - 1, dst)] = True
    with torch.inference_mode():
        logits, _ = model(idx[:, :-1])
    loss = F.cross_entropy(logits.float().transpose(1, 2), idx[:, 1:], reduction="none").cpu()
    hit = (logits.argmax(-1) == idx[:, 1:]).cpu()
    return {"copy_loss": loss[copied].mean().item(), "copy_acc": hit[copied].float().mean().item(),
            "other_loss": loss[~copied].mean().item(), "chance": math.log(V), "sequences": n_seq}


def text_repeat_loss(model: GPT, tokens: np.ndarray, n_seq: int = 64,
                     device: str = "cpu", seed: int = 0) -> dict:
    """Mean loss on the first and on the second copy of held-out text repeated once (half a
    context each), and the gain first - second with a bootstrap 95% interval over the n_seq
    passages. A model that copies from its context predicts the second copy almost for
    free. Random tokens (induction_probe) are far from what a char model was trained on;
    this repeat is in its distribution, so no copying here means none at all."""
    L = model.cfg.block_size // 2
    offsets = np.linspace(0, len(tokens) - L, n_seq).astype(np.int64)
    half = torch.from_numpy(np.stack([tokens[o:o + L] for o in offsets]).astype(np.int64))
    idx = torch.cat([half, half], dim=1).to(device)
    with torch.inference_mode():
        logits, _ = model(idx)
    first, second = halves_loss(logits, idx, L)  # (n_seq,) each
    gain = (first - second).cpu().numpy()
    return {"first": float(first.mean()), "second": float(second.mean()),
            "gain": float(gain.mean()), "gain_ci": bootstrap_ci(gain, seed=seed)}
