"""Few-shot scoring: every metric from one teacher-forced forward pass over prompt + target.

Schaeffer et al. 2023: exact match turns smooth progress into a sudden jump,
so it is reported next to continuous metrics of the same pass (target
log-likelihood per character, per-character accuracy), next to the exact match
that per-character accuracy predicts (exact_from_chars) and the chance that
sampling at temperature 1 writes the target (the product of its characters'
probabilities, which is not greedy exact match), with the number of items
(resolution 1/items), 95% intervals and the chance level of the task at that k.

evaluate_tasks() scores every task at every k in one batched pass: the instrument the
few-shot and emergence studies both run.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from .tasks import KS, TASKS, Prompt, build_prompts, chance

Z95 = 1.959963984540054  # two-sided 95% normal quantile
# Logits held per forward pass (128 MiB of float32): a char vocabulary never reaches it, GPT-2's
# 50k tokens would need gigabytes at the default batch size.
LOGITS_BUDGET = 1 << 25
# On a GPU, 2 GiB: at GPT-2's vocabulary the CPU's budget allows 2 windows a pass, while a GPU
# has the memory for many more and pays a fixed launch cost for each pass.
GPU_LOGITS_BUDGET = 1 << 29


def batch_rows(length: int, vocab: int, most: int, device: str = "cpu") -> int:
    """Sequences of this length per forward pass: at most `most`, and within the device's
    budget of logits."""
    budget = GPU_LOGITS_BUDGET if device.startswith("cuda") else LOGITS_BUDGET
    return max(1, min(most, budget // (length * vocab)))


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion: unlike p ± z·se it stays inside [0, 1] and is
    not zero-width at 0 of n or n of n, which is where few-shot scores of small models live."""
    if n == 0:
        return 0.0, 1.0
    p, z2 = successes / n, z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_ci(values: np.ndarray) -> tuple[float, float]:
    """Normal-approximation 95% interval of a mean (items are independent draws)."""
    m = float(np.mean(values))
    half = Z95 * float(np.std(values, ddof=1)) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return m - half, m + half


def mean_diff_ci(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Normal-approximation 95% interval of mean(x) - mean(y) for independent samples."""
    d = float(np.mean(x) - np.mean(y))
    half = Z95 * math.sqrt(np.var(x, ddof=1) / len(x) + np.var(y, ddof=1) / len(y))
    return d - half, d + half


def newcombe_diff(x: np.ndarray, y: np.ndarray, paired: bool) -> tuple[float, float]:
    """95% interval of mean(x) - mean(y) for 0/1 outcomes from the two Wilson intervals
    (Newcombe 1998, method 10 for paired and independent proportions). Paired (x[i] and y[i] on
    one item), the phi correlation of the pairs enters; it is taken as 0 where undefined."""
    px, py = float(np.mean(x)), float(np.mean(y))
    lx, ux = wilson(int(np.sum(x)), len(x))
    ly, uy = wilson(int(np.sum(y)), len(y))
    phi = 0.0
    if paired and np.std(x) > 0 and np.std(y) > 0:
        phi = float(np.corrcoef(x, y)[0, 1])
    below = math.sqrt((px - lx) ** 2 - 2 * phi * (px - lx) * (uy - py) + (uy - py) ** 2)
    above = math.sqrt((ux - px) ** 2 - 2 * phi * (ux - px) * (py - ly) + (py - ly) ** 2)
    return px - py - below, px - py + above


def bootstrap_ci(values: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of the mean of values. Given per-item differences of
    two conditions on the same items, it is the paired interval of the difference."""
    values = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = np.array([values[rng.integers(0, len(values), len(values))].mean()
                      for _ in range(n_boot)])
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def score_logits(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> dict:
    """Per-item scores where logits[b, t] predicts targets[b, t] and mask marks the target
    positions: summed log-probability (nats), greedy hits, target length, exact match."""
    logp = logits.float().log_softmax(-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    # where() rather than a product: a hand-made -inf outside the mask must not become NaN
    logprob = torch.where(mask, logp, torch.zeros_like(logp)).sum(1)
    hits = ((logits.argmax(-1) == targets) & mask).sum(1)
    n_tokens = mask.sum(1)
    return {"logprob": logprob.double().cpu().numpy(), "correct": hits.cpu().numpy(),
            "n_tokens": n_tokens.cpu().numpy(), "exact": (hits == n_tokens).cpu().numpy()}


def summarize(scores: dict, n_chars: np.ndarray) -> dict:
    """Aggregate per-item scores into the reported numbers, keeping the per-item exact match
    and log-likelihood so gains and trends can be bootstrapped later from the JSON alone."""
    exact = scores["exact"].astype(np.float64)
    loglik = scores["logprob"] / n_chars
    char_accuracy = float(np.mean(scores["correct"] / scores["n_tokens"]))
    n = len(exact)
    return {
        "n": n, "resolution": 1 / n,
        "exact_match": float(exact.mean()), "exact_ci": wilson(int(exact.sum()), n),
        "loglik_per_char": float(loglik.mean()), "loglik_ci": mean_ci(loglik),
        "char_accuracy": char_accuracy,
        # Schaeffer et al.'s point: the greedy exact match that char_accuracy p predicts if
        # every target character is right independently, p^L_i for an item of L_i scored tokens
        # (its end of line included), averaged over items rather than p^(mean L): lengths vary
        # within a task (names of 3-10 letters) and p^L is convex in L
        "exact_from_chars": float(np.mean(char_accuracy ** scores["n_tokens"])),
        # the chance that sampling at temperature 1 writes the target; greedy exact match follows
        # char_accuracy instead (the key keeps its name so older results.json still read)
        "predicted_exact": float(np.mean(np.exp(scores["logprob"]))),
        "items": {"exact": exact.astype(int).tolist(), "loglik": np.round(loglik, 5).tolist()},
    }


def encode(tokenizer, prompt: Prompt) -> tuple[list[int], int]:
    """Tokens of context + target, and how many of them are target."""
    context, target = tokenizer.encode(prompt.context), tokenizer.encode(prompt.target)
    return context + target, len(target)


def score_prompts(model, tokenizer, prompts: list[Prompt], batch_size: int = 64,
                  device: str = "cpu") -> dict:
    """Teacher-forced scores of every prompt, in the order given.

    Prompts are sorted by length and right-padded in batches: a causal model's logits at a
    position do not depend on what follows it, so padding changes nothing but the cost.
    Sorted, the longest prompt of a batch of batch_size is its last; the budget is set by it.
    """
    encoded = [encode(tokenizer, p) for p in prompts]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    out = {key: np.zeros(len(prompts), dtype=dtype) for key, dtype in
           (("logprob", np.float64), ("correct", np.int64), ("n_tokens", np.int64),
            ("exact", bool))}
    start = 0
    while start < len(order):
        longest = len(encoded[order[min(start + batch_size, len(order)) - 1]][0])
        batch = order[start:start + batch_rows(longest, tokenizer.vocab_size, batch_size,
                                               str(device))]
        start += len(batch)
        T = max(len(encoded[i][0]) for i in batch) - 1
        idx = torch.zeros(len(batch), T, dtype=torch.long)
        targets, mask = torch.zeros_like(idx), torch.zeros(len(batch), T, dtype=torch.bool)
        for row, i in enumerate(batch):
            tokens, n_target = encoded[i]
            idx[row, :len(tokens) - 1] = torch.tensor(tokens[:-1])
            targets[row, :len(tokens) - 1] = torch.tensor(tokens[1:])
            mask[row, len(tokens) - 1 - n_target:len(tokens) - 1] = True
        with torch.inference_mode():
            logits, _ = model(idx.to(device))
        # scored where the logits are: (B, T, vocab) is gigabytes to copy at GPT-2's vocab
        for key, values in score_logits(logits, targets.to(device), mask.to(device)).items():
            out[key][batch] = values
    return out


@dataclasses.dataclass(frozen=True)
class Options:
    """How the few-shot instruments run: items per case, seed, tasks, ICL windows, batch,
    device, the ks."""
    items: int = 200
    seed: int = 0
    tasks: tuple[str, ...] = tuple(TASKS)
    windows: int = 2000
    batch_size: int = 64
    device: str = "cpu"
    ks: tuple[int, ...] = KS


def prompt_groups(tokenizer, text: str, block_size: int, opts: Options):
    """(task, k, shuffled, prompts) for every evaluated case, and the k skipped per task
    because some prompt would not fit in the context."""
    groups, skipped = [], {}
    for name in opts.tasks:
        task, skipped[name] = TASKS[name], []
        for k in opts.ks:
            variants = (False, True) if k >= 2 and not task.recall else (False,)
            cases = [(s, build_prompts(task, k, opts.items, opts.seed, text, s)) for s in variants]
            longest = max(len(encode(tokenizer, p)[0]) - 1 for _, ps in cases for p in ps)
            if longest > block_size:
                skipped[name].append(k)
                continue
            groups += [(name, k, s, ps) for s, ps in cases]
    return groups, skipped


def evaluate_tasks(model, tokenizer, text: str, opts: Options) -> dict:
    """Summaries per task, k and control, from one batched pass over all prompts at once
    (sorting the whole set by length packs the batches best)."""
    groups, skipped = prompt_groups(tokenizer, text, model.cfg.block_size, opts)
    flat = [p for *_, ps in groups for p in ps]
    scores = score_prompts(model, tokenizer, flat, opts.batch_size, opts.device) if flat else {}
    out = {name: {"k": {}, "shuffled": {}, "skipped_k": skipped[name]} for name in opts.tasks}
    start = 0
    for name, k, shuffled, prompts in groups:
        part = {key: v[start:start + len(prompts)] for key, v in scores.items()}
        n_chars = np.array([len(p.target) for p in prompts])
        summary = summarize(part, n_chars) | {"chance": chance(TASKS[name], k, prompts)}
        out[name]["shuffled" if shuffled else "k"][str(k)] = summary
        start += len(prompts)
    return out
