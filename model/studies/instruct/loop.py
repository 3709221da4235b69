"""The loop every fine-tuning stage runs in (SFT, reward model, PPO, DPO): resumable, logged,
one run per folder, with the trainer's mechanisms (model/train): its schedule, optimizer
factory, checkpoint state, lock and run log, under the stages' own settings.

A stage's batches and sampling draw from generators seeded by (seed, step), and anything else
drawn from torch's generator (dropout) is restored with it. So the checkpoint written at each
evaluation (the weights of every trained module, the optimizer, the random streams, the step)
is all a resumed stage needs to continue exactly as if it had never stopped; metrics.jsonl
loses only the records written after that checkpoint, which the resumed stage writes again.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from ...errors import UserError, make_dir
from ...train import checkpoint
from ...train.lock import OutDirLock
from ...train.optim import OptimizerSettings, Schedule, make_optimizer, set_rates
from ...train.runlog import RunLog, fmt_time, read_metrics
from .task import PROMPT_FORMAT


@dataclass
class Stage:
    out: Path                      # the stage's folder: ckpt.pt, metrics.jsonl
    modules: dict[str, nn.Module]  # what it trains; "model" is saved where `tinygpt sample` looks
    optimizer: torch.optim.Optimizer  # from optimizer(): each group's peak is its initial_lr
    steps: int
    eval_every: int
    seed: int                      # seeds torch's generator when the stage starts fresh
    meta: dict = field(default_factory=dict)  # saved beside the weights (model_config, ...)
    log_every: int = 10


def schedule(steps: int) -> Schedule:
    """The trainer's schedule with the stages' own settings, those the committed report was
    trained with: warmup over 10 steps (a stage is 6 to 600 steps, the trainer's default warmup
    100), then cosine down to 10% of the peak."""
    return Schedule(steps, warmup=10, min_frac=0.1)


def optimizer(trained: nn.Module, lr: float) -> torch.optim.Optimizer:
    """The trainer's AdamW (make_optimizer) with the stages' settings: β2 0.95 and no weight
    decay (fine-tuning moves the weights little; decay would pull them toward 0, away from
    the model being tuned). Unfused, the arithmetic the stages were measured with."""
    return make_optimizer(trained, OptimizerSettings(lr, betas=(0.9, 0.95), weight_decay=0.0),
                          fused=False)


def descend(loss: torch.Tensor, opt: torch.optim.Optimizer, trained: nn.Module) -> None:
    """One step down loss: backward, trained's gradients clipped to norm 1 (taken over its
    parameters in their own order, as the trainer's step takes them), step."""
    loss.backward()
    torch.nn.utils.clip_grad_norm_(trained.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)


def meta_of(state: dict) -> dict:
    """What a stage's checkpoint keeps beside the weights so `tinygpt sample` can read it."""
    return {"model_config": state["model_config"], "tokenizer": state["tokenizer"]}


def policy_meta(state: dict) -> dict:
    """meta_of for a model trained to answer instructions (SFT, PPO, DPO; not a reward model):
    also the prompt format it answers, by which `tinygpt chat` knows an instruct model."""
    return {**meta_of(state), "prompt_format": PROMPT_FORMAT}


def device_of(stage: Stage) -> str:
    return str(next(stage.modules["model"].parameters()).device)


def restore(stage: Stage) -> int:
    """Load the stage's checkpoint, if it has one; returns the step to continue from. A fresh
    stage seeds torch's generator, so what it draws there is a function of its seed."""
    path = stage.out / "ckpt.pt"
    if not path.exists():
        torch.manual_seed(stage.seed)
        return 0
    state = checkpoint.load(path)
    try:
        checkpoint.restore_training(state, stage.modules, stage.optimizer, device_of(stage))
    except (KeyError, RuntimeError, ValueError) as e:
        raise UserError(f"{path} cannot resume this stage: not its models', or from an older "
                        f"version ({str(e).splitlines()[0][:100]}); delete {stage.out} to redo "
                        "it") from None
    return state["step"]


def save(stage: Stage, step: int, record: dict) -> None:
    state = checkpoint.training_state(stage.modules, stage.optimizer, device_of(stage))
    state.update(stage.meta, step=step, metrics=record)
    checkpoint.save(stage.out / "ckpt.pt", state)


def run(stage: Stage, step_fn: Callable[[int], dict], eval_fn: Callable[[int], dict],
        name: str) -> list[dict]:
    """Train stage.steps steps of step_fn, evaluating with eval_fn every eval_every steps and
    at the end; returns the stage's metric records (those of earlier sessions included)."""
    lock = OutDirLock(make_dir(stage.out, "out")).acquire()
    try:
        step = restore(stage)
        log = RunLog(stage.out, {}, resume_step=step if step else None, eval_key="eval")
        t0 = last = time.perf_counter()
        rates = schedule(stage.steps)
        while True:
            if step % stage.eval_every == 0 or step == stage.steps:
                # (under a forked generator: a resumed stage evaluates its first step again, so
                # an evaluation that drew from it would shift what the steps after it draw)
                with torch.random.fork_rng():
                    record = {"step": step, "eval": True, **eval_fn(step)}
                save(stage, step, record)  # before the log line, as the trainer does
                log.log(record)
                shown = ", ".join(f"{k} {v:.4g}" for k, v in record.items()
                                  if k != "step" and isinstance(v, float))
                print(f"{name} step {step}/{stage.steps}: {shown}", flush=True)
            if step >= stage.steps:
                break
            set_rates(stage.optimizer, step, rates)
            record = step_fn(step)
            step += 1
            if step % stage.log_every == 0:
                log.log({"step": step, **record})
                now = time.perf_counter()
                if now - last > 30:
                    print(f"{name} step {step}/{stage.steps} ({fmt_time(now - t0)})", flush=True)
                    last = now
        log.close()
        return read_metrics(stage.out)
    finally:
        lock.release()
