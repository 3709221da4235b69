"""The training loop: one function, train(cfg), on one process or under torchrun.

Step s always trains on the same windows (Batches is a pure function of seed,
step and shard), the checkpoint carries the optimizer and RNG state, so a run
resumed from step s continues exactly as if it had never stopped.
"""
from __future__ import annotations

import dataclasses
import math
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from . import checkpoint, distributed
from .data import Batches, dataset_dir, prepare
from .device import autocast, device_name, faster_cpu_dtype, pick_device, pick_dtype, set_threads
from .errors import UserError, make_dir
from .gpt import GPT, flops_per_token
from .lock import owns_out_dir
from .optim import lr_at, make_optimizer
from .options import TrainConfig, as_dict
from .runlog import Progress, RunLog
from .timing import peak_flops
from .tokenizer import check_same_vocab


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches: Batches, n_batches: int, batch_size: int,
             device: str, dtype: torch.dtype) -> float:
    """Mean loss over the same fixed validation windows every time."""
    model.eval()
    total = 0.0
    for x, y in batches.val_batches(n_batches, batch_size):
        with autocast(device.split(":")[0], dtype):
            _, loss = model(x.to(device), y.to(device))
        total += loss.item()
    model.train()
    return total / n_batches


def resume_state(cfg: TrainConfig, ckpt_path: Path, model_cfg: dict, device: str,
                 vocab: dict) -> dict | None:
    """The checkpoint to continue from, or None to start fresh (init_from rules)."""
    if cfg.init_from == "scratch":
        if ckpt_path.exists():
            raise UserError(f"{ckpt_path} already exists; continue it with --init_from=resume "
                            "or choose another --out_dir")
        return None
    if not ckpt_path.exists():
        if cfg.init_from == "resume":
            raise UserError(f"--init_from=resume but there is no checkpoint at {ckpt_path}")
        return None
    state = checkpoint.load(ckpt_path, device)
    saved = state.get("model_config") or {}
    if saved != model_cfg:
        diff = ", ".join(f"{k} {saved.get(k)} there, {model_cfg.get(k)} here"
                         for k in sorted({*saved, *model_cfg}) if saved.get(k) != model_cfg.get(k))
        raise UserError(f"{ckpt_path} holds a different model ({diff}); "
                        "use another --out_dir or --init_from=scratch in a fresh folder")
    checkpoint.check_resumable(ckpt_path, state)
    # the same shape is not the same model: an edited corpus can keep the vocabulary's size
    check_same_vocab(state.get("tokenizer") or {}, vocab, f"the data set {cfg.dataset}",
                     "restore the corpus the run was trained on, or train it in another --out_dir")
    return state


def model_and_optimizer(cfg: TrainConfig, gcfg, state: dict | None, batches: Batches,
                        device: str, dtype: torch.dtype, distributed_run: bool):
    """The model, its optimizer and the precision: fresh, or restored from state."""
    dev_type = device.split(":")[0]
    torch.manual_seed(cfg.seed)
    raw = GPT(gcfg).to(device)
    if state is not None:  # a resumed run keeps its precision, or it would not be exact
        dtype = getattr(torch, state["dtype"])
    elif cfg.dtype == "auto" and dev_type == "cpu" and dtype == torch.bfloat16 \
            and not distributed_run:  # (each process would time for itself, maybe differently)
        with torch.random.fork_rng():
            dtype = faster_cpu_dtype(raw, batches.train_batch(cfg.seed, 0, 0, cfg.batch_size)[0])
    opt = make_optimizer(raw, cfg, dev_type)
    if state is not None:
        raw.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"].cpu())
    return raw, opt, dtype


@owns_out_dir  # two runs in one out_dir would mix their metrics and checkpoints
def train(cfg: TrainConfig, on_eval: Callable[[GPT, int], dict] | None = None) -> dict:
    """Train per cfg; returns a summary (final val loss, tokens, wall time...).

    on_eval(model, step), if given, runs at every evaluation on the main process; the numbers
    it returns join that evaluation's metrics record (the emergence study's instruments).
    It runs under a forked RNG, so it cannot change what training draws next."""
    device = pick_device(cfg.device)
    dist = distributed.init(device)
    if dist.enabled and device == "cuda":
        device = f"cuda:{dist.local_rank}"
    dev_type = device.split(":")[0]
    set_threads(cfg.threads)
    dtype = pick_dtype(dev_type, cfg.dtype)
    out = Path(cfg.out_dir)
    if dist.master:  # one process downloads and tokenizes; the others wait for it
        make_dir(out, "out_dir")
        prepare(cfg.dataset, cfg.tokenizer, cfg.data_root)
    distributed.barrier(dist)
    batches = Batches(dataset_dir(cfg.dataset, cfg.tokenizer, cfg.data_root), cfg.block_size)
    gcfg = cfg.gpt_config(batches.tokenizer.vocab_size)
    ckpt_path = out / "ckpt.pt"
    state = resume_state(cfg, ckpt_path, dataclasses.asdict(gcfg), device,
                         batches.meta["tokenizer"])

    raw, opt, dtype = model_and_optimizer(cfg, gcfg, state, batches, device, dtype, dist.enabled)
    step = state["step"] if state else 0
    elapsed_before = state.get("elapsed", 0.0) if state else 0.0
    model = torch.compile(raw) if cfg.compile else raw
    if dist.enabled:
        model = DDP(model, device_ids=[dist.local_rank] if dev_type == "cuda" else None)

    log = RunLog(out, as_dict(cfg), cfg.wandb if dist.master else "disabled", cfg.wandb_project,
                 cfg.wandb_group, cfg.run_name, resume_step=step if state else None)
    tokens_per_step = cfg.batch_size * cfg.block_size * cfg.grad_accum * dist.world
    fpt = flops_per_token(gcfg, raw.num_params())
    peak = peak_flops(dev_type, dtype) if dist.master else 1.0
    if dist.master:
        print(f"tinygpt: {raw.num_params():,} non-embedding params, {device_name(dev_type)}, "
              f"{dtype}, {tokens_per_step:,} tokens/step, starting at step {step}/{cfg.max_iters}",
              flush=True)

    def save(val_loss: float | None) -> None:
        if not (dist.master and cfg.save_checkpoints):
            return
        snapshot = {"model": raw.state_dict(), "optimizer": opt.state_dict(), "step": step,
                    "model_config": dataclasses.asdict(gcfg), "train_config": as_dict(cfg),
                    "tokenizer": batches.meta["tokenizer"], "rng": torch.get_rng_state(),
                    "dtype": str(dtype).removeprefix("torch."),
                    "val_loss": val_loss, "elapsed": elapsed_before + time.perf_counter() - t0}
        checkpoint.save(ckpt_path, snapshot)
        if cfg.keep_checkpoints:
            checkpoint.save(out / f"ckpt_{step:06d}.pt", snapshot)

    t0 = time.perf_counter()
    progress, val_loss = Progress(step, cfg.max_iters, tokens_per_step, fpt, peak), None
    while True:
        if step % cfg.eval_interval == 0 or step == cfg.max_iters:
            # The last evaluation covers the whole held-out split: it is the run's result.
            n_eval = batches.batches_to_cover_val(cfg.batch_size) if step >= cfg.max_iters \
                else cfg.eval_batches
            val_loss = evaluate(raw, batches, n_eval, cfg.batch_size, device, dtype)
            val_loss = distributed.mean(val_loss, dist, device)
            if state is None or step > state["step"]:
                save(val_loss)  # before the log line: a logged eval always has its checkpoint
            if dist.master:
                record = {"step": step, "val_loss": val_loss, "tokens": step * tokens_per_step,
                          "flops": step * tokens_per_step * fpt}
                if on_eval is not None:
                    with torch.random.fork_rng():
                        record.update(on_eval(raw, step))
                    raw.train()
                log.log(record)
                print(f"step {step}: val loss {val_loss:.4f}", flush=True)
        if step >= cfg.max_iters:
            break
        lr = lr_at(step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        loss = train_step(model, opt, batches, cfg, step, dist, device, dtype)
        step += 1
        if step % cfg.log_interval == 0 and dist.master:
            record, line = progress.report(step, loss, lr)
            log.log(record)
            print(line, flush=True)

    wall = elapsed_before + time.perf_counter() - t0
    summary = {"val_loss": val_loss, "steps": step, "tokens": step * tokens_per_step,
               "flops": step * tokens_per_step * fpt, "wall_s": wall,
               "n_nonemb": raw.num_params(), "n_total": raw.num_params(non_embedding=False),
               "dtype": str(dtype).removeprefix("torch.")}
    log.close()
    del model, raw, opt
    distributed.shutdown(dist)
    return summary


def train_step(model, opt, batches: Batches, cfg: TrainConfig, step: int, dist, device: str,
               dtype: torch.dtype) -> float:
    """One optimizer step over grad_accum micro-batches; returns the mean loss."""
    total = 0.0
    for micro in range(cfg.grad_accum):
        shard = dist.rank * cfg.grad_accum + micro
        x, y = batches.train_batch(cfg.seed, step, shard, cfg.batch_size, cfg.repeat_spans,
                                    cfg.synthetic)
        last = micro == cfg.grad_accum - 1
        # DDP would all-reduce after every backward; only the last one counts.
        sync = nullcontext() if last or not dist.enabled else model.no_sync()
        with sync:
            with autocast(device.split(":")[0], dtype):
                _, loss = model(x.to(device), y.to(device))
            # The mean over micro-batches, not their sum, so the learning rate
            # means the same whatever grad_accum is.
            (loss / cfg.grad_accum).backward()
        total += loss.item()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    opt.zero_grad(set_to_none=True)
    if not math.isfinite(total):
        raise UserError(f"loss became {total} at step {step}; lower --lr or raise --warmup_iters")
    return total / cfg.grad_accum
