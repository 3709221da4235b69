"""The final comparison: every model of the pipeline answers the same held-out prompts
eval_samples times (sampled at temperature 1; answer j of every model with the same seed, so the
models' differences are paired), graded by the labeller, scored by the largest reward model,
measured for KL from SFT and for loss on the held-out plays. results.json keeps every answer's
numbers as a row per prompt, [prompt][answer], so that intervals can treat a prompt's answers
as the one unit they are (they share the prompt)."""
from __future__ import annotations

import numpy as np

from ...files import machine, read_json, write_json
from .context import Context
from .models import frozen, load_policy, load_scalar
from .ppo import ppo_name
from .judge import PARTS, answers, held_out_loss

SEED = 31337  # answer j samples with SEED + j: the first is the one answer of older results


def models(ctx: Context) -> dict[str, str]:
    """Label -> checkpoint of every policy compared, in the order of the pipeline."""
    cfg, largest = ctx.cfg, ctx.cfg.sizes()[-1]
    found = {"base": str(ctx.base(cfg.policy_size)),
             "SFT": str(ctx.stage(f"sft-{cfg.policy_size}") / "ckpt.pt")}
    found[f"PPO (RM {largest})"] = str(ctx.stage(ppo_name(largest)) / "ckpt.pt")
    found[f"PPO-ptx (RM {largest})"] = str(ctx.stage(ppo_name(largest, "ptx")) / "ckpt.pt")
    found["DPO"] = str(ctx.stage("dpo") / "ckpt.pt")
    for size in cfg.sizes():
        found[f"PPO sweep (RM {size})"] = str(ctx.stage(ppo_name(size, "sweep")) / "ckpt.pt")
    return found


def by_prompt(draws: list[dict]) -> dict:
    """answers() of several draws over the same items as JSON rows per item, [item][draw];
    numbers to 5 decimals, far below any difference the report reads, to keep the file small."""
    return {k: [list(row) for row in zip(*(d[k] for d in draws))] if k == "texts"
            else np.round(np.stack([d[k] for d in draws], 1), 5).tolist() for k in draws[0]}


def run_evaluation(ctx: Context) -> dict:
    path = ctx.root / "results.json"
    if path.exists():
        return read_json(path)
    cfg, largest = ctx.cfg, ctx.cfg.sizes()[-1]
    sft = frozen(ctx.sft_model(cfg.policy_size)[0])
    rm, _ = load_scalar(ctx.stage(f"rm-{largest}") / "ckpt.pt")
    summary = ctx.finished(f"rm-{largest}")
    norm = (summary["reward_mean"], summary["reward_std"])
    results = {}
    for label, ckpt in models(ctx).items():
        policy, _ = load_policy(ckpt)
        got = by_prompt([answers(ctx, policy, ctx.eval_items, SEED + j, sft, rm, norm)
                         for j in range(cfg.eval_samples)])
        results[label] = {"checkpoint": ckpt, "held_out_loss": held_out_loss(ctx, policy), **got}
        print(f"instruct: {label}: labeller score {np.mean(got['score']):.3f}, keyword "
              f"{np.mean(got['keyword']):.2f}, KL {np.mean(got['kl']):.2f}", flush=True)
    data = {"prompts": [{"prompt": it.prompt.lstrip("\n"), "keyword": it.keyword,
                         "demonstration": it.line} for it in ctx.eval_items],
            "parts": list(PARTS), "reward_model": largest, "kl_estimator": "k3",
            "machine": machine(), "models": results}
    write_json(path, data)
    return data
