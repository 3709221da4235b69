"""The reward model: a fine-tuned body with a scalar head, trained on the labeller's rankings
with InstructGPT's pairwise loss, all K·(K-1)/2 pairs of a prompt in one batch element (the K
completions pass through the model once, not once per pair)."""
from __future__ import annotations

import math

import numpy as np
import torch

from ...files import write_json
from . import loop
from .comparisons import run_comparisons
from .context import Context
from .losses import pairwise_loss
from .models import ScalarModel
from .rollout import Rollout, with_completions
from .task import Instruction


def ranked_batch(ctx: Context, items: list[Instruction], rows: list[dict]
                 ) -> tuple[Rollout, torch.Tensor]:
    """The P·K completions of P prompts as one Rollout (prompt-major), and the labels (P, K)."""
    k = ctx.cfg.k
    repeated = [it for it in items for _ in range(k)]
    texts = [t for row in rows for t in row["completions"]]
    labels = torch.tensor([row["ratings"] for row in rows])
    return with_completions(ctx.tok, repeated, texts, ctx.cfg.max_new_tokens), labels


def rewards(rm: ScalarModel, r: Rollout, k: int) -> torch.Tensor:
    return rm.at(r.tokens, r.last_index()).view(-1, k)  # (P*K,) -> (P, K)


@torch.no_grad()
def scores_of(rm: ScalarModel, r: Rollout, chunk: int = 512) -> torch.Tensor:
    """The reward model's raw score of every completion of r, (B,), chunk rows a pass (the
    thousands of stored completions at once would hold every activation)."""
    rm.eval()
    return torch.cat([rm.at(r.tokens[i:i + chunk], r.last_index()[i:i + chunk])
                      for i in range(0, len(r.tokens), chunk)])


@torch.no_grad()
def accuracy(ctx: Context, rm: ScalarModel, items: list[Instruction], rows: list[dict]) -> dict:
    """Held-out pairwise loss and accuracy; pairs the labeller ties are left out."""
    rm.eval()
    r, labels = ranked_batch(ctx, items, rows)
    loss, acc = pairwise_loss(rewards(rm, r, ctx.cfg.k), labels)
    rm.train()
    return {"test_loss": loss.item(), "test_accuracy": acc.item()}


def run_rm(ctx: Context, size: str) -> dict:
    """Train the reward model of this size from its SFT model; its folder is rm-<size>.
    Its summary holds the mean and spread of its rewards on the training completions, by
    which PPO normalises them (InstructGPT normalises so that SFT outputs score 0)."""
    name = f"rm-{size}"
    if ctx.finished(name):
        return ctx.finished(name)
    cfg = ctx.cfg
    data = run_comparisons(ctx)
    body, state = ctx.sft_model(size)
    rm = ScalarModel(body)
    opt = loop.optimizer(rm, cfg.rm_lr)
    per_epoch = math.ceil(len(ctx.rm_items) / cfg.rm_batch)
    steps = cfg.rm_epochs * per_epoch
    stage = loop.Stage(ctx.stage(name), {"model": rm}, opt, steps,
                       max(steps // 4, 1), cfg.seed, loop.meta_of(state))

    def step(s: int) -> dict:
        epoch, i = divmod(s, per_epoch)
        order = np.random.default_rng([cfg.seed, epoch]).permutation(len(ctx.rm_items))
        pick = order[i * cfg.rm_batch:(i + 1) * cfg.rm_batch]
        r, labels = ranked_batch(ctx, [ctx.rm_items[i] for i in pick],
                                 [data["train"][i] for i in pick])
        loss, acc = pairwise_loss(rewards(rm, r, cfg.k), labels)
        loop.descend(loss, opt, rm)
        return {"train_loss": loss.item(), "train_accuracy": acc.item()}

    records = loop.run(stage, step, lambda s: accuracy(ctx, rm, ctx.rm_test_items, data["test"]),
                       name)
    scores = scores_of(rm, ranked_batch(ctx, ctx.rm_items, data["train"])[0])
    summary = {"size": size, "n_nonemb": body.num_params(), "steps": steps,
               "test_accuracy": records[-1]["test_accuracy"], "test_loss": records[-1]["test_loss"],
               "reward_mean": scores.mean().item(), "reward_std": scores.std().item()}
    write_json(ctx.stage(name) / "summary.json", summary)
    return summary
