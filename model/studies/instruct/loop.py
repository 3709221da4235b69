"""The loop every fine-tuning stage runs in (SFT, reward model, PPO, DPO): resumable, logged,
one run per folder.

A stage's step is a pure function of (seed, step): its batch and any sampling draw from
generators seeded by both, and no model uses dropout. So the checkpoint written at each
evaluation (the weights of every trained module, the optimizer, the step) is all a resumed
stage needs to continue exactly as if it had never stopped; metrics.jsonl loses only the
records written after that checkpoint, which the resumed stage writes again.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from ...errors import UserError, make_dir
from ...train import checkpoint
from ...train.lock import OutDirLock
from ...train.runlog import RunLog, fmt_time, read_metrics
from .task import PROMPT_FORMAT


@dataclass
class Stage:
    out: Path                      # the stage's folder: ckpt.pt, metrics.jsonl
    modules: dict[str, nn.Module]  # what it trains; "model" is saved where `tinygpt sample` looks
    optimizer: torch.optim.Optimizer
    steps: int
    eval_every: int
    lr: float                      # the peak; warmup over WARMUP steps, cosine down to 10%
    meta: dict = field(default_factory=dict)  # saved beside the weights (model_config, ...)
    log_every: int = 10


WARMUP = 10


def optimizer(params, lr: float) -> torch.optim.Optimizer:
    """AdamW as every stage uses it: β2 0.95 and no weight decay (fine-tuning moves the weights
    little; decay would pull them toward 0, away from the model being tuned)."""
    return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=0.0)


def descend(loss: torch.Tensor, opt: torch.optim.Optimizer) -> None:
    """One step down loss: backward, gradients clipped to norm 1 over what opt trains, step."""
    loss.backward()
    params = [p for group in opt.param_groups for p in group["params"]]
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)


def meta_of(state: dict) -> dict:
    """What a stage's checkpoint keeps beside the weights so `tinygpt sample` can read it."""
    return {"model_config": state["model_config"], "tokenizer": state["tokenizer"]}


def policy_meta(state: dict) -> dict:
    """meta_of for a model trained to answer instructions (SFT, PPO, DPO; not a reward model):
    also the prompt format it answers, by which `tinygpt chat` knows an instruct model."""
    return {**meta_of(state), "prompt_format": PROMPT_FORMAT}


def lr_at(step: int, steps: int, peak: float) -> float:
    if step < WARMUP:
        return peak * (step + 1) / WARMUP
    progress = (step - WARMUP) / max(steps - WARMUP, 1)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def restore(stage: Stage) -> int:
    """Load the stage's checkpoint, if it has one; returns the step to continue from."""
    path = stage.out / "ckpt.pt"
    if not path.exists():
        return 0
    state = checkpoint.load(path)
    try:
        for name, module in stage.modules.items():
            module.load_state_dict(state[name])
        stage.optimizer.load_state_dict(state["optimizer"])
    except (KeyError, RuntimeError, ValueError) as e:
        raise UserError(f"{path} does not belong to this stage's models "
                        f"({str(e).splitlines()[0][:100]}); delete {stage.out} to redo it") from None
    return state["step"]


def save(stage: Stage, step: int, record: dict) -> None:
    state = {name: m.state_dict() for name, m in stage.modules.items()}
    state.update(stage.meta, optimizer=stage.optimizer.state_dict(), step=step, metrics=record)
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
        while True:
            if step % stage.eval_every == 0 or step == stage.steps:
                record = {"step": step, "eval": True, **eval_fn(step)}
                save(stage, step, record)  # before the log line, as the trainer does
                log.log(record)
                shown = ", ".join(f"{k} {v:.4g}" for k, v in record.items()
                                  if k != "step" and isinstance(v, float))
                print(f"{name} step {step}/{stage.steps}: {shown}", flush=True)
            if step >= stage.steps:
                break
            for group in stage.optimizer.param_groups:
                group["lr"] = lr_at(step, stage.steps, stage.lr)
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
