"""The one training step, and its timer. Training, the benchmark and the precision probe
(precision.py) all run train_step, so what the benchmark times is what training runs.

A step is grad_accum micro-batches of forward and backward, then clipping and one
optimizer step; in float16 the loss is scaled (nanoGPT's train.py loop is the model).
"""
from __future__ import annotations

import functools
import time
from contextlib import nullcontext

import torch

from ..data.prepare import Batches
from ..nn.gpt import GPT
from .optim import make_optimizer, optimizer_settings
from .train_config import TrainConfig
from .runtime import Runtime
from .timing import medians_in_turn, sync

Batch = tuple[torch.Tensor, torch.Tensor]


class Compiled(torch.nn.Module):
    """The model to train when compiling: the model run with its blocks through torch.compile,
    one block at a time. Every block runs the same code, so the one graph compiled for the
    first serves them all: measured on 2 cores (docs/measurements.md), a cold compile of 6x160
    takes 20 s instead of 35 s for the whole model, at the same speed. The compiled blocks
    share the model's parameters; the model itself (evaluation, the in-context probes,
    checkpoints) stays eager, so their shapes cost no recompiles."""

    def __init__(self, model: GPT):
        super().__init__()
        self.model = model
        self.blocks = torch.nn.ModuleList(torch.compile(b) for b in model.blocks)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        return self.model(idx, targets, blocks=self.blocks)


def micro_batches(batches: Batches, cfg: TrainConfig, step: int, rank: int = 0) -> list[Batch]:
    """The (x, y) windows of one step on one process, in that step's data shape: shard
    rank * grad_accum + micro, so that two processes see the windows one process sees in twice
    the micro-steps."""
    return [batches.train_batch(cfg.seed, step, rank * cfg.grad_accum + micro, cfg.batch_size,
                                *cfg.data_shape(step))
            for micro in range(cfg.grad_accum)]


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, rt: Runtime,
               micro: list[Batch], grad_clip: float) -> torch.Tensor:
    """One optimizer step over the micro-batches (host tensors). Returns their mean loss left
    on the device: reading it waits for the device to finish, so callers read it only when
    they log it."""
    n, scaler = len(micro), rt.scaler
    total = torch.zeros((), device=rt.device)
    for i, (x, y) in enumerate(micro):
        # DDP would all-reduce after every backward; only the last one counts.
        sync_grads = model.no_sync() if rt.dist.enabled and i < n - 1 else nullcontext()
        with sync_grads:
            with rt.autocast():
                _, loss = model(rt.to_device(x), rt.to_device(y))
            # The mean over micro-batches, not their sum, so the learning rate
            # means the same whatever grad_accum is.
            part = loss / n
            (part if scaler is None else scaler.scale(part)).backward()
        total += loss.detach()
    if scaler is not None:
        scaler.unscale_(opt)  # clip the true gradients, not the scaled ones
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if scaler is None:
        opt.step()
    else:
        scaler.step(opt)  # skipped if a gradient overflowed; update() then lowers the scale
        scaler.update()
    opt.zero_grad(set_to_none=True)
    return total / n


class StepTimer:
    """Times train_step for one model on fixed micro-batches, with cfg's optimizer settings,
    clipping and compilation."""

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig, rt: Runtime,
                 micro: list[Batch], fused: bool, warmup: int = 3):
        self.rt, self.micro, self.grad_clip = rt, micro, cfg.grad_clip
        self.opt = make_optimizer(model, optimizer_settings(cfg), fused)
        self.model = Compiled(model) if cfg.compile else model
        self.tokens = sum(x.numel() for x, _ in micro)  # per step
        self.run(warmup)  # compilation, kernel selection, allocator warm-up

    def run(self, steps: int) -> None:
        for _ in range(steps):
            train_step(self.model, self.opt, self.rt, self.micro, self.grad_clip)

    def tokens_per_s(self, steps: int) -> float:
        sync(self.rt.device_type)
        t0 = time.perf_counter()
        self.run(steps)
        sync(self.rt.device_type)
        return steps * self.tokens / (time.perf_counter() - t0)


def interleaved(timers: list[StepTimer], steps: int, rounds: int) -> list[float]:
    """Median tokens/s of each timer over rounds taken in turn."""
    return medians_in_turn([functools.partial(t.tokens_per_s, steps) for t in timers], rounds)
