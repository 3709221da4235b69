"""`tinygpt bench`: training and decoding speed, measured, with MFU against a
matmul peak measured in the same process. The training step timed is step.py's, the
one training runs.

Every figure printed is measured in this run; ratios compare runs made here,
side by side, so they hold for this machine whatever else is on it. `--speedrun` (speedrun.py)
times whole training runs instead, each a fresh process.
"""
from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.prepare import Batches, prepare
from ..errors import UserError, check_values, one_of
from ..files import configs_dir
from ..infer.generate import generate
from ..nn.config import LADDER, named
from ..nn.gpt import GPT, GPTConfig, flops_per_token
from ..train.device import device_name, keep_freed_memory, pick_device, pick_dtype, set_threads
from ..train.optim import fused_adamw
from ..train.train_config import RULES as TRAIN_RULES
from ..train.train_config import TrainConfig, load_config
from ..train.precision import fresh_run_precision
from ..train.runtime import Runtime
from ..train.step import StepTimer, interleaved, micro_batches
from ..train.timing import SHORT, hardware_peaks, in_turn, medians, sync
from .speedrun import speedrun


@dataclass(frozen=True)
class Shape:
    size: str
    block: int
    batch: int
    vocab: int


# issue 14: KV-cache decoding at least 15x recomputation at nanoGPT's 4x128, 500 tokens, context 512
DECODE_GOAL = 15
DECODE_GOAL_AT = ("nano-cpu", 500, 512)  # config, decode_tokens, decode_context

SHAPES = {
    "nano-cpu": Shape("nano-cpu", 64, 12, 65),       # nanoGPT's shakespeare_char on a laptop
    "nano-gpu": Shape("nano-gpu", 256, 64, 65),      # nanoGPT's shakespeare_char on a GPU
    "gpt2-124m": Shape("gpt2-124m", 1024, 12, 50304),  # nanoGPT's train_gpt2 micro-batch
    **{s: Shape(s, 256, 4, 84) for s in LADDER},     # the scaling ladder's training shape
}


def seeded_model(shape: Shape, arch: str, device: str, block: int | None = None) -> GPT:
    torch.manual_seed(0)
    cfg: GPTConfig = named(shape.size, arch, vocab_size=shape.vocab, block_size=block or shape.block)
    return GPT(cfg).to(device)


def shape_timer(model: GPT, shape: Shape, rt: Runtime, cfg: TrainConfig,
                fused: bool) -> StepTimer:
    """A StepTimer on fixed random tokens of the shape, with cfg's optimizer and clipping."""
    x = torch.randint(0, shape.vocab, (shape.batch, shape.block))
    return StepTimer(model, cfg, rt, [(x, x)], fused)


def decode_speed(model: GPT, device: str, new_tokens: int, rounds: int) -> list[list[float]]:
    """Each round's tokens/s with and without the KV cache (rounds, 2), generating new_tokens
    after a one-token prompt at batch 1, the two timed in turn (the recomputing side swings by
    20% between runs)."""
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
    results = in_turn([lambda: rate(True), lambda: rate(False)], rounds)
    model.train()
    return results


def report_decode(a: "BenchArgs", results: list[list[float]]) -> None:
    """The medians, and the ratio's spread over the rounds beside the goal: at one token a
    step the cached side is bound by fixed costs a call, which a busy machine stretches more
    than the recomputing side's arithmetic."""
    cached, full = medians(results)
    ratios = [c / f for c, f in results]
    goal = ""
    if (a.config, a.decode_tokens, a.decode_context) == DECODE_GOAL_AT:
        met = "met" if cached / full >= DECODE_GOAL else "missed"
        goal = f"; goal: {DECODE_GOAL}x or more: {met}"
    print(f"  decode {a.decode_tokens} tokens (context {a.decode_context}), median of "
          f"{len(results)} rounds: {cached:,.0f} tok/s with KV cache, {full:,.0f} tok/s "
          f"recomputing; ratio {cached / full:.1f}x "
          f"(rounds {min(ratios):.1f}-{max(ratios):.1f}x{goal})")


def peak_memory_mb(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def report_train(label: str, tok_s: float, fpt: int, peaks: dict) -> None:
    achieved = tok_s * fpt
    mfu = "  ".join(f"MFU {100 * achieved / p:.1f}% of {k} peak" for k, p in peaks.items())
    print(f"  {label:<34} {tok_s:>10,.0f} tok/s  {achieved / 1e9:8.1f} GFLOP/s  {mfu}")


def recipe_step_timer(recipe: str, overrides: list[str]) -> tuple[StepTimer, float]:
    """A StepTimer of the recipe's training step (its micro-batches, optimizer, clipping and
    precision, on the windows of its step 0), and its start-up time (compilation, when
    compiling: the real run pays it too)."""
    cfg = load_config(recipe, overrides)
    batches = Batches(prepare(cfg.dataset, cfg.tokenizer, cfg.data_root), cfg.block_size)
    device = pick_device(cfg.device)
    model = GPT(cfg.gpt_config(batches.tokenizer.vocab_size)).to(device)
    choice = fresh_run_precision(cfg, model, batches, device.split(":")[0], distributed=False)
    rt = Runtime(device, choice.dtype, why=choice.why)
    t0 = time.perf_counter()
    timer = StepTimer(model, cfg, rt, micro_batches(batches, cfg, 0), fused_adamw(rt.device_type))
    return timer, time.perf_counter() - t0


def fixed_time_comparison(minutes: float, recipe: str, archs: list[str], threads: int,
                          compile_: bool) -> None:
    """Train the recipe for about `minutes` of wall clock per architecture and
    compare held-out loss: each arch gets the step count its own measured speed
    affords, with the schedule fitted to that count (not a run cut short)."""
    from ..train.trainer import train

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
    tokens_per_step = [t.tokens for t in timers]
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


@dataclass
class BenchArgs:
    config: str = "nano-cpu"       # the shape: nano-cpu, nano-gpu, gpt2-124m or a ladder size
    arch: str = "gpt2"             # architecture of the measured model: "gpt2" | "modern"
    device: str = "auto"           # "auto" | "cpu" | "cuda" (or cuda:N) | "mps"
    dtype: str = "auto"            # "auto" | "float32" | "bfloat16" | "float16"
    compile: bool = False          # torch.compile the training step
    threads: int = 0               # CPU threads; 0 keeps torch's default
    steps: int = 20                # timed training steps per round
    rounds: int = 5                # timing rounds (the median is shown)
    decode_tokens: int = 500       # tokens generated for the decoding figures
    decode_context: int = 512      # context of the model used for the decoding figures
    vs: str = ""                   # "baseline": also time the plain GPT-2 block, fp32 eager
    # instead of the timings: the two blocks trained for the same wall-clock time
    fixed_minutes: float = 0.0     # train --recipe this long per arch (gpt2, modern); 0 is off
    recipe: str = ""               # a training config (default: shakespeare_char; with
                                   # --speedrun, speedrun)
    # or the speedrun: each recipe timed from process start to the baseline's val loss
    speedrun: bool = False         # time --baseline, then --recipe until it reaches the baseline's
                                   # final val loss on the whole held-out split
    baseline: str = ""             # --speedrun's baseline recipe, run on the GPT-2 block in fp32,
                                   # eager (default: shakespeare_char)
    out: str = "out/speedrun"      # --speedrun: the two runs' folders and result.json
    warm_cache: bool = False       # --speedrun: keep torch.compile's cache in <out>/compile-cache
                                   # for the next run (default: a fresh, cold one)

    def validate(self) -> "BenchArgs":
        check_values(vars(self), RULES)
        if self.fixed_minutes and self.speedrun:
            raise UserError("--fixed_minutes and --speedrun are two different runs; choose one")
        if self.fixed_minutes and (given := self.given("config", "arch", "device", "dtype",
                                                       "vs")):
            raise UserError(f"--fixed_minutes trains --recipe, once per arch; drop {given}")
        if self.speedrun and (given := self.given("config", "arch", "device", "dtype", "vs",
                                                  "compile")):
            raise UserError(f"--speedrun runs its two recipes as they are written; drop {given}")
        if not self.speedrun and (given := self.given("baseline", "out", "warm_cache")):
            raise UserError(f"{given} only apply to --speedrun")
        return self

    def given(self, *keys: str) -> str:
        """Those of keys set away from their defaults, as "--a, --b"."""
        return ", ".join(f"--{k}" for k in keys if getattr(self, k) != getattr(BenchArgs, k))


RULES = {
    "config": one_of(*SHAPES),
    **{k: TRAIN_RULES[k] for k in ("arch", "dtype", "threads")},
    **{k: (lambda v: v >= 1, "at least 1") for k in (
        "steps", "rounds", "decode_tokens", "decode_context")},
    "vs": one_of("", "baseline"),
    "fixed_minutes": (lambda v: 0 <= v < float("inf"), "0 or more, and finite"),
    "out": TRAIN_RULES["out_dir"],
}


def main(a: BenchArgs) -> None:
    set_threads(a.threads)
    if a.speedrun:
        configs = configs_dir()
        speedrun(a.baseline or str(configs / "shakespeare_char.toml"),
                 a.recipe or str(configs / "speedrun.toml"), Path(a.out), a.threads, a.warm_cache)
        return
    if a.fixed_minutes:
        recipe = a.recipe or str(configs_dir() / "shakespeare_char.toml")
        return fixed_time_comparison(a.fixed_minutes, recipe, ["gpt2", "modern"], a.threads,
                                     a.compile)
    keep_freed_memory()  # as a training run does (trainer.setup)
    device = pick_device(a.device)
    dtype = pick_dtype(device, a.dtype)
    shape = SHAPES[a.config]
    model = seeded_model(shape, a.arch, device)
    fpt = flops_per_token(model.cfg, model.num_params())
    # bf16 always: whether this machine has units for it is what a reader of a bench asks first
    peaks, described = hardware_peaks(device, [torch.float32, torch.bfloat16])
    print(f"bench {a.config} ({model.num_params():,} non-embedding params, block {shape.block}, "
          f"batch {shape.batch}) on {device_name(device)}")
    print(f"  matmul peak: {', '.join(described)}; `tinygpt train` logs MFU against the peak of "
          f"its own precision, or fp32's where that is faster ({SHORT[dtype]} here)")
    # TrainConfig's defaults: AdamW with decay on matrices only and clipping, as training steps
    timers = [shape_timer(model, shape, Runtime(device, dtype), TrainConfig(compile=a.compile),
                          fused_adamw(device))]
    if a.vs:  # nanoGPT fuses AdamW on CUDA only
        timers.append(shape_timer(seeded_model(shape, "gpt2", device), shape, Runtime(device),
                                  TrainConfig(), fused_adamw(device) and device == "cuda"))
    rates = interleaved(timers, a.steps, a.rounds)
    print(f"  training, median of {a.rounds} rounds of {a.steps} steps taken in turn:")
    report_train(f"train {a.arch} {dtype} {'compiled' if a.compile else 'eager'}", rates[0], fpt,
                 peaks)
    if a.vs:
        report_train("train baseline gpt2 fp32 eager", rates[1], fpt, peaks)
        print(f"  speedup over baseline: {rates[0] / rates[1]:.2f}x")
    dec_model = seeded_model(shape, a.arch, device, block=a.decode_context)
    report_decode(a, decode_speed(dec_model, device, a.decode_tokens, a.rounds))
    print(f"  peak memory: {peak_memory_mb(device):,.0f} MB")
