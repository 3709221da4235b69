"""Data shapes: what the training windows look like, beyond plain natural text.

In-context copying (induction heads, Olsson et al. 2022) forms on natural text only
after billions of tokens: within a 256-character window of prose a model rarely
gains by looking back and copying. Two shapes make copying pay, and every report
that trains on them names them (name()):

- planted repeats (repeat_spans): a fraction of the natural windows get one span
  copied to a later place in the same window ("bursty" text, Chan et al. 2022);
- synthetic copy sequences (synthetic): a fraction of the windows are replaced by
  uniformly random tokens with one segment copied later, the mechanism's cleanest
  case: nothing but the copy can be predicted;
- unique copies (unique_copies): synthetic copy sequences whose segment's tokens are
  distinct and occur nowhere else in the sequence. With a character vocabulary a plain
  copy is ambiguous (a random token recurs by chance about once in 84 positions, so "what
  followed it last time" has several answers); in a unique copy each copied token occurred
  exactly once before, so copying the token after that occurrence is always right. The
  segment's place is random, as in a plain copy: a fixed offset would let a head copy by
  position alone, without matching tokens.

A curriculum (synthetic_until, TrainConfig.data_shape) trains on synthetic copy sequences only
for the first steps, then on the shares above.

Validation windows are never reshaped: the val loss stays natural held-out text.
"""
from __future__ import annotations

import numpy as np
import torch


def name(repeat_spans: float = 0.0, synthetic: float = 0.0,
         unique_copies: float = 0.0, synthetic_until: int = 0) -> str:
    """The data shape in words, as every report and caption gives it."""
    if synthetic_until:
        return (f"synthetic copy sequences only for the first {synthetic_until:,} steps, then "
                + name(repeat_spans, synthetic, unique_copies))
    parts = [f"{f:.0%} {what}" for f, what in ((synthetic, "synthetic copy sequences"),
                                                (unique_copies, "unique-token copy sequences"))
             if f > 0]
    natural = 1 - synthetic - unique_copies
    if natural <= 1e-9:
        return " + ".join(parts).removeprefix("100% ") + " only" * (len(parts) == 1)
    text = "natural text"
    if repeat_spans > 0:
        text += f" ({repeat_spans:.0%} of windows with a planted repeat)"
    return " + ".join(parts + [f"{natural:.0%} {text}" if parts else text])


def repeat_span(window: torch.Tensor, rng: np.random.Generator) -> None:
    """Copy a random span of the window (1/8 to 1/2 of it) to a later place in it, in place."""
    n = window.numel()
    length = int(rng.integers(max(n // 8, 1), max(n // 2, 1) + 1))
    src = int(rng.integers(0, n - 2 * length + 1))
    dst = int(rng.integers(src + length, n - length + 1))
    window[dst:dst + length] = window[src:src + length].clone()


def segment_length(n: int) -> int:
    """Length of the copied segment of an n-token synthetic sequence: a quarter of it, so
    about a quarter of the targets can be predicted (32 of 128 in the issue's pilot)."""
    return max(n // 4, 2)


def copy_sequence(n: int, vocab: int, rng: np.random.Generator,
                  unique: bool = False) -> tuple[torch.Tensor, int]:
    """n uniformly random tokens whose segment [src, src + L) reappears at [dst, dst + L),
    dst >= src + L; returns the tokens (n,) and dst. Tokens dst+1 .. dst+L-1 can be
    predicted from context, by copying; every other token is chance. unique: the segment's
    L tokens are distinct and the rest are drawn from the other vocab - L (where at least
    one is left), so each copied token has one earlier occurrence."""
    L = segment_length(n)
    if unique and vocab > L:
        chosen = rng.permutation(vocab)
        segment, rest = chosen[:L], chosen[L:]
        tokens = torch.from_numpy(rest[rng.integers(0, len(rest), size=n)])
        src = int(rng.integers(0, n - 2 * L + 1))
        dst = int(rng.integers(src + L, n - L + 1))
        tokens[src:src + L] = tokens[dst:dst + L] = torch.from_numpy(segment)
        return tokens, dst
    tokens = torch.from_numpy(rng.integers(0, vocab, size=n))
    src = int(rng.integers(0, n - 2 * L + 1))
    dst = int(rng.integers(src + L, n - L + 1))
    tokens[dst:dst + L] = tokens[src:src + L].clone()
    return tokens, dst


def copied_targets(n_targets: int, dst: int) -> slice:
    """Which targets y = tokens[1:] of a copy_sequence are copies with their source in
    context: y[t] is tokens[t+1], so tokens dst+1 .. dst+L-1 are y[dst .. dst+L-2]."""
    return slice(dst, dst + segment_length(n_targets + 1) - 1)


def reshape_windows(chunk: torch.Tensor, rng: np.random.Generator, vocab: int,
                    repeat_spans: float = 0.0, synthetic: float = 0.0,
                    unique_copies: float = 0.0) -> None:
    """Apply the data shape to a batch of natural windows (B, T+1), in place: each row gets
    a planted repeat with probability repeat_spans, then one draw u per row makes it a
    synthetic copy sequence when u < synthetic, a unique copy when synthetic <= u <
    synthetic + unique_copies. Nothing is drawn for a fraction of 0, so runs without that shape see exactly
    the batches they saw before it existed."""
    B, n = chunk.shape
    if repeat_spans > 0:
        for row in np.flatnonzero(rng.random(B) < repeat_spans):
            repeat_span(chunk[row], rng)
    if synthetic > 0 or unique_copies > 0:
        u = rng.random(B)
        for row in range(B):
            if u[row] < synthetic:
                chunk[row] = copy_sequence(n, vocab, rng)[0]
            elif u[row] < synthetic + unique_copies:
                chunk[row] = copy_sequence(n, vocab, rng, unique=True)[0]
