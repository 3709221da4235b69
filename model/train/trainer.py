"""The training loop: one function, train(cfg), on one process or under torchrun.

Step s always trains on the same windows (Batches is a pure function of seed,
step and shard), the checkpoint carries the optimizer, RNG and loss-scale state,
so a run resumed from step s continues exactly as if it had never stopped. The
step itself is step.py's, the one the benchmark times.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from ..data.prepare import Batches, dataset_dir, prepare
from ..data.tokenizer import check_same_vocab
from ..errors import UserError, make_dir
from ..nn.gpt import GPT, flops_per_token
from . import checkpoint, distributed
from .device import device_name, keep_freed_memory, pick_device, set_threads
from .lock import owns_out_dir
from .optim import fused_adamw, lr_at, make_optimizer, optimizer_settings, schedule_of, set_rates
from .train_config import TrainConfig, as_dict
from .precision import Choice, fresh_run_precision
from .runlog import Progress, RunLog
from .runtime import Runtime
from .step import Compiled, micro_batches, train_step
from .timing import fastest_matmul_dtype, mfu_peak


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches: Batches, n_batches: int, batch_size: int,
             rt: Runtime, per_pass: int = 0) -> float:
    """Mean loss over the same fixed validation windows every time: n_batches of batch_size,
    read per_pass windows a forward pass (default batch_size). Each process evaluates its share
    of the passes; each pass's mean loss is weighted by its windows in batches (1.0, exactly,
    when per_pass is batch_size), so the sum over all processes, divided by n_batches, is the
    mean over every window."""
    model.eval()
    losses = []
    for x, y in batches.val_batches(n_batches, batch_size, rt.dist.rank, rt.dist.world,
                                    per_pass):
        with rt.autocast():
            _, loss = model(rt.to_device(x), rt.to_device(y))
        losses.append(loss * (x.size(0) / batch_size))
    model.train()
    mine = sum(torch.stack(losses).tolist()) if losses else 0.0  # one read from the device
    return distributed.total(mine, rt.dist, rt.device) / n_batches


class LossWatch:
    """The losses of the steps since the last check, summed on the device. Reading them waits
    for the device, so they are read only where a step is logged or evaluated; a non-finite
    one then stops the run before it can overwrite a checkpoint."""

    def __init__(self, step: int):
        self.first, self.unread = step + 1, None

    def add(self, loss: torch.Tensor) -> None:
        self.unread = loss if self.unread is None else self.unread + loss

    def check(self, step: int) -> None:
        total = self.unread.item()
        if not math.isfinite(total):
            raise UserError(f"loss became {total} within steps {self.first}-{step}; lower --lr "
                            "or raise --warmup_iters")
        self.first, self.unread = step + 1, None


def resume_state(cfg: TrainConfig, ckpt_path: Path, model_cfg: dict, device: str,
                 vocab: dict) -> dict | None:
    """The checkpoint to continue from, or None to start fresh (init_from rules)."""
    if cfg.init_from == "scratch":
        if ckpt_path.exists():
            raise UserError(f"{ckpt_path} already exists; continue it with --init_from=resume "
                            "or choose another --out_dir")
        # a run with --save_checkpoints=false leaves only its metrics: a fresh run must not
        # replace them
        metrics = ckpt_path.parent / "metrics.jsonl"
        if metrics.exists():
            raise UserError(f"{metrics} holds the metrics of an earlier run (one without a "
                            "checkpoint); choose another --out_dir, or move that file away")
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
    if state["step"] > cfg.max_iters:  # it would "start at step 300/100" and train nothing
        raise UserError(f"{ckpt_path} is at step {state['step']}, past max_iters={cfg.max_iters}; "
                        f"give --max_iters above {state['step']} to train it further")
    # another corpus of the same characters passes every check below and would train on
    # silently, recording itself as the run's dataset
    trained_on = (state.get("train_config") or {}).get("dataset")
    if trained_on is not None and not same_source(trained_on, cfg.dataset):
        raise UserError(f"{ckpt_path} was trained on {trained_on}, not {cfg.dataset}; resume it "
                        f"with --dataset={trained_on}, or train {cfg.dataset} in another --out_dir")
    # the same shape is not the same model: an edited corpus can keep the vocabulary's size
    check_same_vocab(state.get("tokenizer") or {}, vocab, f"the data set {cfg.dataset}",
                     "restore the corpus the run was trained on, or train it in another --out_dir")
    return state


def same_source(a: str, b: str) -> bool:
    """Whether two --dataset values name one corpus (a path may be given two ways)."""
    return a == b or (Path(a).exists() and Path(b).exists()
                      and Path(a).resolve() == Path(b).resolve())


def open_data(cfg: TrainConfig, dist: distributed.Dist) -> Batches:
    """The prepared data set: one process downloads and tokenizes, the others wait for it."""
    if dist.master:
        make_dir(Path(cfg.out_dir), "out_dir")
        prepare(cfg.dataset, cfg.tokenizer, cfg.data_root)
    distributed.barrier(dist)
    return Batches(dataset_dir(cfg.dataset, cfg.tokenizer, cfg.data_root), cfg.block_size)


def setup(cfg: TrainConfig, auto: Choice | None = None
          ) -> tuple[Runtime, Batches, GPT, torch.optim.Optimizer, dict | None]:
    """The runtime, data, model and optimizer of a run, fresh or restored from its checkpoint,
    and that checkpoint (None for a fresh run); `auto` is train()'s."""
    device = pick_device(cfg.device)
    dist = distributed.init(device)
    if dist.enabled and device == "cuda":
        device = f"cuda:{dist.local_rank}"
    set_threads(cfg.threads)
    keep_freed_memory()
    batches = open_data(cfg, dist)
    gcfg = cfg.gpt_config(batches.tokenizer.vocab_size)
    state = resume_state(cfg, Path(cfg.out_dir) / "ckpt.pt", dataclasses.asdict(gcfg), device,
                         batches.meta["tokenizer"])
    torch.manual_seed(cfg.seed)
    raw = GPT(gcfg).to(device)
    if state is not None:  # a resumed run keeps its precision, or it would not be exact
        choice = Choice(getattr(torch, state["dtype"]), state.get("dtype_why", "resumed"))
    else:
        choice = fresh_run_precision(cfg, raw, batches, device.split(":")[0], dist.enabled,
                                     auto)
    rt = Runtime(device, choice.dtype, dist, why=choice.why)
    opt = make_optimizer(raw, optimizer_settings(cfg), fused_adamw(rt.device_type))
    if state is not None:
        restore(state, raw, opt, rt)
    return rt, batches, raw, opt, state


def snapshot(raw: GPT, opt: torch.optim.Optimizer, rt: Runtime) -> dict:
    """What a resumed run needs besides its config: weights, optimizer, the random streams,
    the precision and the loss scale."""
    state = {**checkpoint.training_state({"model": raw}, opt, rt.device),
             "dtype": str(rt.dtype).removeprefix("torch."), "dtype_why": rt.why}
    if rt.scaler is not None:
        state["scaler"] = rt.scaler.state_dict()
    return state


def restore(state: dict, raw: GPT, opt: torch.optim.Optimizer, rt: Runtime) -> None:
    checkpoint.restore_training(state, {"model": raw}, opt, rt.device)
    if rt.scaler is not None and "scaler" in state:  # (none from a float16 run before scaling)
        rt.scaler.load_state_dict(state["scaler"])


def evaluates(step: int, cfg: TrainConfig) -> bool:
    return (step >= cfg.eval_start and step % cfg.eval_interval == 0) or step == cfg.max_iters


def light_reading(step: int, cfg: TrainConfig) -> bool:
    """Whether step takes a light reading of on_eval's instruments (where it does not evaluate)."""
    return cfg.probe_interval > 0 and step % cfg.probe_interval == 0


def eval_batch_count(step: int, cfg: TrainConfig, batches: Batches) -> int:
    """The last evaluation, the run's result, covers the whole held-out split, and so does every
    one with eval_batches=0; the others read eval_batches windows spread over it."""
    if step >= cfg.max_iters or cfg.eval_batches == 0:
        return batches.batches_to_cover_val(cfg.batch_size)
    return cfg.eval_batches


@owns_out_dir  # two runs in one out_dir would mix their metrics and checkpoints
def train(cfg: TrainConfig, on_eval: Callable[[GPT, int, bool], dict] | None = None,
          auto: Choice | None = None) -> dict:
    """Train per cfg; returns a summary (final val loss, tokens, wall time...). With a
    target_loss the run ends at the first evaluation at or below it (a speedrun's finish).

    on_eval(model, step, full), if given, runs on the main process at every evaluation
    (full=True), where the numbers it returns join that evaluation's metrics record (the
    emergence study's instruments), and every probe_interval steps between them (full=False:
    its cheap instruments only), where they make a record of their own. It runs under a forked
    RNG, so it cannot change what training draws next.

    auto, if given, is the precision a fresh run of dtype=auto trains in: its study's decision
    for all its runs (precision.study_precision)."""
    rt, batches, raw, opt, state = setup(cfg, auto)
    dist, out, gcfg = rt.dist, Path(cfg.out_dir), raw.cfg
    step = state["step"] if state else 0
    elapsed_before = state.get("elapsed", 0.0) if state else 0.0
    model = Compiled(raw) if cfg.compile else raw
    if dist.enabled:
        model = DDP(model, device_ids=[dist.local_rank] if rt.device_type == "cuda" else None)

    log = RunLog(out, as_dict(cfg), cfg.wandb if dist.master else "disabled", cfg.wandb_project,
                 cfg.wandb_group, cfg.run_name, resume_step=step if state else None)
    tokens_per_step = cfg.batch_size * cfg.block_size * cfg.grad_accum * dist.world
    fpt = flops_per_token(gcfg, raw.num_params())
    peak = mfu_peak(rt.device_type, rt.dtype) if dist.master else 1.0
    if dist.master:
        notes = [f"{raw.num_params():,} non-embedding params", device_name(rt.device_type),
                 f"{rt.dtype} ({rt.why})", f"{tokens_per_step:,} tokens/step"]
        if dist.enabled:
            notes.append(f"DDP over {dist.world} process(es) ({dist.backend})")
        if cfg.optimizer == "muon":  # its orthogonalisation's precision is the device's choice
            notes.append(f"Muon orthogonalising in {fastest_matmul_dtype(rt.device_type)}")
        print(f"tinygpt: {', '.join(notes)}, starting at step {step}/{cfg.max_iters}", flush=True)
        if cfg.warmup_iters > cfg.max_iters:  # legal, but the rate then never reaches lr
            top = lr_at(cfg.max_iters - 1, schedule_of(cfg), cfg.lr)
            print(f"tinygpt: warning: warmup_iters={cfg.warmup_iters} is longer than the run "
                  f"(max_iters={cfg.max_iters}): the learning rate rises only to "
                  f"{top:.2g} of lr={cfg.lr:g}; lower --warmup_iters", file=sys.stderr, flush=True)

    def save(val_loss: float | None) -> None:
        if not (dist.master and cfg.save_checkpoints):
            return
        snap = {**snapshot(raw, opt, rt), "step": step, "model_config": dataclasses.asdict(gcfg),
                "train_config": as_dict(cfg), "tokenizer": batches.meta["tokenizer"],
                "val_loss": val_loss, "elapsed": elapsed_before + time.perf_counter() - t0}
        checkpoint.save(out / "ckpt.pt", snap)
        if cfg.keep_checkpoints:
            checkpoint.save(out / f"ckpt_{step:06d}.pt", snap)

    def instruments(full: bool) -> dict:
        with torch.random.fork_rng():
            readings = on_eval(raw, step, full)
        raw.train()
        return readings

    t0, schedule = time.perf_counter(), schedule_of(cfg)
    progress, watch, val_loss = Progress(step, cfg.max_iters, tokens_per_step, fpt, peak), \
        LossWatch(step), None
    while True:
        if evaluates(step, cfg):
            val_loss = evaluate(raw, batches, eval_batch_count(step, cfg, batches),
                                cfg.batch_size, rt, cfg.eval_pass)
            if state is None or step > state["step"]:
                save(val_loss)  # before the log line: a logged eval always has its checkpoint
            if dist.master:
                # wall_s: time in this loop, so a run's curve can be read against the clock
                record = {"step": step, "val_loss": val_loss, "tokens": step * tokens_per_step,
                          "flops": step * tokens_per_step * fpt,
                          "wall_s": elapsed_before + time.perf_counter() - t0}
                if on_eval is not None:
                    record.update(instruments(full=True))
                log.log(record)
                print(f"step {step}: val loss {val_loss:.4f}", flush=True)
            if cfg.target_loss and val_loss <= cfg.target_loss:  # (the same on every process)
                if dist.master:
                    print(f"step {step}: reached the target loss {cfg.target_loss:.4f}; stopping",
                          flush=True)
                break
        elif light_reading(step, cfg) and on_eval is not None and dist.master:
            # no checkpoint here: a run resumed from an earlier one drops this record (RunLog)
            # and, its steps replayed exactly, writes the same one again
            log.log({"step": step, **instruments(full=False)})
        if step >= cfg.max_iters:
            break
        lr = set_rates(opt, step, schedule)
        loss = train_step(model, opt, rt, micro_batches(batches, cfg, step, dist.rank),
                          cfg.grad_clip)
        watch.add(loss)
        step += 1
        logged = step % cfg.log_interval == 0
        if logged or evaluates(step, cfg):
            watch.check(step)
        if logged and dist.master:
            record, line = progress.report(step, loss.item(), lr)
            log.log(record)
            print(line, flush=True)

    wall = elapsed_before + time.perf_counter() - t0
    summary = {"val_loss": val_loss, "steps": step, "tokens": step * tokens_per_step,
               "flops": step * tokens_per_step * fpt, "wall_s": wall,
               "n_nonemb": raw.num_params(), "n_total": raw.num_params(non_embedding=False),
               "dtype": str(rt.dtype).removeprefix("torch."), "dtype_why": rt.why}
    log.close()
    del model, raw, opt
    distributed.shutdown(dist)
    return summary
