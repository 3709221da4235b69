"""AdamW with decay on matrices only, and the learning-rate schedules."""
from __future__ import annotations

import math

import torch

from .options import TrainConfig


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, fused: bool) -> torch.optim.AdamW:
    # Weight decay pulls matrices toward small norms; applied to gains, biases
    # or (1-D) norm weights it only fights the normalisation.
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                             fused=fused)


def fused_adamw(device: str) -> bool:
    """The one-kernel AdamW exists for CUDA and CPU, and on CPU too it is several times faster
    than the default multi-tensor one (docs/measurements.md)."""
    return device in ("cuda", "cpu")


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup, then cosine to min_lr_frac·lr, or (wsd) constant then a
    linear cooldown over the last cooldown_frac of the run."""
    floor = cfg.lr * cfg.min_lr_frac
    if step < cfg.warmup_iters:
        return cfg.lr * (step + 1) / cfg.warmup_iters
    if cfg.schedule == "wsd":
        start = int(cfg.max_iters * (1 - cfg.cooldown_frac))
        if step < start:
            return cfg.lr
        frac = (step - start) / max(cfg.max_iters - start, 1)
        return cfg.lr + (floor - cfg.lr) * frac
    frac = min((step - cfg.warmup_iters) / max(cfg.max_iters - cfg.warmup_iters, 1), 1.0)
    return floor + 0.5 * (cfg.lr - floor) * (1 + math.cos(math.pi * frac))
