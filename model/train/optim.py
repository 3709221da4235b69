"""AdamW with decay on matrices only, and the learning-rate schedules."""
from __future__ import annotations

import math

import torch

from .options import TrainConfig


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, fused: bool
                   ) -> "torch.optim.Optimizer | Paired":
    """AdamW over every parameter, or with optimizer="muon" Muon over the blocks' weight
    matrices and AdamW over the rest. Each group's "peak" is the rate the schedule scales."""
    # Weight decay pulls matrices toward small norms; applied to gains, biases
    # or (1-D) norm weights it only fights the normalisation.
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    # Muon orthogonalises an update matrix, which suits the blocks' linear maps; the
    # embedding (tied to the head) is a lookup table, and vectors have no matrix to orthogonalise.
    muon = [p for n, p in named if cfg.optimizer == "muon" and p.dim() == 2
            and n.startswith("blocks.")]
    taken = {id(p) for p in muon}
    rest = [p for _, p in named if id(p) not in taken]
    groups = [
        {"params": [p for p in rest if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in rest if p.dim() < 2], "weight_decay": 0.0},
    ]
    adamw = torch.optim.AdamW(groups, lr=cfg.lr,
                              betas=(cfg.beta1, cfg.beta2), fused=fused)
    for g in adamw.param_groups:
        g["peak"] = cfg.lr
    if not muon:
        return adamw
    orth = torch.optim.Muon(muon, lr=cfg.muon_lr, weight_decay=cfg.weight_decay)
    orth.param_groups[0]["peak"] = cfg.muon_lr
    return Paired(adamw, orth)


class Paired:
    """Two optimizers stepped as one: their groups in one list (the schedule sets each
    group's lr), one step, one zero_grad, one state dict with both inside."""

    def __init__(self, *parts: torch.optim.Optimizer):
        self.parts = parts

    @property
    def param_groups(self) -> list[dict]:
        # read anew each time: loading a state dict replaces a part's group dicts
        return [g for part in self.parts for g in part.param_groups]

    def step(self) -> None:
        for part in self.parts:
            part.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        # "state" and "param_groups" as every optimizer's: a checkpoint is checked for both
        return {"state": {}, "param_groups": [], "parts": [p.state_dict() for p in self.parts]}

    def load_state_dict(self, state: dict) -> None:
        if len(state.get("parts", ())) != len(self.parts):
            raise ValueError("the checkpoint's optimizer is not this run's (adamw vs muon)")
        for part, saved in zip(self.parts, state["parts"]):
            part.load_state_dict(saved)


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
