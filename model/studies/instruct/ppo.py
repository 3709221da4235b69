"""PPO against a reward model (InstructGPT §3.5): the policy starts from SFT; the reward is the
reward model's score at the end of the line minus β·KL(π ‖ π_SFT) at every token; a value
function supplies the baseline for GAE; the policy follows the clipped objective. The value
function starts from a reward model, as in InstructGPT: the smallest one, whichever reward the
policy is trained against, so every run starts from the same value function, and at the cost of
a small model's update (on 2 cores a policy-sized value model doubled each iteration). PPO-ptx
adds γ·(language-model loss on the training plays) to every update, the term that pays the
"alignment tax" back.

Three kinds of run: the main one (β = kl_beta against a reward model), "ptx" (the same with the
pretraining term) and "sweep" (β = sweep_beta and lr = sweep_lr, once per reward-model size: the
over-optimisation experiment of Gao et al., where the policy must travel far enough from SFT
for the true score to peak).

One iteration: sample ppo_batch rollouts from the current policy, score and penalise them,
then ppo_epochs passes of minibatch updates over them.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from ...files import write_json
from . import loop
from .context import Context
from .losses import (clipped_policy_loss, clipped_value_loss, gae, kl_estimate,
                     kl_penalised_rewards, masked_mean, whiten)
from .models import ScalarModel, frozen, load_scalar
from .rollout import Rollout, completion_logprobs, decode, encode_prompts, sample
from .judge import answers, held_out_loss, means
from .task import grade

EVAL_SEED = 424242  # every evaluation along PPO samples with the same seed: only π changes


def values_of(value: ScalarModel, r: Rollout) -> torch.Tensor:
    """V(state before each completion token), (B, T), aligned with completion_logprobs."""
    return value(r.tokens[:, :-1])[:, r.prompt_len - 1:]


def ppo_name(rm_size: str, variant: str = "") -> str:
    return f"ppo-rm{rm_size}" + (f"-{variant}" if variant else "")


class PPO:
    """The models and one iteration of the algorithm; run_ppo drives it through loop.run."""

    def __init__(self, ctx: Context, rm_size: str, variant: str):
        cfg = ctx.cfg
        self.ctx, self.cfg, self.ptx = ctx, cfg, variant == "ptx"
        sweep = variant == "sweep"
        self.beta, self.lr = (cfg.sweep_beta, cfg.sweep_lr) if sweep else (cfg.kl_beta, cfg.ppo_lr)
        self.policy, self.state = ctx.sft_model(cfg.policy_size)
        self.sft = frozen(self.policy)
        self.value = load_scalar(ctx.stage(f"rm-{cfg.sizes()[0]}") / "ckpt.pt")[0].train()
        self.rm, _ = load_scalar(ctx.stage(f"rm-{rm_size}") / "ckpt.pt")
        rm_summary = ctx.finished(f"rm-{rm_size}")
        self.norm = (rm_summary["reward_mean"], rm_summary["reward_std"])
        # one optimizer over both: a minibatch's loss holds the policy's and the value's terms
        self.trained = nn.ModuleList([self.policy, self.value])
        self.opt = loop.optimizer(self.trained, self.lr)

    @torch.no_grad()
    def rollouts(self, it: int) -> tuple[Rollout, dict]:
        """A batch of rollouts and what the update needs of them (old log-probs, values,
        advantages, returns), plus their statistics for the log."""
        cfg, ctx = self.cfg, self.ctx
        pool = ctx.ppo_items
        items = [pool[i] for i in np.random.default_rng([cfg.seed, it]).integers(
            0, len(pool), cfg.ppo_batch)]
        self.policy.eval()
        r = sample(self.policy, encode_prompts(ctx.tok, items), cfg.max_new_tokens,
                   cfg.seed * 1_000_003 + it, ctx.newline)
        logp = completion_logprobs(self.policy, r)
        logp_sft = completion_logprobs(self.sft, r)
        values = values_of(self.value, r)
        score = (self.rm.at(r.tokens, r.last_index()) - self.norm[0]) / self.norm[1]
        rewards = kl_penalised_rewards(score, logp, logp_sft, r.mask, self.beta)
        advantages, returns = gae(rewards, values, r.mask, cfg.gamma, cfg.gae_lambda)
        true = [grade(text, item.keyword, ctx.vocabulary)["score"]
                for text, item in zip(decode(ctx.tok, r), items)]
        batch = {"logp": logp, "values": values, "returns": returns,
                 "advantages": whiten(advantages, r.mask)}
        stats = {"reward": score.mean().item(), "true_score": float(np.mean(true)),
                 "kl": kl_estimate(logp, logp_sft, r.mask).mean().item()}
        self.policy.train()
        return r, {**batch, "stats": stats}

    def update(self, r: Rollout, batch: dict, rows: torch.Tensor, it: int, n: int) -> dict:
        """One minibatch step of the policy and value function (and the ptx term)."""
        cfg = self.cfg
        sub = Rollout(r.tokens[rows], r.mask[rows], r.prompt_len)
        logp = completion_logprobs(self.policy, sub)
        pg = clipped_policy_loss(logp, batch["logp"][rows], batch["advantages"][rows], sub.mask,
                                 cfg.clip)
        vf = clipped_value_loss(values_of(self.value, sub), batch["values"][rows],
                                batch["returns"][rows], sub.mask, cfg.clip)
        loss = pg + cfg.vf_coef * vf
        losses = {"pg_loss": pg.item(), "vf_loss": vf.item()}
        if self.ptx:
            x, y = self.ctx.batches.train_batch(cfg.seed, it, n, cfg.ptx_batch)
            ptx = self.policy(x, y)[1]
            loss = loss + cfg.ptx_coef * ptx
            losses["ptx_loss"] = ptx.item()
        loop.descend(loss, self.opt, self.trained)
        ratio = torch.exp(logp.detach() - batch["logp"][rows])
        losses["clip_frac"] = masked_mean(((ratio - 1).abs() > cfg.clip).float(), sub.mask).item()
        return losses

    def iteration(self, it: int) -> dict:
        r, batch = self.rollouts(it)
        g = torch.Generator().manual_seed(self.cfg.seed * 7 + it)
        logs = []
        for epoch in range(self.cfg.ppo_epochs):
            for j, rows in enumerate(torch.randperm(len(r.tokens), generator=g)
                                     .split(self.cfg.ppo_minibatch)):
                logs.append(self.update(r, batch, rows, it, epoch * 1000 + j))
        mean = {k: float(np.mean([l[k] for l in logs])) for k in logs[0]}
        return {**batch["stats"], **mean}

    def evaluate(self, it: int) -> dict:
        """Along training, on held-out prompts: the labeller's score (the "gold" reward), the
        reward model's (the proxy) and the KL from SFT, as in Gao et al.'s plots."""
        items = self.ctx.eval_items[:self.cfg.ppo_eval_prompts]
        result = means(answers(self.ctx, self.policy, items, EVAL_SEED, self.sft, self.rm,
                               self.norm))
        result["sqrt_kl"] = float(np.sqrt(result["kl"]))  # k3: never below 0
        return result


def run_ppo(ctx: Context, rm_size: str, variant: str = "") -> dict:
    """PPO against the reward model of rm_size; its folder is ppo-rm<size>[-ptx|-sweep]."""
    name = ppo_name(rm_size, variant)
    if ctx.finished(name):
        return ctx.finished(name)
    cfg = ctx.cfg
    for size in dict.fromkeys([rm_size, cfg.sizes()[0]]):
        ctx.needs(f"rm-{size}", f"tinygpt rm --size={size}")
    ppo = PPO(ctx, rm_size, variant)
    stage = loop.Stage(ctx.stage(name), {"model": ppo.policy, "value": ppo.value}, ppo.opt,
                       cfg.ppo_iters, cfg.ppo_eval_every, cfg.seed, loop.policy_meta(ppo.state),
                       log_every=1)
    records = loop.run(stage, ppo.iteration, ppo.evaluate, name)
    curve = [r for r in records if "sqrt_kl" in r]
    summary = {"rm_size": rm_size, "variant": variant, "beta": ppo.beta, "lr": ppo.lr,
               "iters": cfg.ppo_iters,
               "held_out_loss": held_out_loss(ctx, ppo.policy), "final": curve[-1]}
    write_json(ctx.stage(name) / "summary.json", summary)
    return summary
