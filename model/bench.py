"""`tinygpt bench`: training and decoding speed, measured, with MFU against a
matmul peak measured in the same process.

Every figure printed is measured in this run; ratios compare runs made here,
side by side, so they hold for this machine whatever else is on it.
"""
from __future__ import annotations

import argparse
import functools
import resource
import time
from dataclasses import dataclass

import torch

from .config import ARCHS, LADDER, GPTConfig, named
from .device import autocast, device_name, pick_device, pick_dtype, set_threads
from .errors import UserError
from .files import configs_dir
from .generate import generate
from .gpt import GPT, flops_per_token
from .optim import fused_adamw
from .timing import medians_in_turn, peak_flops, sync

@dataclass(frozen=True)
class Shape:
    size: str
    block: int
    batch: int
    vocab: int


SHAPES = {
    "nano-cpu": Shape("nano-cpu", 64, 12, 65),       # nanoGPT's shakespeare_char on a laptop
    "nano-gpu": Shape("nano-gpu", 256, 64, 65),      # nanoGPT's shakespeare_char on a GPU
    "gpt2-124m": Shape("gpt2-124m", 1024, 8, 50304),
    **{s: Shape(s, 256, 4, 84) for s in LADDER},     # the scaling ladder's training shape
}


def seeded_model(shape: Shape, arch: str, device: str, block: int | None = None) -> GPT:
    torch.manual_seed(0)
    cfg: GPTConfig = named(shape.size, arch, vocab_size=shape.vocab, block_size=block or shape.block)
    return GPT(cfg).to(device)


class StepTimer:
    """Times one model's training step (forward, backward, AdamW step) on fixed random tokens."""

    def __init__(self, model: GPT, shape: Shape, device: str, dtype: torch.dtype,
                 compile_: bool, fused: bool, warmup: int = 3):
        self.model, self.shape, self.device, self.dtype = model, shape, device, dtype
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused)
        self.step_model = torch.compile(model) if compile_ else model
        self.x = torch.randint(0, shape.vocab, (shape.batch, shape.block), device=device)
        self.run(warmup)  # compilation, kernel selection, allocator warm-up

    def run(self, steps: int) -> None:
        for _ in range(steps):
            with autocast(self.device, self.dtype):
                _, loss = self.step_model(self.x, self.x)
            loss.backward()
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)

    def tokens_per_s(self, steps: int) -> float:
        sync(self.device)
        t0 = time.perf_counter()
        self.run(steps)
        sync(self.device)
        return steps * self.shape.batch * self.shape.block / (time.perf_counter() - t0)


def interleaved(timers: list[StepTimer], steps: int, rounds: int) -> list[float]:
    """Median tokens/s of each timer over rounds taken in turn."""
    return medians_in_turn([functools.partial(t.tokens_per_s, steps) for t in timers], rounds)


def decode_speed(model: GPT, device: str, new_tokens: int, rounds: int) -> tuple[float, float]:
    """Median tokens/s with and without the KV cache, generating new_tokens after a one-token
    prompt at batch 1, the two timed in turn (the recomputing side swings by 20% between runs)."""
    model.eval()
    idx = torch.zeros(1, 1, dtype=torch.long, device=device)

    def rate(use_cache: bool) -> float:
        sync(device)
        t0 = time.perf_counter()
        generate(model, idx, new_tokens, temperature=0, use_cache=use_cache)
        sync(device)
        return new_tokens / (time.perf_counter() - t0)

    for use_cache in (True, False):  # warm-up
        generate(model, idx, 8, temperature=0, use_cache=use_cache)
    cached, full = medians_in_turn([lambda: rate(True), lambda: rate(False)], rounds)
    model.train()
    return cached, full


def peak_memory_mb(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def report_train(label: str, tok_s: float, fpt: int, peaks: dict) -> None:
    achieved = tok_s * fpt
    mfu = "  ".join(f"MFU {100 * achieved / p:.1f}% of {k} peak" for k, p in peaks.items())
    print(f"  {label:<34} {tok_s:>10,.0f} tok/s  {achieved / 1e9:8.1f} GFLOP/s  {mfu}")


def recipe_step_timer(recipe: str, overrides: list[str]) -> tuple[StepTimer, float]:
    """A StepTimer at the recipe's shape, and its start-up time (compilation, when
    compiling: the real run pays it too)."""
    from .data import Batches, dataset_dir, prepare
    from .options import load_config

    cfg = load_config(recipe, overrides)
    prepare(cfg.dataset, cfg.tokenizer, cfg.data_root)
    vocab = Batches(dataset_dir(cfg.dataset, cfg.tokenizer, cfg.data_root),
                    cfg.block_size).tokenizer.vocab_size
    device = pick_device(cfg.device)
    model = GPT(cfg.gpt_config(vocab)).to(device)
    t0 = time.perf_counter()
    timer = StepTimer(model, Shape(cfg.size, cfg.block_size, cfg.batch_size, vocab), device,
                      pick_dtype(device, cfg.dtype), cfg.compile, fused_adamw(device))
    return timer, time.perf_counter() - t0


def fixed_time_comparison(minutes: float, recipe: str, archs: list[str], threads: int,
                          compile_: bool) -> None:
    """Train the recipe for about `minutes` of wall clock per architecture and
    compare held-out loss: each arch gets the step count its own measured speed
    affords, with the schedule fitted to that count (not a run cut short)."""
    from .options import load_config
    from .trainer import train

    common = {arch: [f"--arch={arch}", f"--threads={threads}", f"--compile={compile_}"]
              for arch in archs}
    # a throwaway first build: the process's one-time costs (library start-up, the compiler's
    # first use) would otherwise count as the first arch's start-up
    recipe_step_timer(recipe, common[archs[0]])
    timers, start_ups = zip(*(recipe_step_timer(recipe, common[arch]) for arch in archs))
    # Speeds timed in alternating rounds, so that a slow spell of the machine hits every arch
    # alike: timed one after the other, 20 steps each, the step counts once differed by 30%
    # from what the runs then did.
    rates = interleaved(list(timers), 20, 5)
    tokens_per_step = [t.shape.batch * t.shape.block for t in timers]
    del timers
    results = {}
    for arch, tok_s, start_up, tps in zip(archs, rates, start_ups, tokens_per_step):
        # 8% of the budget goes to evaluations and start-up, measured on the default recipe
        steps = max(int((0.92 * minutes * 60 - start_up) * tok_s / tps), 1)
        # a rerun resumes only the very same run
        out = f"out/fixed-time-{arch}-{steps}steps{'-compiled' if compile_ else ''}"
        cfg = load_config(recipe, [*common[arch], f"--max_iters={steps}",
                                   f"--out_dir={out}", f"--eval_interval={max(steps // 4, 1)}",
                                   "--init_from=auto", f"--log_interval={max(steps // 10, 1)}"])
        results[arch] = train(cfg)
    print(f"fixed wall clock ({minutes:g} min each, recipe {recipe}):")
    for arch, r in results.items():
        print(f"  {arch:<8} {r['steps']:>6} steps  {r['wall_s']:6.0f} s  val loss {r['val_loss']:.4f}")
    base = results[archs[0]]
    for arch in archs[1:]:
        print(f"  {arch} - {archs[0]}: {results[arch]['val_loss'] - base['val_loss']:+.4f} nats, "
              f"in {results[arch]['wall_s'] / base['wall_s']:.2f}x the wall time")


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="tinygpt bench", description=__doc__.splitlines()[0])
    p.add_argument("--config", default="nano-cpu", help=f"one of: {', '.join(SHAPES)}")
    p.add_argument("--arch", default="gpt2", choices=tuple(ARCHS),
                   help="architecture of the measured model")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"))
    p.add_argument("--compile", action="store_true", help="torch.compile the training step")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--steps", type=int, default=20, help="timed training steps per round")
    p.add_argument("--rounds", type=int, default=5, help="timing rounds (the median is shown)")
    p.add_argument("--decode_tokens", type=int, default=500)
    p.add_argument("--decode_context", type=int, default=512,
                   help="context of the model used for the decoding figures")
    p.add_argument("--vs", choices=("baseline",), help="also run the plain GPT-2 block, fp32 eager")
    p.add_argument("--fixed_minutes", type=float, default=0,
                   help="instead: train --recipe for this long per arch (gpt2, modern), compare val loss")
    p.add_argument("--recipe", default="",
                   help="a training config (default: the shipped shakespeare_char.toml)")
    a = p.parse_args(argv)
    if not 0 <= a.fixed_minutes < float("inf"):  # (NaN fails this too)
        raise UserError(f"--fixed_minutes must be positive, got {a.fixed_minutes:g}")
    set_threads(a.threads)
    if a.fixed_minutes:
        ignored = [f"--{k}" for k in ("config", "arch", "device", "dtype", "vs")
                   if getattr(a, k) != p.get_default(k)]
        if ignored:
            raise UserError(f"--fixed_minutes trains --recipe, once per arch; drop "
                            f"{', '.join(ignored)}")
        recipe = a.recipe or str(configs_dir() / "shakespeare_char.toml")
        return fixed_time_comparison(a.fixed_minutes, recipe, ["gpt2", "modern"], a.threads,
                                     a.compile)
    if min(a.steps, a.rounds, a.decode_tokens, a.decode_context) < 1:
        raise UserError("--steps, --rounds, --decode_tokens and --decode_context need to be at "
                        "least 1")
    if a.config not in SHAPES:
        raise UserError(f"unknown bench config {a.config!r}; choose one of {', '.join(SHAPES)}")
    device = pick_device(a.device)
    dtype = pick_dtype(device, a.dtype)
    shape = SHAPES[a.config]
    model = seeded_model(shape, a.arch, device)
    fpt = flops_per_token(model.cfg, model.num_params())
    peaks = {"fp32": peak_flops(device, torch.float32)}
    if device != "cpu" or dtype == torch.bfloat16:
        peaks["bf16"] = peak_flops(device, torch.bfloat16)
    print(f"bench {a.config} ({model.num_params():,} non-embedding params, block {shape.block}, "
          f"batch {shape.batch}) on {device_name(device)}")
    print("  matmul peak: " + ", ".join(f"{k} {v / 1e9:,.0f} GFLOP/s" for k, v in peaks.items()))
    timers = [StepTimer(model, shape, device, dtype, a.compile, fused_adamw(device))]
    if a.vs:  # nanoGPT fuses AdamW on CUDA only
        timers.append(StepTimer(seeded_model(shape, "gpt2", device), shape, device, torch.float32,
                                False, fused_adamw(device) and device == "cuda"))
    rates = interleaved(timers, a.steps, a.rounds)
    print(f"  training, median of {a.rounds} rounds of {a.steps} steps taken in turn:")
    report_train(f"train {a.arch} {dtype} {'compiled' if a.compile else 'eager'}", rates[0], fpt,
                 peaks)
    if a.vs:
        report_train("train baseline gpt2 fp32 eager", rates[1], fpt, peaks)
        print(f"  speedup over baseline: {rates[0] / rates[1]:.2f}x")
    dec_model = seeded_model(shape, a.arch, device, block=a.decode_context)
    cached, full = decode_speed(dec_model, device, a.decode_tokens, a.rounds)
    print(f"  decode {a.decode_tokens} tokens (context {a.decode_context}), median of {a.rounds} "
          f"rounds: {cached:,.0f} tok/s with KV cache, {full:,.0f} tok/s recomputing; "
          f"ratio {cached / full:.1f}x")
    print(f"  peak memory: {peak_memory_mb(device):,.0f} MB")
