"""What a policy's answers are worth: the labeller's score, a reward model's score, the KL from
the SFT model, and the loss on held-out plays (the alignment tax). Used along PPO and DPO and
for the final comparison of every model."""
from __future__ import annotations

import numpy as np
import torch

from ...train.runtime import Runtime
from ...train.trainer import evaluate
from .context import Context
from .losses import kl_estimate
from .models import ScalarModel
from .rollout import completion_logprobs, decode, encode_prompts, sample
from .task import Instruction, grade

PARTS = ("score", "keyword", "length", "words", "variety")


@torch.no_grad()
def answers(ctx: Context, policy, items: list[Instruction], seed: int, sft=None,
            rm: ScalarModel | None = None, norm: tuple[float, float] = (0.0, 1.0)) -> dict:
    """One sampled answer per item, with per-item arrays: the labeller's parts, the sequence's
    KL(π ‖ π_SFT) estimated by k3 (given the SFT model) and the reward model's normalised score."""
    was_training = policy.training
    policy.eval()
    r = sample(policy, encode_prompts(ctx.tok, items), ctx.cfg.max_new_tokens, seed, ctx.newline)
    texts = decode(ctx.tok, r)
    grades = [grade(t, it.keyword, ctx.vocabulary) for t, it in zip(texts, items)]
    out = {part: np.array([g[part] for g in grades]) for part in PARTS}
    out["texts"] = texts
    if sft is not None:
        out["kl"] = kl_estimate(completion_logprobs(policy, r), completion_logprobs(sft, r),
                                r.mask).numpy()
    if rm is not None:
        out["reward"] = ((rm.at(r.tokens, r.last_index()) - norm[0]) / norm[1]).numpy()
    policy.train(was_training)
    return out


def means(result: dict) -> dict:
    """The mean of every per-item array, as plain floats for a metrics record."""
    return {k: float(np.mean(v)) for k, v in result.items() if k != "texts"}


def held_out_loss(ctx: Context, model) -> float:
    """Mean loss on fixed windows of the held-out plays (16 windows a batch), as the trainer
    evaluates: CPU, float32."""
    return evaluate(model, ctx.batches, ctx.cfg.val_batches, 16, Runtime())
