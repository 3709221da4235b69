"""DPO (Rafailov et al. 2023), the simpler baseline beside PPO: the same ranked pairs the reward
models learn from, used directly to fine-tune the SFT policy, with the SFT model as the
reference. No reward model, no sampling during training."""
from __future__ import annotations

import numpy as np
import torch

from ...files import write_json
from . import loop
from .comparisons import run_comparisons
from .context import Context
from .losses import dpo_loss
from .models import frozen
from .ppo import EVAL_SEED
from .rollout import completion_logprobs, with_completions
from .judge import answers, held_out_loss, means
from .task import Instruction


def pairs(items: list[Instruction], rows: list[dict]) -> list[tuple[Instruction, str, str]]:
    """(prompt, preferred, rejected) for every pair of a prompt's completions the labeller
    ranks apart."""
    found = []
    for item, row in zip(items, rows):
        for a, rating_a in zip(row["completions"], row["ratings"]):
            found += [(item, a, b) for b, rating_b in zip(row["completions"], row["ratings"])
                      if rating_a > rating_b]
    return found


def sequence_logprobs(ctx: Context, model, items, texts) -> torch.Tensor:
    r = with_completions(ctx.tok, items, texts, ctx.cfg.max_new_tokens)
    return (completion_logprobs(model, r) * r.mask).sum(1)  # (B,)


def run_dpo(ctx: Context) -> dict:
    name = "dpo"
    if ctx.finished(name):
        return ctx.finished(name)
    cfg = ctx.cfg
    data = run_comparisons(ctx)
    policy, state = ctx.sft_model(cfg.policy_size)
    sft = frozen(policy)
    opt = loop.optimizer(policy, cfg.dpo_lr)
    train, test = pairs(ctx.rm_items, data["train"]), pairs(ctx.rm_test_items, data["test"])
    stage = loop.Stage(ctx.stage(name), {"model": policy}, opt, cfg.dpo_steps, cfg.eval_every,
                       cfg.seed, loop.policy_meta(state))

    def loss_on(chosen) -> tuple[torch.Tensor, torch.Tensor]:
        items, wins, losses = zip(*chosen)
        with torch.no_grad():
            ref_w, ref_l = (sequence_logprobs(ctx, sft, items, t) for t in (wins, losses))
        return dpo_loss(sequence_logprobs(ctx, policy, items, wins),
                        sequence_logprobs(ctx, policy, items, losses), ref_w, ref_l, cfg.dpo_beta)

    def step(s: int) -> dict:
        pick = np.random.default_rng([cfg.seed, s]).integers(0, len(train), cfg.dpo_batch)
        loss, acc = loss_on([train[i] for i in pick])
        loop.descend(loss, opt, policy)
        return {"train_loss": loss.item(), "train_accuracy": acc.item()}

    def evaluate(s: int) -> dict:
        with torch.no_grad():
            policy.eval()
            loss, acc = loss_on(test)
            policy.train()
        items = ctx.eval_items[:cfg.ppo_eval_prompts]
        result = means(answers(ctx, policy, items, EVAL_SEED, sft))
        return {"test_loss": loss.item(), "test_accuracy": acc.item(), **result}

    records = loop.run(stage, step, evaluate, name)
    summary = {"pairs": len(train), "steps": cfg.dpo_steps, "final": records[-1],
               "held_out_loss": held_out_loss(ctx, policy)}
    write_json(ctx.stage(name) / "summary.json", summary)
    return summary
