"""Every loss of the InstructGPT pipeline, as pure functions of tensors, named as in the papers.

Ouyang et al. 2022 (InstructGPT), eq. 1 and 2; Schulman et al. 2017 (PPO: L^CLIP, the clipped
value loss of its reference code); Schulman et al. 2016 (GAE); Rafailov et al. 2023 (DPO).
Shapes: B sequences, T completion positions; `mask` (B, T) is 1 on the completion's tokens
(up to and including its newline) and 0 after it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def pairwise_loss(reward: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The reward model's loss over all K·(K-1)/2 pairs of each prompt's K completions at once
    (InstructGPT eq. 1): mean over ranked pairs of -log σ(r(x, y_w) - r(x, y_l)). reward and
    label are (P, K); pairs the labeller scores equal are no comparison and are left out.
    Returns the loss and the share of pairs the rewards order as the labeller does (a tie in
    reward counts one half: a reward model that says the same of everything scores 0.5)."""
    diff = reward[:, :, None] - reward[:, None, :]  # (P, K, K): r_i - r_j
    better = label[:, :, None] > label[:, None, :]  # (P, K, K): i ranked above j
    margins = diff[better]
    return -F.logsigmoid(margins).mean(), agreement(margins)


def agreement(margins: torch.Tensor) -> torch.Tensor:
    """The share of positive margins, ties counting one half."""
    return ((margins > 0).float() + 0.5 * (margins == 0).float()).mean()


def kl_penalised_rewards(score: torch.Tensor, logp: torch.Tensor, logp_sft: torch.Tensor,
                         mask: torch.Tensor, beta: float) -> torch.Tensor:
    """Per-token rewards (B, T): -β·(log π(y_t) - log π_SFT(y_t)) at every completion token, the
    per-token KL penalty of InstructGPT eq. 2, plus the reward model's score (B,) at the last one.
    The penalty is the plain log-ratio (k1), as the method defines it: the return it sums to is
    β·log π(y)/π_SFT(y) of the whole completion, whose mean is the KL the objective charges;
    kl_estimate's k3 is for reporting the KL, not for shaping the reward."""
    rewards = -beta * (logp - logp_sft) * mask
    last = mask.sum(1).long().clamp(min=1) - 1  # (B,): the index of each completion's end
    rewards[torch.arange(len(score)), last] += score
    return rewards


def kl_estimate(logp: torch.Tensor, logp_ref: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(π ‖ π_ref) of each completion (B,) from tokens sampled from π: the sum over its tokens
    of Schulman's k3 = (ρ - 1) - log ρ, ρ = π_ref(y_t)/π(y_t). Each term is ≥ 0 (log ρ ≤ ρ - 1)
    and its mean over y_t ~ π is the KL at that position, so the sum is unbiased for the
    sequence's KL and can never print negative, as the plain log-ratio (k1) mean can near π = π_ref.
    Only reported (and √ of it plotted): the reward keeps k1, InstructGPT's penalty."""
    log_ratio = (logp_ref - logp) * mask
    return (torch.expm1(log_ratio) - log_ratio).sum(1)


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
        lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation: A_t = Σ_l (γλ)^l δ_{t+l} with δ_t = r_t + γV(t+1) - V(t),
    the value after a completion's last token being 0 (the episode ends there). Returns the
    advantages and the value targets (returns = A + V), both (B, T) and 0 off the mask."""
    B, T = rewards.shape
    advantages = torch.zeros_like(rewards)
    running = rewards.new_zeros(B)
    for t in reversed(range(T)):
        next_value = values[:, t + 1] * mask[:, t + 1] if t + 1 < T else rewards.new_zeros(B)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * mask[:, t]
        advantages[:, t] = running
    return advantages, (advantages + values) * mask


def whiten(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x shifted and scaled to mean 0 and variance 1 over the masked entries."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + 1e-8) * mask


def clipped_policy_loss(logp: torch.Tensor, logp_old: torch.Tensor, advantages: torch.Tensor,
                        mask: torch.Tensor, clip: float) -> torch.Tensor:
    """PPO's L^CLIP, negated to be minimised: -min(ρA, clip(ρ, 1-ε, 1+ε)A), ρ = π/π_old."""
    ratio = torch.exp(logp - logp_old)
    unclipped = ratio * advantages
    clipped = ratio.clamp(1 - clip, 1 + clip) * advantages
    return masked_mean(-torch.minimum(unclipped, clipped), mask)


def clipped_value_loss(values: torch.Tensor, values_old: torch.Tensor, returns: torch.Tensor,
                       mask: torch.Tensor, clip: float) -> torch.Tensor:
    """½·max((V - R)², (V_old + clip(V - V_old, ±ε) - R)²): the value function may not move
    further from its rollout-time estimate than ε in one update either."""
    clipped = values_old + (values - values_old).clamp(-clip, clip)
    return 0.5 * masked_mean(torch.maximum((values - returns) ** 2, (clipped - returns) ** 2), mask)


def dpo_loss(logp_w: torch.Tensor, logp_l: torch.Tensor, ref_w: torch.Tensor,
             ref_l: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """DPO: -log σ(β[(log π(y_w) - log π_ref(y_w)) - (log π(y_l) - log π_ref(y_l))]) over pairs
    of sequence log-probabilities (B,); also the share of pairs whose implicit reward orders
    them right (ties one half)."""
    margin = beta * ((logp_w - ref_w) - (logp_l - ref_l))
    return -F.logsigmoid(margin).mean(), agreement(margin)
