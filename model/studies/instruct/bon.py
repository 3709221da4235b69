"""Best-of-n beside PPO (Gao et al. 2022): the other way to optimise against a reward model.
The SFT policy answers a prompt n times, the reward model (the proxy) keeps the answer it scores
highest, and the labeller grades that one (the gold score). Its KL from SFT has a closed form,
log n − (n − 1)/n (Gao et al.'s, after Stiennon et al. 2020), so its d = √KL is not estimated.

Every n reads the same max(n) answers a prompt through the unbiased estimator over all n-subsets
of them that Gao et al. use: with the answers sorted by the proxy's score, the i-th lowest is the
best of a random n-subset with probability C(i − 1, n − 1)/C(N, n). So all n and all reward
models are graded on one set of answers, and the curves differ by what was picked, not by which
answers happened to be drawn.
"""
from __future__ import annotations

from math import comb

import numpy as np

from ...files import read_json, write_json
from .comparisons import completions
from .context import Context
from .models import load_scalar
from .rm import scores_of
from .rollout import with_completions
from .task import grade

SEED = 2718  # answer j of every prompt samples with SEED + j


def bon_kl(n) -> np.ndarray:
    """KL(best-of-n ‖ SFT) in nats: log n − (n − 1)/n, 0 at n = 1."""
    n = np.asarray(n, dtype=float)
    return np.log(n) - (n - 1) / n


def subset_weights(total: int, n: int) -> np.ndarray:
    """(total,): the chance that the i-th lowest of total answers is the highest of a random
    n-subset of them, C(i − 1, n − 1)/C(total, n); the weights sum to 1."""
    return np.array([comb(i, n - 1) for i in range(total)], dtype=float) / comb(total, n)


def best_of_n(proxy: np.ndarray, gold: np.ndarray, n: int) -> np.ndarray:
    """(P,): each prompt's expected gold score of the answer the proxy picks out of n, over all
    n-subsets of its answers; proxy and gold are (P, N), N ≥ n. (Proxy ties are broken by the
    answers' order, as the sort leaves them.)"""
    order = np.argsort(proxy, axis=1, kind="stable")
    return np.take_along_axis(gold, order, 1) @ subset_weights(proxy.shape[1], n)


def bon_curve(data: dict, size: str) -> tuple[np.ndarray, np.ndarray]:
    """d = √KL at each n of bon.json, and the per-prompt gold score of best-of-n against the
    reward model of size, (P, len(n))."""
    proxy, gold = np.asarray(data["proxy"][size]), np.asarray(data["gold"])
    return (np.sqrt(bon_kl(data["n"])),
            np.stack([best_of_n(proxy, gold, n) for n in data["n"]], 1))


def proxy_scores(ctx: Context, size: str, texts: list[list[str]]) -> list[list[float]]:
    """The reward model of size's score of every answer, [prompt][answer], normalised as PPO
    sees it (by its mean and SD on its training completions)."""
    rm, _ = load_scalar(ctx.stage(f"rm-{size}") / "ckpt.pt")
    summary = ctx.needs(f"rm-{size}", f"tinygpt rm --size={size}")
    items = [it for it, row in zip(ctx.eval_items, texts) for _ in row]
    r = with_completions(ctx.tok, items, [t for row in texts for t in row],
                         ctx.cfg.max_new_tokens)
    raw = scores_of(rm, r).view(len(texts), -1).numpy()
    return np.round((raw - summary["reward_mean"]) / summary["reward_std"], 5).tolist()


def run_bon(ctx: Context) -> dict:
    """bon.json: max(n) answers of the SFT policy to every held-out prompt, the labeller's
    grade of each ("gold", [prompt][answer]) and each reward model's score ("proxy", by size).
    The curves are computed from it when the report is drawn."""
    path = ctx.root / "bon.json"
    if path.exists():
        return read_json(path, keys=("n", "gold", "proxy"))
    cfg, items = ctx.cfg, ctx.eval_items
    policy, _ = ctx.sft_model(cfg.policy_size)
    draws = [completions(ctx, policy, items, SEED + j) for j in range(max(cfg.bon_ns()))]
    texts = [list(row) for row in zip(*draws)]
    gold = [[grade(t, it.keyword, ctx.vocabulary)["score"] for t in row]
            for row, it in zip(texts, items)]
    data = {"n": cfg.bon_ns(), "gold": gold,
            "proxy": {size: proxy_scores(ctx, size, texts) for size in cfg.sizes()}}
    write_json(path, data)
    return data
