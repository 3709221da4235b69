"""AdamW with decay on matrices only, and the learning-rate schedules: the one optimizer
factory and the one schedule of every loop that trains (the trainer's, and the fine-tuning
stages' of studies/instruct), each loop passing its own settings."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from .timing import fastest_matmul_dtype
from .train_config import TrainConfig


@dataclass(frozen=True)
class OptimizerSettings:
    """What make_optimizer builds, apart from any loop's config (TrainConfig's are
    optimizer_settings(cfg); a fine-tuning stage has its own)."""
    lr: float                         # AdamW's rate, before the schedule
    betas: tuple[float, float]        # AdamW's moment decays
    weight_decay: float               # on weight matrices only (and Muon's)
    optimizer: str = "adamw"          # "adamw" | "muon" (Muon over a GPT's block matrices)
    muon_lr: float = 0.02             # Muon's rate, before the schedule


@dataclass(frozen=True)
class Schedule:
    """The learning-rate schedule's settings, apart from any loop's config (TrainConfig's are
    schedule_of(cfg); a fine-tuning stage has its own)."""
    steps: int                        # the run's length: the cosine ends, wsd cools down, here
    warmup: int                       # steps of linear warm-up
    min_frac: float                   # the final rate as a fraction of a group's own rate
    kind: str = "cosine"              # "cosine" | "wsd" (constant, then a linear cooldown)
    cooldown_frac: float = 0.2        # wsd: the fraction of steps spent cooling down


def optimizer_settings(cfg: TrainConfig) -> OptimizerSettings:
    return OptimizerSettings(cfg.lr, (cfg.beta1, cfg.beta2), cfg.weight_decay, cfg.optimizer,
                             cfg.muon_lr)


def schedule_of(cfg: TrainConfig) -> Schedule:
    return Schedule(cfg.max_iters, cfg.warmup_iters, cfg.min_lr_frac, cfg.schedule,
                    cfg.cooldown_frac)


def make_optimizer(model: nn.Module, s: OptimizerSettings, fused: bool
                   ) -> "torch.optim.Optimizer | Paired":
    """AdamW over every trainable parameter of model, or with optimizer="muon" (model a GPT)
    Muon over the blocks' weight matrices and AdamW over the rest. Each group keeps its own
    rate as "initial_lr" (lr or muon_lr), which the schedule scales (set_rates)."""
    # Weight decay pulls matrices toward small norms; applied to gains, biases
    # or (1-D) norm weights it only fights the normalisation.
    # Muon orthogonalises an update matrix, which suits the blocks' linear maps; the
    # embedding (tied to the head) is a lookup table, and vectors have no matrix to orthogonalise.
    muon = ([p for p in model.blocks.parameters() if p.dim() == 2 and p.requires_grad]
            if s.optimizer == "muon" else [])
    taken = {id(p) for p in muon}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in taken]
    groups = [
        {"params": [p for p in rest if p.dim() >= 2], "weight_decay": s.weight_decay},
        {"params": [p for p in rest if p.dim() < 2], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=s.lr, betas=s.betas, fused=fused)
    if muon:
        opt = Paired(opt, Muon(muon, lr=s.muon_lr, weight_decay=s.weight_decay))
    for g in opt.param_groups:
        g["initial_lr"] = g["lr"]
    return opt


def load_keeping_rates(opt: "torch.optim.Optimizer | Paired", saved: dict) -> None:
    """Load a checkpoint's optimizer state, keeping each group's own rate as this run's config
    made it: loading replaces the group dicts with the saved ones, whose rates are the ones
    the checkpoint was written with (or absent, in a checkpoint from before them)."""
    rates = [g["initial_lr"] for g in opt.param_groups]
    opt.load_state_dict(saved)
    for g, rate in zip(opt.param_groups, rates):
        g["initial_lr"] = rate


def set_rates(opt: "torch.optim.Optimizer | Paired", step: int, schedule: Schedule) -> float:
    """Every group's rate at step: the schedule applied to the group's own rate. Returns the
    first group's (AdamW's, of lr), the rate a run logs."""
    for g in opt.param_groups:
        g["lr"] = lr_at(step, schedule, g["initial_lr"])
    return opt.param_groups[0]["lr"]


class Muon(torch.optim.Muon):
    """torch's Muon (its defaults, state and checks), with the Newton-Schulz orthogonalisation
    in the fastest matmul precision of the parameters' device. torch's own always runs it in
    bf16, which a CPU without bf16 units emulates: there the speedrun's Muon steps were 6.7x
    slower than AdamW's (AVX2 AMD EPYC, fp32). Where bf16 has units this is torch's
    arithmetic exactly (tests/test_train.py compares the two)."""

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # (no closure: tinygpt never passes one)
        for group in self.param_groups:
            params, grads, bufs = [], [], []
            self._init_group(group, params, grads, bufs)
            if not params:
                continue
            lr, decay, momentum = group["lr"], group["weight_decay"], group["momentum"]
            dtype = fastest_matmul_dtype(params[0].device.type)  # (one device per model)
            for p, grad, buf in zip(params, grads, bufs):
                buf.lerp_(grad, 1 - momentum)
                update = grad.lerp(buf, momentum) if group["nesterov"] else buf
                update = orthogonalised(update, group["ns_coefficients"], group["ns_steps"],
                                        group["eps"], dtype)
                p.mul_(1 - lr * decay)
                # Keller Jordan's scale (torch's "original"): tall matrices take larger steps
                p.add_(update, alpha=-lr * math.sqrt(max(1.0, p.shape[0] / p.shape[1])))


def orthogonalised(g: torch.Tensor, coefficients: tuple[float, float, float], steps: int,
                   eps: float, dtype: torch.dtype) -> torch.Tensor:
    """g with its singular values pushed towards 1 (roughly 0.5-1.5) by a quintic
    Newton-Schulz iteration, in dtype: U S' V^T for g = U S V^T."""
    a, b, c = coefficients
    x = g.to(dtype, copy=True)
    tall = g.size(0) > g.size(1)
    if tall:  # iterate on the wide side, so the Gram matrix x x^T is the smaller one
        x = x.T
    x.div_(x.norm().clamp(min=eps))  # spectral norm <= Frobenius norm <= 1: inside the basin
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if tall else x


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


def lr_at(step: int, s: Schedule, peak: float) -> float:
    """The rate at step of a group whose own rate is peak: linear warmup, then cosine to
    min_frac·peak, or (wsd) constant then a linear cooldown over the last cooldown_frac of
    the run. (The schedule is written on the rate itself, not as a multiplier of it, so that
    each step's rate is the same float it always was.)"""
    floor = peak * s.min_frac
    if step < s.warmup:
        return peak * (step + 1) / s.warmup
    if s.kind == "wsd":
        start = int(s.steps * (1 - s.cooldown_frac))
        if step < start:
            return peak
        frac = (step - start) / max(s.steps - start, 1)
        return peak + (floor - peak) * frac
    frac = min((step - s.warmup) / max(s.steps - s.warmup, 1), 1.0)
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * frac))
