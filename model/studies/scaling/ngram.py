"""n-gram baselines on the same split: where a curve stops being about counting.

A model that only learned unigram, bigram or trigram statistics would score
these losses on the held-out text. The scaling plot draws them as reference
lines: a ladder that sits near the bigram line is measuring how fast models
leave the n-gram regime, not L(N).
"""
from __future__ import annotations

import numpy as np

ADD_K = 1.0  # Laplace smoothing: held-out contexts and symbols never seen in training


def _keys(tokens: np.ndarray, n: int, vocab: int) -> np.ndarray:
    """One int64 key per window of n consecutive tokens."""
    key = np.zeros(len(tokens) - n + 1, dtype=np.int64)
    for i in range(n):
        key = key * vocab + tokens[i:len(tokens) - n + 1 + i]
    return key


def _lookup(table_keys: np.ndarray, table_counts: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Counts of keys in a sorted (keys, counts) table; 0 where absent."""
    pos = np.clip(np.searchsorted(table_keys, keys), 0, len(table_keys) - 1)
    return np.where(table_keys[pos] == keys, table_counts[pos], 0)


def ngram_loss(train: np.ndarray, val: np.ndarray, n: int, vocab: int, k: float = ADD_K) -> float:
    """Mean negative log-likelihood (nats per token) of val under an add-k n-gram model of train."""
    if vocab ** n >= 2 ** 62:
        raise ValueError(f"a {n}-gram key over {vocab} symbols does not fit in 64 bits")
    train, val = train.astype(np.int64), val.astype(np.int64)
    full_keys, full_counts = np.unique(_keys(train, n, vocab), return_counts=True)
    num = _lookup(full_keys, full_counts, _keys(val, n, vocab))
    if n == 1:
        den = np.full(len(num), len(train))
    else:
        ctx_keys, ctx_counts = np.unique(_keys(train[:-1], n - 1, vocab), return_counts=True)
        den = _lookup(ctx_keys, ctx_counts, _keys(val[:-1], n - 1, vocab))
    return float(-np.mean(np.log((num + k) / (den + k * vocab))))


def baselines(train: np.ndarray, val: np.ndarray, vocab: int) -> dict[str, float]:
    """Unigram, bigram and trigram held-out losses (trigram only where keys fit)."""
    names = {1: "unigram", 2: "bigram", 3: "trigram"}
    return {names[n]: ngram_loss(train, val, n, vocab) for n in names if vocab ** n < 2 ** 62}
