"""The labeller's rankings: K completions per prompt from the SFT policy, each rated by the
labeller (task.py: its score to the nearest tenth). They train every reward model and DPO, and
test the reward models on held-out prompts. InstructGPT's raters ranked outputs of several
models; here one policy samples them all, at temperature 1."""
from __future__ import annotations


from ...files import read_json, write_json
from .context import Context
from .rollout import decode, encode_prompts, sample
from .task import Instruction, grade, rating

CHUNK = 250  # prompts decoded at once (the cache is preallocated to the whole context)


def completions(ctx: Context, policy, items: list[Instruction], seed: int) -> list[str]:
    """One completion per item, sampled in chunks with seeds fixed by (seed, chunk)."""
    texts = []
    for start in range(0, len(items), CHUNK):
        prompts = encode_prompts(ctx.tok, items[start:start + CHUNK])
        r = sample(policy, prompts, ctx.cfg.max_new_tokens, seed * 1_000_003 + start, ctx.newline)
        texts += decode(ctx.tok, r)
    return texts


def ranked(ctx: Context, policy, items: list[Instruction], seed: int) -> list[dict]:
    """For each item: its K completions and the labeller's rating of each."""
    draws = [completions(ctx, policy, items, seed + j) for j in range(ctx.cfg.k)]
    rows = []
    for i, item in enumerate(items):
        texts = [draw[i] for draw in draws]
        rows.append({"completions": texts,
                     "ratings": [rating(grade(t, item.keyword, ctx.vocabulary)["score"])
                                 for t in texts]})
    return rows


def run_comparisons(ctx: Context) -> dict:
    """comparisons.json: {"train": [...], "test": [...]}, rows aligned with ctx.rm_items and
    ctx.rm_test_items."""
    path = ctx.root / "comparisons.json"
    if path.exists():
        return read_json(path, keys=("train", "test"))
    policy, _ = ctx.sft_model(ctx.cfg.policy_size)
    data = {"train": ranked(ctx, policy, ctx.rm_items, ctx.cfg.seed),
            "test": ranked(ctx, policy, ctx.rm_test_items, ctx.cfg.seed + 7919)}
    write_json(path, data)
    return data
