"""Supervised fine-tuning: the base model learns to answer instructions from demonstrations,
with the loss on the demonstration's tokens only (the prompt is given, not learned)."""
from __future__ import annotations

import numpy as np
import torch

from ...errors import UserError
from ...files import write_json
from . import loop
from .context import Context
from .losses import masked_mean
from .models import load_policy
from .rollout import Rollout, completion_logprobs, with_completions
from .task import PROMPT_CHARS, Instruction


def demonstrations(ctx: Context, items: list[Instruction]) -> Rollout:
    return with_completions(ctx.tok, items, [it.line + "\n" for it in items],
                            ctx.cfg.max_new_tokens)


def demo_loss(model, r: Rollout) -> torch.Tensor:
    """Mean negative log-likelihood per demonstration token (nats per character)."""
    return -masked_mean(completion_logprobs(model, r), r.mask)


def run_sft(ctx: Context, size: str) -> dict:
    """Fine-tune the base model of this size; its folder is sft-<size>."""
    name = f"sft-{size}"
    if ctx.finished(name):
        return ctx.finished(name)
    cfg = ctx.cfg
    base = ctx.base(size)
    model, state = load_policy(base)
    # sampling a prompt's completion needs both in one context: known now, not after training
    need = PROMPT_CHARS + cfg.max_new_tokens
    if model.cfg.block_size < need:
        raise UserError(f"the base model {base} has block_size {model.cfg.block_size}, but a "
                        f"prompt and its completion take up to {need} tokens ({PROMPT_CHARS} + "
                        f"max_new_tokens {cfg.max_new_tokens}); use a base study with a "
                        f"block_size of at least {need}, or lower --max_new_tokens")
    opt = loop.optimizer(model, cfg.sft_lr)
    stage = loop.Stage(ctx.stage(name), {"model": model}, opt, cfg.sft_steps, cfg.eval_every,
                       cfg.seed, loop.policy_meta(state))
    items = ctx.sft_items
    held_out = demonstrations(ctx, ctx.eval_items)

    def step(s: int) -> dict:
        pick = np.random.default_rng([cfg.seed, s]).integers(0, len(items), cfg.sft_batch)
        loss = demo_loss(model, demonstrations(ctx, [items[i] for i in pick]))
        loop.descend(loss, opt, model)
        return {"train_loss": loss.item()}

    @torch.no_grad()
    def evaluate(s: int) -> dict:
        model.eval()
        loss = demo_loss(model, held_out).item()
        model.train()
        return {"demo_loss": loss}

    records = loop.run(stage, step, evaluate, name)
    summary = {"size": size, "base": str(base), "demo_loss": records[-1]["demo_loss"],
               "demo_loss_before": records[0]["demo_loss"], "steps": cfg.sft_steps}
    write_json(ctx.stage(name) / "summary.json", summary)
    return summary
